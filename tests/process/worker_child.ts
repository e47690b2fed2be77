/** The Worker of worker_main.ts: starts 128 MiB copies, says so, then waits to be terminated. */
import { createContext, initialize, MB } from "../../mod.ts";

const SIZE = 128 * MB;

/** The Worker's global scope (typed here: the file is checked with the main-thread libs). */
const scope = self as unknown as {
  onmessage: (e: MessageEvent<{ how: string; backend: "host" | "cuda" }>) => void;
  postMessage(message: unknown): void;
};

scope.onmessage = (e) => {
  const { how, backend } = e.data;
  initialize({ backend, memoryLimit: 1024 * MB, hostMemory: 1024 * MB });
  const ctx = createContext("worker", { maxVram: 900 * MB });
  for (let i = 0; i < 2; i++) {
    const buf = ctx.alloc(SIZE);
    buf.write(new Uint8Array(SIZE)).catch(() => {});
    buf.read(new Uint8Array(SIZE)).catch(() => {});
  }
  if (how === "throw") throw new Error("worker ends with an uncaught exception, copies in flight");
  scope.postMessage("in flight");
};
