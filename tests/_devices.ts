/**
 * Registration of tests that need several devices: two simulated devices on
 * the host backend, and every visible device on CUDA when there are two or
 * more (ignored with the reason otherwise).
 */
import { initialize, MB, type Scheduler, shutdown } from "../mod.ts";
import { BackendId } from "../src/native/status_codes.ts";
import type { BackendName } from "../src/scheduler.ts";
import { cudaSkipReason, lib } from "./_helpers.ts";

function cudaDevices(): number {
  if (cudaSkipReason !== undefined) return 0;
  const out = new Int32Array(1);
  return lib().sched_device_count(BackendId.CUDA, out) === 0 ? out[0]! : 0;
}

const CUDA_SKIP = cudaSkipReason ??
  (cudaDevices() < 2 ? `${cudaDevices()} CUDA device(s), these tests need 2` : undefined);

/**
 * Registers `fn` on the host backend with two simulated devices of
 * `deviceMemory` bytes each (the limit on CUDA too), and on CUDA when at
 * least two devices are visible.
 */
export function multiDeviceTest(
  name: string,
  fn: (sched: Scheduler, backend: BackendName) => void | Promise<void>,
  deviceMemory = 64 * MB,
): void {
  for (const backend of ["host", "cuda"] as const) {
    const skip = backend === "cuda" ? CUDA_SKIP : undefined;
    Deno.test({
      name: `[${backend}, several devices] ${name}${skip ? ` (skipped: ${skip})` : ""}`,
      ignore: skip !== undefined,
      async fn() {
        const sched = initialize({
          backend,
          hostDevices: 2,
          hostMemory: deviceMemory,
          memoryLimit: deviceMemory,
        });
        try {
          await fn(sched, backend);
        } finally {
          shutdown();
        }
      },
    });
  }
}
