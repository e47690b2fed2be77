/**
 * Scale: the cost of a cached alloc + free must not grow with how much the
 * scheduler holds. Measured through a context with 1, 10, 100 and 1000
 * contexts existing, and through a MemoryPool with 10^3 to 10^6 other blocks
 * live (256 bytes each, the smallest class, so a million fit anywhere).
 *
 * Before each size, a "setup:" benchmark of the same group grows the
 * population (contexts and live blocks only ever grow). deno bench runs a
 * group's benchmarks in registration order but groups one after another, so
 * the setup shares the measured row's group. Growing inside the measured
 * function instead made its first call slow, and deno bench then timed each
 * call on its own rather than in batches, adding 60-190 ns of timer cost to
 * those rows alone (seen on an H200, 2026-11-27).
 *
 * Run: deno task bench (backend auto; GPUSCHED_BACKEND=host|cuda to force
 * one). The live-block setup allocates a million blocks, a few seconds.
 */
import {
  createContext,
  type ExecutionContext,
  MB,
  MemoryPool,
  type PoolBlock,
  QoSPolicy,
} from "../mod.ts";
import { benchScheduler } from "./_backend.ts";

const sched = benchScheduler();

const contexts: ExecutionContext[] = [];
/** Grows the number of existing contexts to n (each with a small budget). */
function ensureContexts(n: number): ExecutionContext {
  while (contexts.length < n) {
    contexts.push(
      createContext(`scale-${contexts.length}`, { maxVram: 4 * MB, qos: QoSPolicy.BEST_EFFORT }),
    );
  }
  return contexts[0]!;
}

for (const n of [1, 10, 100, 1000]) {
  Deno.bench(`setup: grow to ${n} contexts`, { group: "contexts" }, () => {
    ensureContexts(n).alloc(64 * 1024).free(); // also warms the size class
  });
  Deno.bench(`ctx.alloc + free, cached 64 KiB, ${n} contexts exist`, {
    group: "contexts",
    baseline: n === 1,
  }, () => {
    contexts[0]!.alloc(64 * 1024).free();
  });
}

const stream = sched.createStream();
const pool = new MemoryPool({ quota: 1024 * MB, stream });
const live: PoolBlock[] = [];
/** Grows the number of live blocks in the pool to n. */
function ensureLive(n: number): void {
  while (live.length < n) live.push(pool.allocate(256));
}

for (const n of [1_000, 10_000, 100_000, 1_000_000]) {
  Deno.bench(`setup: grow to ${n} live blocks`, { group: "live blocks" }, () => {
    ensureLive(n);
    pool.allocate(4096).free(); // warms the size class
  });
  Deno.bench(`MemoryPool allocate + free, cached 4 KiB, ${n} blocks live`, {
    group: "live blocks",
    baseline: n === 1_000,
  }, () => {
    pool.allocate(4096).free();
  });
}
