/**
 * Adversarial re-entrancy and teardown (README "Re-entrant handlers",
 * "Sleeping contexts"; API.md handler contract): pressure handlers that
 * allocate, free, destroy, sleep, wake and shut down; shutdown and destroy
 * with work in flight, then initialize again. Written from API.md and
 * README.md only (native handle counts read through the debug counter).
 */
import assert from "node:assert/strict";
import {
  AdmissionError,
  contextSession,
  createContext,
  currentContext,
  destroyContext,
  type DeviceBuffer,
  type ExecutionContext,
  getAvailableVram,
  getContextUsage,
  getMetrics,
  initialize,
  MB,
  MemoryPool,
  onMemoryPressure,
  QoSPolicy,
  recordEvent,
  SchedulerError,
  shutdown,
  VramBudgetExceededError,
  waitEvent,
} from "../mod.ts";
import { nativeCounts } from "../src/native/debug_counts.ts";
import { assertBudgetRefusal, attempt, caught, probe, rejected } from "./_probe.ts";

const LIMIT = { hostMemory: 64 * MB };

function pattern(n: number, seed: number): Uint8Array {
  return new Uint8Array(n).map((_, i) => (i * 13 + seed) & 0xff);
}

/** Registers `handler` for the duration of `fn`. */
function withHandler<T>(handler: Parameters<typeof onMemoryPressure>[0], fn: () => T): T {
  const off = onMemoryPressure(handler);
  try {
    return fn();
  } finally {
    off();
  }
}

probe("a handler that allocates in the asking context never pushes it past maxVram", () => {
  const ctx = createContext("c", { maxVram: 16 * MB });
  const held = [ctx.alloc(12 * MB)];
  let depth = 0;
  const result = withHandler((asker) => {
    if (asker === ctx && depth < 5) {
      depth++;
      const e = attempt(() => held.push(ctx.alloc(2 * MB)));
      if (e !== undefined) assert.ok(e instanceof VramBudgetExceededError, `${e}`);
    }
    return true;
  }, () => attempt(() => held.push(ctx.alloc(4 * MB))));
  assert.ok(getContextUsage(ctx).used <= 16 * MB, `used ${getContextUsage(ctx).used}`);
  if (result !== undefined) assertBudgetRefusal(result, ctx, 4 * MB);
  for (const b of held) b.free();
  assert.equal(getContextUsage(ctx).used, 0);
}, LIMIT);

probe("a handler that recursively allocates (every level under pressure) terminates", () => {
  const ctx = createContext("c", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT });
  const hog = createContext("hog", { maxVram: 64 * MB, qos: QoSPolicy.GUARANTEED });
  void hog;
  let calls = 0;
  const e = withHandler(() => {
    calls++;
    if (calls < 50) attempt(() => ctx.alloc(1 * MB));
    return true;
  }, () => caught(() => ctx.alloc(1 * MB)));
  assertBudgetRefusal(e, ctx, 1 * MB);
  assert.equal(getContextUsage(ctx).used, 0);
  assert.equal(calls, 50);
}, LIMIT);

probe("a handler that frees the asker's buffers lets the allocation succeed", async () => {
  const ctx = createContext("c", { maxVram: 16 * MB });
  const old = ctx.alloc(12 * MB);
  const fresh = withHandler(() => {
    old.free();
    return true;
  }, () => ctx.alloc(8 * MB));
  assert.equal(fresh.size, 8 * MB);
  assert.equal(getContextUsage(ctx).used, 8 * MB);
  const data = pattern(8 * MB, 1);
  await fresh.write(data);
  const out = new Uint8Array(8 * MB);
  await fresh.read(out);
  assert.deepEqual(out, data);
}, LIMIT);

probe("a handler that destroys the asker: SchedulerError, and nothing leaks", () => {
  const before = getAvailableVram();
  const ctx = createContext("c", { maxVram: 64 * MB, baseVram: 8 * MB, qos: QoSPolicy.BURSTABLE });
  const other = createContext("o", { maxVram: 56 * MB, qos: QoSPolicy.GUARANTEED });
  ctx.alloc(8 * MB);
  const e = withHandler((asker) => {
    destroyContext(asker);
    return true;
  }, () => caught(() => ctx.alloc(4 * MB)));
  assert.ok(e instanceof SchedulerError, `got ${e}`);
  assert.equal(ctx.alive, false);
  destroyContext(other);
  assert.equal(getAvailableVram(), before);
}, LIMIT);

