/**
 * Flat cost with several devices (issue 11): `ctx.alloc` + free of a cached
 * 64 KiB block, round-robin over every context, with 1, 2, 4 and 8 devices
 * and 1, 100 and 1000 contexts per device. The host backend simulates the
 * devices (the TypeScript hot path, which never crosses FFI for a cached
 * size, is the same there as on CUDA); on CUDA only the visible devices.
 * Prints one JSON line per case: ns per alloc + free, the best of 5 rounds
 * of 40,000 operations after a warm-up pass (the best round, because on a
 * shared machine the others measure the neighbours).
 *
 * Run: deno run --allow-ffi --allow-env=GPUSCHED_LIB,GPUSCHED_BACKEND bench/devices_scale.ts
 */
import { createContext, type ExecutionContext, initialize, KB, MB, shutdown } from "../mod.ts";

const OPS = 40_000;
const ROUNDS = 5;
const SIZE = 64 * KB;

const state = Deno.permissions.querySync({ name: "env", variable: "GPUSCHED_BACKEND" }).state;
const backend = ((state === "granted" ? Deno.env.get("GPUSCHED_BACKEND") : undefined) ?? "host") as
  | "cuda"
  | "host";

function run(devices: number, perDevice: number): number | undefined {
  const sched = initialize({ backend, hostDevices: devices, hostMemory: 1024 * MB });
  try {
    if (sched.devices.length < devices) return undefined;
    const contexts: ExecutionContext[] = [];
    for (let d = 0; d < devices; d++) {
      for (let i = 0; i < perDevice; i++) {
        contexts.push(createContext(`c${d}-${i}`, { maxVram: 1 * MB, device: d }));
      }
    }
    for (const ctx of contexts) ctx.alloc(SIZE).free(); // every size class cached
    const n = contexts.length;
    for (let i = 0; i < OPS; i++) contexts[i % n]!.alloc(SIZE).free();
    let best = Infinity;
    for (let r = 0; r < ROUNDS; r++) {
      const t0 = performance.now();
      for (let i = 0; i < OPS; i++) contexts[i % n]!.alloc(SIZE).free();
      best = Math.min(best, ((performance.now() - t0) * 1e6) / OPS);
    }
    return best;
  } finally {
    shutdown();
  }
}

for (const devices of [1, 2, 4, 8]) {
  for (const perDevice of [1, 100, 1000]) {
    const ns = run(devices, perDevice);
    console.log(JSON.stringify(
      ns === undefined
        ? { backend, devices, contextsPerDevice: perDevice, skipped: "fewer devices here" }
        : { backend, devices, contextsPerDevice: perDevice, nsPerAllocFree: +ns.toFixed(1) },
    ));
  }
}
