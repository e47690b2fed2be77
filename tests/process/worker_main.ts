/**
 * A Worker that uses gpusched is terminated while its copies are in
 * flight; then the main thread initializes its own scheduler and checks a
 * round trip. Exit 0 on success. Run by tests/process_test.ts.
 *
 * Usage: deno run --allow-ffi --allow-read tests/process/worker_main.ts [terminate|throw|twice] [backend]
 */
import { createContext, initialize, MB, shutdown } from "../../mod.ts";

const [how = "terminate", backendArg = "host"] = Deno.args;
const backend = backendArg === "cuda" ? "cuda" : "host";

async function runWorker(): Promise<void> {
  const worker = new Worker(new URL("./worker_child.ts", import.meta.url), {
    type: "module",
  }); // a Worker inherits the main thread's permissions
  const ready = new Promise<string>((resolve, reject) => {
    worker.onmessage = (e) => resolve(String(e.data));
    worker.onerror = (e) => {
      e.preventDefault();
      resolve(`error: ${e.message}`);
    };
    const timer = setTimeout(() => reject(new Error("worker never reported")), 30_000);
    Deno.unrefTimer(timer);
  });
  worker.postMessage({ how: how === "throw" ? "throw" : "busy", backend });
  const said = await ready;
  console.log(`worker: ${said}`);
  if (how !== "throw" && said !== "in flight") throw new Error(`worker said ${said}`);
  worker.terminate();
}

await runWorker();
if (how === "twice") await runWorker();

// The Worker's isolate is gone without shutdown(): its scheduler must not
// hold libsched forever (initialize waits for the Worker's thread to end).
const sched = initialize({ backend, memoryLimit: 512 * MB, hostMemory: 512 * MB });
const ctx = createContext("main", { maxVram: 256 * MB });
const buf = ctx.alloc(1 * MB);
const data = new Uint8Array(1 * MB).map((_, i) => i & 0xff);
await buf.write(data);
const back = new Uint8Array(1 * MB);
await buf.read(back);
if (!back.every((v, i) => v === (i & 0xff))) throw new Error("round trip after takeover differs");
console.log(`main initialized ${sched.backend} after the worker`);
shutdown();