probe("a handler that destroys another context makes room for the asker", () => {
  const g = createContext("g", { maxVram: 48 * MB, qos: QoSPolicy.GUARANTEED });
  const ctx = createContext("c", { maxVram: 64 * MB });
  const b = withHandler(() => {
    if (g.alive) destroyContext(g);
    return true;
  }, () => ctx.alloc(32 * MB));
  assert.equal(getContextUsage(ctx).used, 32 * MB);
  b.free();
}, LIMIT);

probe("a handler that registers and unregisters handlers mid-call", () => {
  const ctx = createContext("c", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT });
  createContext("g", { maxVram: 64 * MB, qos: QoSPolicy.GUARANTEED });
  const offs: (() => void)[] = [];
  let second = 0;
  const offSecond = onMemoryPressure(() => {
    second++;
    return true;
  });
  const offFirst = onMemoryPressure(() => {
    offSecond(); // unregister the other one while the list is being walked
    offs.push(onMemoryPressure(() => true)); // and add one
    return true;
  });
  try {
    assertBudgetRefusal(caught(() => ctx.alloc(1 * MB)), ctx, 1 * MB);
    assertBudgetRefusal(caught(() => ctx.alloc(1 * MB)), ctx, 1 * MB);
  } finally {
    offFirst();
    for (const off of offs) off();
  }
  assert.ok(second <= 1, `an unregistered handler is not called again (${second})`);
}, LIMIT);

probe("a handler that shuts down: SchedulerError, then initialize works again", () => {
  const ctx = createContext("c", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT });
  createContext("g", { maxVram: 64 * MB, qos: QoSPolicy.GUARANTEED });
  onMemoryPressure(() => {
    shutdown();
    return true;
  });
  const e = caught(() => ctx.alloc(1 * MB));
  assert.ok(e instanceof SchedulerError, `got ${e}`);
  assert.equal(ctx.alive, false);
  assert.equal(nativeCounts().deviceAllocations, 0);
  initialize({ backend: "host", hostMemory: 64 * MB });
  // The old handler is gone with the old scheduler.
  const c2 = createContext("c", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT });
  createContext("g", { maxVram: 64 * MB, qos: QoSPolicy.GUARANTEED });
  assertBudgetRefusal(caught(() => c2.alloc(1 * MB)), c2, 1 * MB);
}, LIMIT);

probe("a handler that throws inside a session: the refusal carries it, the session holds", () => {
  const ctx = createContext("c", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT });
  createContext("g", { maxVram: 64 * MB, qos: QoSPolicy.GUARANTEED });
  const boom = new RangeError("boom");
  withHandler(() => {
    throw boom;
  }, () => {
    using _s = contextSession(ctx);
    const e = caught(() => ctx.alloc(1 * MB));
    assert.ok(e instanceof VramBudgetExceededError);
    assert.equal(e.cause, boom);
    assert.equal(currentContext(), ctx);
  });
  assert.equal(currentContext(), undefined);
}, LIMIT);

probe("a handler that puts another context to sleep", async () => {
  const sleeper = createContext("s", { maxVram: 32 * MB, qos: QoSPolicy.GUARANTEED });
  const buf = sleeper.alloc(32 * MB);
  const data = pattern(32 * MB, 3);
  await buf.write(data);
  const ctx = createContext("c", { maxVram: 64 * MB });
  let slept: Promise<void> | undefined;
  const result = withHandler(() => {
    slept ??= sleeper.sleep();
    return true;
  }, () => attempt(() => ctx.alloc(48 * MB)));
  await slept;
  assert.equal(sleeper.sleeping, true);
  if (result !== undefined) assertBudgetRefusal(result, ctx, 48 * MB);
  // Either way the sleeper's data is intact once it can wake.
  if (result === undefined) destroyContext(ctx);
  const ctx2 = createContext("c2", { maxVram: 64 * MB });
  const held = ctx2.alloc(40 * MB); // leaves 24 of 64: the sleeper's 32 cannot come back
  await assert.rejects(() => sleeper.wake(), AdmissionError);
  assert.equal(sleeper.sleeping, true);
  held.free();
  destroyContext(ctx2);
  destroyContext(ctx);
  await sleeper.wake();
  const out = new Uint8Array(32 * MB);
  await buf.read(out);
  assert.deepEqual(out, data);
}, LIMIT);

