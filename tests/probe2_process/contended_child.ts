/**
 * The Worker of contended_main.ts: initializes gpusched when asked and says
 * what happened (the error's name and message, or "initialized"), does a
 * round trip, and shuts down when asked.
 */
import { createContext, initialize, MB, shutdown } from "../../mod.ts";

const scope = self as unknown as {
  onmessage: (e: MessageEvent<{ what: string; backend: "host" | "cuda" }>) => void;
  postMessage(message: unknown): void;
};

scope.onmessage = async (e) => {
  const { what, backend } = e.data;
  try {
    if (what === "init") {
      initialize({ backend, memoryLimit: 256 * MB, hostMemory: 256 * MB });
      const buf = createContext("worker", { maxVram: 64 * MB }).alloc(1 * MB);
      await buf.write(new Uint8Array(1 * MB).fill(9));
      const back = new Uint8Array(1 * MB);
      await buf.read(back);
      scope.postMessage(back.every((v) => v === 9) ? "initialized" : "round trip differs");
    } else {
      shutdown();
      scope.postMessage("shut down");
    }
  } catch (error) {
    scope.postMessage(`${(error as Error).name}: ${(error as Error).message}`);
  }
};
