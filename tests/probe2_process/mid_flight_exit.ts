/**
 * Ends a program abruptly with other kinds of gpusched work in flight than
 * tests/process/abrupt_exit.ts covers: a sleep() falling, a wake() rising,
 * host waits (stream and event synchronize) behind a long host kernel, a
 * copyFrom across two devices, and a Worker that holds its own scheduler.
 * Run by tests/probe2_process_test.ts; the exit code must be the one Deno
 * gives, never a crash.
 *
 * Usage: deno run --allow-ffi --allow-read tests/probe2_process/mid_flight_exit.ts <ending> <work> [backend]
 *   ending: exit | throw | reject
 *   work:   sleep | wake | waits | copy
 */
import { createContext, getStream, initialize, MB, recordEvent, shutdown } from "../../mod.ts";
import { localLibraryPath } from "../../src/native/loader.ts";

const [ending = "exit", work = "sleep", backendArg = "host"] = Deno.args;
const backend = backendArg === "cuda" ? "cuda" : "host";
const sched = initialize({
  backend,
  hostDevices: 2,
  memoryLimit: 1024 * MB,
  hostMemory: 1024 * MB,
});
const ctx = createContext("flight", { maxVram: 600 * MB });
const pending: Promise<unknown>[] = [];

const big = () => {
  const buf = ctx.alloc(128 * MB);
  pending.push(buf.write(new Uint8Array(128 * MB).fill(1)));
  return buf;
};

switch (work) {
  case "sleep":
    big();
    big();
    pending.push(ctx.sleep());
    break;
  case "wake": {
    big();
    await ctx.sleep();
    pending.push(ctx.wake());
    break;
  }
  case "waits": {
    const file = sched.backend === "cuda" ? "libgskernels.so" : "libgskernels_host.so";
    const kernels = Deno.dlopen(localLibraryPath(file), {
      gs_spin_ns: { parameters: ["pointer", "u64", "i32"], result: "i32" },
    });
    kernels.symbols.gs_spin_ns(getStream(ctx).handle, 2_000_000_000n, 1);
    const ev = recordEvent(ctx);
    pending.push(getStream(ctx).synchronize(), ev.synchronize());
    break;
  }
  case "copy": {
    const other = createContext("other", { maxVram: 300 * MB, device: sched.devices.length - 1 });
    const src = big();
    const dst = other.alloc(128 * MB);
    pending.push(dst.copyFrom(src), src.copyFrom(dst));
    break;
  }
  default:
    throw new Error(`unknown work ${work}`);
}
for (const p of pending) p.catch(() => {});
console.log("in flight");

switch (ending) {
  case "exit":
    Deno.exit(7);
    break;
  case "throw":
    throw new Error("mid-flight end: uncaught");
  case "reject":
    Promise.reject(new Error("mid-flight end: unhandled"));
    break;
  case "clean":
    await Promise.allSettled(pending);
    shutdown();
    console.log("clean end");
    break;
  default:
    throw new Error(`unknown ending ${ending}`);
}
