/**
 * Scale: the cost of a cached alloc + free must not grow with how much the
 * scheduler holds. Measured through a context with 1, 10, 100 and 1000
 * contexts existing, and through a MemoryPool with 10^3 to 10^6 other blocks
 * live (256 bytes each, the smallest class, so a million fit anywhere).
 *
 * Each row grows the population first (contexts and live blocks only ever
 * grow; deno bench runs a group's rows in registration order), outside the
 * timed part: `b.start()` / `b.end()` bracket a batch of OPS operations, so
 * the growth is neither timed nor reported as a benchmark of its own, and
 * the timer's own cost (60-190 ns when deno bench times a call on its own,
 * seen on an H200, 2026-11-27) is spread over the batch. A row's time is per
 * batch; bench:gpu divides by OPS (the "(N per iteration)" in its name).
 *
 * Run: deno task bench (backend auto; GPUSCHED_BACKEND=host|cuda to force
 * one). The first live-block row allocates a million blocks, a few seconds.
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

const sched = benchScheduler({ banner: false });

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

/** Operations per timed iteration. */
const OPS = 1000;

for (const n of [1, 10, 100, 1000]) {
  Deno.bench(`ctx.alloc + free, cached 64 KiB, ${n} contexts exist (${OPS} per iteration)`, {
    group: "contexts",
    baseline: n === 1,
  }, (b) => {
    const ctx = ensureContexts(n);
    ctx.alloc(64 * 1024).free(); // warms the size class
    b.start();
    for (let i = 0; i < OPS; i++) ctx.alloc(64 * 1024).free();
    b.end();
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
  Deno.bench(`MemoryPool allocate + free, cached 4 KiB, ${n} blocks live (${OPS} per iteration)`, {
    group: "live blocks",
    baseline: n === 1_000,
  }, (b) => {
    ensureLive(n);
    pool.allocate(4096).free(); // warms the size class
    b.start();
    for (let i = 0; i < OPS; i++) pool.allocate(4096).free();
    b.end();
  });
}