probe("a handler that wakes a sleeping context while another allocates", async () => {
  const sleeper = createContext("s", { maxVram: 16 * MB });
  const buf = sleeper.alloc(16 * MB);
  const data = pattern(16 * MB, 4);
  await buf.write(data);
  await sleeper.sleep();
  const ctx = createContext("c", { maxVram: 64 * MB, qos: QoSPolicy.GUARANTEED });
  const woke: Promise<void>[] = [];
  const a = ctx.alloc(40 * MB);
  const result = withHandler(() => {
    if (woke.length === 0) {
      woke.push(sleeper.wake().catch((e) => assert.ok(e instanceof AdmissionError)));
    }
    return true;
  }, () => attempt(() => ctx.alloc(16 * MB)));
  await Promise.all(woke);
  // Whatever happened, the device was never over-committed and data is intact.
  const used = getContextUsage(ctx).used + getContextUsage(sleeper).used;
  assert.ok(used <= 64 * MB, `used ${used}`);
  if (result instanceof Error) assertBudgetRefusal(result, ctx, 16 * MB);
  else (result as unknown as DeviceBuffer | undefined)?.free?.();
  a.free();
  destroyContext(ctx);
  if (sleeper.sleeping) await sleeper.wake();
  const out = new Uint8Array(16 * MB);
  await buf.read(out);
  assert.deepEqual(out, data);
}, LIMIT);

probe("shutdown with writes, reads, copies, syncs, sleeps and wakes in flight", async () => {
  const a = createContext("a", { maxVram: 32 * MB });
  const b = createContext("b", { maxVram: 32 * MB });
  const c = createContext("c", { maxVram: 32 * MB });
  const x = a.alloc(8 * MB), y = b.alloc(8 * MB), z = c.alloc(8 * MB);
  await z.write(pattern(8 * MB, 1));
  const pending: Promise<unknown>[] = [
    x.write(pattern(8 * MB, 2)),
    y.read(new Uint8Array(8 * MB)),
    y.copyFrom(x),
    a.stream.synchronize(),
    recordEvent(b).synchronize(),
    c.sleep(),
  ];
  waitEvent(a, recordEvent(b));
  for (const p of pending) p.catch(() => {});
  shutdown();
  const settled = await Promise.allSettled(pending);
  for (const s of settled) {
    if (s.status === "rejected") assert.ok(s.reason instanceof Error, String(s.reason));
  }
  assert.deepEqual(
    { ...nativeCounts(), pinnedBytes: 0, pinnedAllocations: 0 },
    {
      streams: 0,
      events: 0,
      pools: 0,
      partitions: 0,
      deviceAllocations: 0,
      pinnedAllocations: 0,
      pinnedBytes: 0,
      deviceBytes: 0,
    },
  );
  for (let round = 0; round < 3; round++) {
    initialize({ backend: "host", hostMemory: 64 * MB });
    const d = createContext("a", { maxVram: 64 * MB, qos: QoSPolicy.GUARANTEED });
    const buf = d.alloc(64 * MB);
    const w = buf.write(pattern(64 * MB, round));
    const s = d.sleep();
    w.catch(() => {});
    s.catch(() => {});
    if (round < 2) {
      shutdown();
      await Promise.allSettled([w, s]);
    } else {
      await w;
      await s;
      await d.wake();
      const out = new Uint8Array(64 * MB);
      await buf.read(out);
      assert.deepEqual(out, pattern(64 * MB, round));
    }
  }
}, LIMIT);

probe("destroyContext with a write, a read and a sleep in flight", async () => {
  for (let i = 0; i < 20; i++) {
    const ctx = createContext(`c${i}`, { maxVram: 16 * MB });
    const buf = ctx.alloc(4 * MB);
    const pending = [buf.write(pattern(4 * MB, i)), buf.read(new Uint8Array(4 * MB))];
    if (i % 2) pending.push(ctx.sleep());
    for (const p of pending) p.catch(() => {});
    destroyContext(ctx);
    const settled = await Promise.allSettled(pending);
    for (const s of settled) {
      if (s.status === "rejected") assert.ok(s.reason instanceof Error, String(s.reason));
    }
    assert.equal(ctx.alive, false);
  }
  assert.equal(getAvailableVram(), 64 * MB);
  assert.equal(nativeCounts().deviceBytes, 0);
}, LIMIT);

