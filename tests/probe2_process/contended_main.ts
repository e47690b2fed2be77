/**
 * One libsched per process, several isolates: the main thread and a Worker
 * each call initialize() while the other holds the scheduler. API.md:
 * "initialize twice without shutdown throws": the second must throw a
 * SchedulerError (not hang, not crash), and the holder keeps working. Then
 * the holder shuts down and the other initializes. Prints one line per
 * step; exit 0 when every step went as promised.
 *
 * Usage: deno run --allow-ffi --allow-read tests/probe2_process/contended_main.ts [main-holds|worker-holds] [backend]
 */
import { createContext, initialize, MB, SchedulerError, shutdown } from "../../mod.ts";

const [mode = "main-holds", backendArg = "host"] = Deno.args;
const backend = backendArg === "cuda" ? "cuda" : "host";
const worker = new Worker(new URL("./contended_child.ts", import.meta.url), { type: "module" });
const ask = (what: string) =>
  new Promise<string>((resolve) => {
    worker.onmessage = (e) => resolve(String(e.data));
    worker.onerror = (e) => {
      e.preventDefault();
      resolve(`worker error: ${e.message}`);
    };
    worker.postMessage({ what, backend });
  });
const mainInit = () => initialize({ backend, memoryLimit: 256 * MB, hostMemory: 256 * MB });
const roundTrip = async (name: string) => {
  const buf = createContext(name, { maxVram: 64 * MB }).alloc(1 * MB);
  await buf.write(new Uint8Array(1 * MB).fill(5));
  const back = new Uint8Array(1 * MB);
  await buf.read(back);
  if (!back.every((v) => v === 5)) throw new Error("main round trip differs");
};
const fail = (why: string): never => {
  console.log(`FAIL: ${why}`);
  Deno.exit(2);
};

if (mode === "main-holds") {
  mainInit();
  const said = await ask("init");
  console.log(`worker: ${said}`);
  if (!said.startsWith("SchedulerError")) {
    fail("the Worker's initialize did not throw a SchedulerError");
  }
  await roundTrip("main"); // the holder is unharmed
  shutdown();
  const again = await ask("init");
  console.log(`worker after main's shutdown: ${again}`);
  if (again !== "initialized") fail("the Worker could not initialize after main shut down");
  console.log(`worker: ${await ask("shutdown")}`);
  mainInit();
  await roundTrip("main2");
  shutdown();
} else {
  const said = await ask("init");
  console.log(`worker: ${said}`);
  if (said !== "initialized") fail("the Worker could not initialize");
  try {
    mainInit();
    fail("main's initialize did not throw while the Worker holds the scheduler");
  } catch (error) {
    console.log(`main: ${(error as Error).name}: ${(error as Error).message}`);
    if (!(error instanceof SchedulerError)) fail("main's refusal is not a SchedulerError");
  }
  console.log(`worker: ${await ask("shutdown")}`);
  mainInit();
  await roundTrip("main");
  shutdown();
}
worker.terminate();
console.log("all as promised");
