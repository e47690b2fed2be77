/**
 * Shared setup for benchmarks: initializes the scheduler on the backend
 * named by GPUSCHED_BACKEND (auto, cuda or host; default auto) and says
 * which device the figures come from.
 */
import { initialize, type Scheduler } from "../mod.ts";

/** Initializes once for the whole bench file and prints the device. */
export function benchScheduler(): Scheduler {
  const state = Deno.permissions.querySync({ name: "env", variable: "GPUSCHED_BACKEND" }).state;
  const choice = (state === "granted" ? Deno.env.get("GPUSCHED_BACKEND") : undefined) ?? "auto";
  const sched = initialize({ backend: choice as "auto" | "cuda" | "host" });
  console.log(`gpusched bench: backend ${sched.backend}, device ${sched.device.name}`);
  return sched;
}