probe("destroyContext while wake() is in flight", async () => {
  for (let i = 0; i < 20; i++) {
    const ctx = createContext(`c${i}`, { maxVram: 16 * MB, qos: QoSPolicy.GUARANTEED });
    const buf = ctx.alloc(8 * MB);
    await buf.write(pattern(8 * MB, i));
    await ctx.sleep();
    const w = ctx.wake();
    w.catch(() => {});
    destroyContext(ctx);
    const r = await Promise.allSettled([w]);
    if (r[0]!.status === "rejected") assert.ok(r[0]!.reason instanceof Error);
  }
  assert.equal(getAvailableVram(), 64 * MB);
}, LIMIT);

probe("free() while a write to the buffer is in flight", async () => {
  const ctx = createContext("c", { maxVram: 16 * MB });
  for (let i = 0; i < 50; i++) {
    const buf = ctx.alloc(1 * MB);
    const w = buf.write(pattern(1 * MB, i));
    w.catch(() => {});
    const e = attempt(() => buf.free());
    if (e !== undefined) assert.ok(e instanceof Error);
    await Promise.allSettled([w]);
    buf.free();
  }
  assert.equal(getContextUsage(ctx).used, 0);
  // Memory freed under in-flight work is reusable and correct.
  const buf = ctx.alloc(16 * MB);
  const data = pattern(16 * MB, 9);
  await buf.write(data);
  const out = new Uint8Array(16 * MB);
  await buf.read(out);
  assert.deepEqual(out, data);
}, LIMIT);

probe("an async session across a shutdown and a new initialize", async () => {
  const ctx = createContext("c", { maxVram: 16 * MB });
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const inside = contextSession(ctx, async () => {
    await gate;
    return attempt(() => ctx.alloc(1 * MB));
  });
  shutdown();
  initialize({ backend: "host", hostMemory: 64 * MB });
  const fresh = createContext("c", { maxVram: 16 * MB });
  release();
  const e = await inside;
  assert.ok(e instanceof SchedulerError, `old context after shutdown: ${e}`);
  // The new context of the same name is untouched by the old session.
  assert.equal(getContextUsage(fresh).used, 0);
  assert.equal(currentContext(), undefined);
}, LIMIT);

probe("a pool exhausted by tiny blocks, then emptied, leaves nothing behind", () => {
  const before = nativeCounts();
  const pool = new MemoryPool({ quota: 4 * MB });
  const blocks = [];
  let refused: unknown;
  for (let i = 0; i < 100_000; i++) {
    try {
      blocks.push(pool.allocate(256));
    } catch (e) {
      refused = e;
      break;
    }
  }
  assert.ok(refused instanceof VramBudgetExceededError, `quota reached: ${refused}`);
  assert.ok(refused.available < refused.requested);
  assert.ok(blocks.length >= 4 * MB / 512, `${blocks.length} blocks of 256 in 4 MiB`);
  for (const b of blocks) pool.free(b);
  assert.equal(pool.stats().activeBlocks, 0);
  pool.destroy();
  const after = nativeCounts();
  assert.equal(after.deviceBytes, before.deviceBytes);
  assert.equal(after.pools, before.pools);
}, LIMIT);

probe("contexts created until names, streams or memory run out, then destroyed", () => {
  const before = nativeCounts();
  const made: ExecutionContext[] = [];
  for (let i = 0; i < 5000; i++) {
    made.push(createContext(`ctx-${i}`, { maxVram: 1 * MB, qos: QoSPolicy.BEST_EFFORT }));
  }
  for (const ctx of made) destroyContext(ctx);
  const after = nativeCounts();
  assert.equal(after.streams, before.streams);
  assert.equal(after.events, before.events);
  assert.equal(getAvailableVram(), 64 * MB);
}, LIMIT);

