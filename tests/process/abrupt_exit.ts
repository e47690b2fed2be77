/**
 * A program that ends abruptly while gpusched work is in flight: 128 MiB
 * writes and reads queued on a context's stream, or a user host kernel
 * running on it. Run by tests/process_test.ts in a subprocess; the exit
 * code must be the one Deno gives (1 for an uncaught error), never a crash.
 *
 * Usage: deno run --allow-ffi tests/process/abrupt_exit.ts <ending> [work] [backend]
 *   ending: throw | reject | exit | exit-in-await | signal-handler | hang (for a signal from outside)
 *   work:   copies (default) | kernel | both
 */
import { createContext, initialize, MB } from "../../mod.ts";
import { localLibraryPath } from "../../src/native/loader.ts";

const [ending = "throw", work = "copies", backendArg = "host"] = Deno.args;
const backend = backendArg === "cuda" ? "cuda" : "host";
const sched = initialize({ backend, memoryLimit: 1024 * MB, hostMemory: 1024 * MB });
const ctx = createContext("abrupt", { maxVram: 900 * MB });
const pending: Promise<void>[] = [];

if (work === "kernel" || work === "both") {
  const file = sched.backend === "cuda" ? "libgskernels.so" : "libgskernels_host.so";
  const kernels = Deno.dlopen(localLibraryPath(file), {
    gs_spin_ns: { parameters: ["pointer", "u64", "i32"], result: "i32" },
  });
  // Seconds of "kernel" time: still running when the program ends.
  kernels.symbols.gs_spin_ns(ctx.stream.handle, 1_000_000_000n, 1);
}
if (work === "copies" || work === "both") {
  for (let i = 0; i < 2; i++) {
    const buf = ctx.alloc(128 * MB);
    pending.push(buf.write(new Uint8Array(128 * MB)));
    pending.push(buf.read(new Uint8Array(128 * MB)));
  }
}
for (const p of pending) p.catch(() => {});
// The parent waits for this line before it signals or expects the end.
console.log("in flight");

switch (ending) {
  case "throw":
    throw new Error("abrupt end: uncaught exception with work in flight");
  case "reject":
    Promise.reject(new Error("abrupt end: unhandled rejection with work in flight"));
    break;
  case "exit":
    Deno.exit(3);
    break;
  case "exit-in-await":
    await Promise.race([pending[0], new Promise((r) => setTimeout(r, 1))]);
    Deno.exit(4);
    break;
  case "signal-handler":
    Deno.addSignalListener("SIGINT", () => Deno.exit(130));
    setTimeout(() => {}, 60_000);
    break;
  case "hang":
    setTimeout(() => {}, 60_000);
    break;
  default:
    throw new Error(`unknown ending ${ending}`);
}
