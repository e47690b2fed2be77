/**
 * Shared setup for benchmarks: initializes the scheduler on the backend
 * named by `--backend auto|cuda|host` (after `--` for deno bench) or else
 * GPUSCHED_BACKEND (default auto), and says which device the figures come
 * from.
 */
import { initialize, type Scheduler } from "../mod.ts";
import { type BackendChoice, backendOption } from "../examples/_backend.ts";

/** The backend asked for: the --backend flag, then GPUSCHED_BACKEND, then auto. */
export function benchBackend(args: readonly string[] = Deno.args): BackendChoice {
  const flag = backendOption(args);
  if (flag !== undefined) return flag;
  const state = Deno.permissions.querySync({ name: "env", variable: "GPUSCHED_BACKEND" }).state;
  const env = state === "granted" ? Deno.env.get("GPUSCHED_BACKEND") : undefined;
  if (env === undefined || env === "") return "auto";
  if (env === "auto" || env === "cuda" || env === "host") return env;
  throw new RangeError(`GPUSCHED_BACKEND must be host, cuda or auto, got ${JSON.stringify(env)}`);
}

/** The line that names the backend and device; bench/gpu.ts reads it back. */
export function benchBanner(sched: Scheduler): string {
  return `gpusched bench: backend ${sched.backend}, device ${sched.device.name}`;
}

/**
 * Initializes once for the whole bench file and, unless `banner` is false,
 * prints the device. Bench suites (`*_bench.ts`) pass false: under
 * `deno bench` a file's module runs while the previous file's table is still
 * being printed, so its line would land inside that table; the bench tasks
 * print it once first instead (bench/banner.ts).
 */
export function benchScheduler(options: { banner?: boolean } = {}): Scheduler {
  const sched = initialize({ backend: benchBackend() });
  if (options.banner ?? true) console.log(benchBanner(sched));
  return sched;
}