probe("a handler whose context creations recurse (each needs room) leaves accounts exact", () => {
  createContext("k", { maxVram: 32 * MB, qos: QoSPolicy.GUARANTEED });
  const be = createContext("be", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT });
  be.alloc(32 * MB, { evictable: true });
  // Bounded: a handler recursing without bound ends in a stack overflow, which can interrupt
  // the library anywhere (user code's infinite recursion, not tested).
  let depth = 0;
  const refusals: unknown[] = [];
  const off = onMemoryPressure(() => {
    if (depth < 5) {
      depth++;
      try {
        // Each creation needs room, so it asks this handler again.
        createContext("thief", { maxVram: 32 * MB, qos: QoSPolicy.GUARANTEED });
      } catch (e) {
        refusals.push(e);
      } finally {
        depth--;
      }
    }
    return true;
  });
  try {
    const e = attempt(() => createContext("l", { maxVram: 32 * MB, qos: QoSPolicy.GUARANTEED }));
    assert.ok(e instanceof AdmissionError, `the thief took the room: ${e}`);
  } finally {
    off();
  }
  for (const e of refusals) assert.ok(e instanceof RangeError, `inner: ${e}`); // name taken
  const names = getMetrics().contexts.map((c) => c.name).sort();
  assert.deepEqual(names, ["be", "k", "thief"]);
  assert.equal(getContextUsage(be).evicted, 32 * MB);
  assert.equal(getAvailableVram(), 0);
}, LIMIT);

/** A context asleep with two 16 MiB buffers, and a best-effort one holding 40 MiB of 64. */
async function sleeperUnderPressure() {
  const w = createContext("w", { maxVram: 32 * MB });
  const bufs = [w.alloc(16 * MB), w.alloc(16 * MB)];
  await bufs[0]!.write(pattern(16 * MB, 1));
  await bufs[1]!.write(pattern(16 * MB, 2));
  await w.sleep();
  const be = createContext("be", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT });
  be.alloc(40 * MB, { evictable: true });
  return { w, bufs, be };
}

/** Registers `act` as a handler that runs once, for an allocation of `ctx`. */
function onceFor(ctx: ExecutionContext, act: () => void): () => void {
  let done = false;
  return onMemoryPressure((asker) => {
    if (!done && asker === ctx) {
      done = true;
      act();
    }
    return true;
  });
}

probe(
  "a handler that frees a buffer of the waking context: the wake goes on without it",
  async () => {
    const { w, bufs } = await sleeperUnderPressure();
    const off = onceFor(w, () => bufs[1]!.free());
    try {
      await w.wake(); // failed with "it was freed by a memory-pressure handler" before the fix
    } finally {
      off();
    }
    assert.equal(w.sleeping, false);
    assert.equal(getContextUsage(w).used, 16 * MB);
    assert.equal(getContextUsage(w).evicted, 0);
    const out = new Uint8Array(16 * MB);
    await bufs[0]!.read(out);
    assert.deepEqual(out, pattern(16 * MB, 1));
  },
  LIMIT,
);

probe("handlers during a wake: join it, refuse sleep and alloc, destroy others", async () => {
  const { w, bufs, be } = await sleeperUnderPressure();
  let joined: Promise<void> | undefined;
  let slept: Promise<unknown> | undefined;
  let allocError: unknown;
  const off = onceFor(w, () => {
    joined = w.wake();
    slept = w.sleep().catch((e) => e);
    allocError = attempt(() => w.alloc(1 * MB));
    destroyContext(be);
  });
  try {
    await w.wake();
  } finally {
    off();
  }
  await joined;
  assert.ok((await slept) instanceof SchedulerError, "sleep() while waking is refused");
  assert.ok(allocError instanceof SchedulerError, `alloc while waking: ${allocError}`);
  assert.equal(w.sleeping, false);
  for (const [i, buf] of bufs.entries()) {
    const out = new Uint8Array(16 * MB);
    await buf.read(out);
    assert.deepEqual(out, pattern(16 * MB, i + 1));
  }
}, LIMIT);

probe("a handler that destroys the waking context: SchedulerError, nothing held", async () => {
  const { w } = await sleeperUnderPressure();
  const off = onceFor(w, () => destroyContext(w));
  try {
    assert.ok((await rejected(() => w.wake())) instanceof SchedulerError);
  } finally {
    off();
  }
  assert.equal(w.alive, false);
  assert.equal(getAvailableVram(), 64 * MB - 40 * MB, "the destroyed sleeper holds nothing");
}, LIMIT);

probe("a handler that shuts down during a wake: SchedulerError, nothing left", async () => {
  const { w } = await sleeperUnderPressure();
  onceFor(w, () => shutdown());
  assert.ok((await rejected(() => w.wake())) instanceof SchedulerError);
  assert.equal(nativeCounts().deviceAllocations, 0);
  initialize({ backend: "host", hostMemory: 64 * MB });
}, LIMIT);
