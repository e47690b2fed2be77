/**
 * The demo's sleep phase: once the llm has answered, it is put to sleep
 * (its weights to pinned host memory, its reservation given back) and woken
 * again, the way a server swaps an idle model out and back in. The report
 * shows how long each way took and the wake's bandwidth.
 */
import { type ExecutionContext, getContextUsage } from "../../mod.ts";
import { mib, ms } from "./report.ts";

/** What one sleep and wake of a context measured. */
export interface SleepWake {
  readonly name: string;
  readonly bytes: number;
  readonly sleepMs: number;
  readonly wakeMs: number;
}

/** Puts ctx to sleep and wakes it; its buffers come back at the same addresses. */
export async function sleepAndWake(ctx: ExecutionContext): Promise<SleepWake> {
  const bytes = getContextUsage(ctx).used;
  const start = performance.now();
  await ctx.sleep();
  const slept = performance.now();
  await ctx.wake();
  const woke = performance.now();
  return { name: ctx.name, bytes, sleepMs: slept - start, wakeMs: woke - slept };
}

/** One line for the report. */
export function describeSleepWake(r: SleepWake): string {
  const gbps = r.bytes / (r.wakeMs / 1000) / 1e9;
  return `${r.name} slept (${mib(r.bytes)} to pinned host memory) in ${ms(r.sleepMs)}, ` +
    `woke in ${ms(r.wakeMs)} (${gbps.toFixed(1)} GB/s), every buffer at its address`;
}
