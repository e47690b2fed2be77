/**
 * Sleeping contexts and stable device addresses (API.md "Sleeping contexts
 * and stable device addresses"): every state and bad-input case, on every
 * backend.
 */
import assert from "node:assert/strict";
import {
  AdmissionError,
  createContext,
  destroyContext,
  type DeviceBuffer,
  type ExecutionContext,
  getAvailableVram,
  getContextUsage,
  getStream,
  initialize,
  MB,
  MemoryPool,
  onMemoryPressure,
  QoSPolicy,
  SchedulerError,
  shutdown,
  VramBudgetExceededError,
} from "../mod.ts";
import { backendTest, gate, hold, kernels, randomBytes } from "./_helpers.ts";
import { vmmUsage } from "../src/native/vmm.ts";

async function fill(buf: DeviceBuffer, seed: number): Promise<Uint8Array> {
  const data = randomBytes(buf.size, seed);
  await buf.write(data);
  return data;
}

async function readAll(
  buf: { size: number; read(out: Uint8Array): Promise<void> },
): Promise<Uint8Array> {
  const out = new Uint8Array(buf.size);
  await buf.read(out);
  return out;
}

function addr(buf: { ptr: Deno.PointerObject }): bigint {
  return Deno.UnsafePointer.value(buf.ptr);
}

function asleepError(ctx: ExecutionContext) {
  return (error: unknown) => {
    assert.ok(error instanceof SchedulerError, `expected SchedulerError, got ${error}`);
    assert.match((error as Error).message, new RegExp(`"${ctx.name}" is asleep`));
    return true;
  };
}

backendTest("an evicted buffer comes back at the same device address, bit-exact", async () => {
  const ctx = createContext("ctx", { maxVram: 8 * MB });
  const small = ctx.alloc(1000, { evictable: true });
  const big = ctx.alloc(3 * MB, { evictable: true });
  const a = await fill(small, 1), b = await fill(big, 2);
  const before = [addr(small), addr(big)];
  // Room for a 4 MiB buffer only by evicting both.
  const other = ctx.alloc(6 * MB);
  assert.equal(small.state, "evicted");
  assert.equal(big.state, "evicted");
  other.free();
  assert.deepEqual([addr(small), addr(big)], before, "ptr restores at the same address");
  assert.deepEqual(await readAll(small), a);
  assert.deepEqual(await readAll(big), b);
  assert.equal(getContextUsage(ctx).evicted, 0);
}, { hostMemory: 64 * MB });

backendTest("pointers stay 256-byte aligned for every size class, through sleep", async () => {
  const ctx = createContext("aligned", { maxVram: 8 * MB });
  const bufs = [1, 300, 320, 640, 700, 1000, 4097, 70_000].map((n) => ctx.alloc(n));
  const data = await Promise.all(bufs.map((b, i) => fill(b, 40 + i)));
  const ptrs = bufs.map(addr);
  for (const p of ptrs) assert.equal(p % 256n, 0n, `ptr ${p.toString(16)} is 256-byte aligned`);
  assert.equal(new Set(ptrs).size, ptrs.length);
  await ctx.sleep();
  await ctx.wake();
  assert.deepEqual(bufs.map(addr), ptrs);
  for (let i = 0; i < bufs.length; i++) assert.deepEqual(await readAll(bufs[i]!), data[i]);
}, { hostMemory: 32 * MB });

backendTest("a pool block keeps its ptr through eviction and restore", async () => {
  using pool = new MemoryPool({ quota: 4 * MB, enableEviction: true });
  const block = pool.allocate(2 * MB, { evictable: true });
  const data = randomBytes(block.size, 3);
  await block.write(data);
  const before = addr(block);
  pool.evict(1);
  assert.equal(block.state, "evicted");
  await block.resident();
  assert.equal(addr(block), before);
  const out = new Uint8Array(block.size);
  await block.read(out);
  assert.deepEqual(out, data);
});

backendTest("sleep and wake: usage, addresses and bytes", async () => {
  const llm = createContext("llm", { maxVram: 32 * MB, qos: QoSPolicy.GUARANTEED });
  const bufs = [
    llm.alloc(100),
    llm.alloc(1 * MB),
    llm.alloc(5 * MB + 17, { evictable: true }),
    llm.alloc(3000),
  ];
  const data = await Promise.all(bufs.map((b, i) => fill(b, 10 + i)));
  const ptrs = bufs.map(addr);
  const awake = getContextUsage(llm);
  const freeBefore = getAvailableVram();
  await llm.sleep();
  assert.equal(llm.sleeping, true);
  const asleep = getContextUsage(llm);
  assert.equal(asleep.used, 0);
  assert.equal(asleep.reserved, 0);
  assert.equal(asleep.cached, 0);
  assert.equal(asleep.evicted, awake.used, "every byte is held on the host");
  assert.equal(asleep.max, 32 * MB);
  assert.equal(getAvailableVram(), freeBefore + 32 * MB, "the reservation is released for others");
  assert.equal(vmmUsage(0).mapped, 0, "the physical memory is really unmapped");
  assert.equal(vmmUsage(0).committed, 0);
  await llm.wake();
  assert.equal(llm.sleeping, false);
  const woken = getContextUsage(llm);
  assert.equal(woken.used, awake.used);
  assert.equal(woken.reserved, 32 * MB);
  assert.equal(woken.evicted, 0);
  assert.deepEqual(bufs.map(addr), ptrs, "every ptr is the same after wake");
  for (let i = 0; i < bufs.length; i++) assert.deepEqual(await readAll(bufs[i]!), data[i]);
  // A second cycle works the same.
  await llm.sleep();
  await llm.wake();
  for (let i = 0; i < bufs.length; i++) assert.deepEqual(await readAll(bufs[i]!), data[i]);
  assert.deepEqual(bufs.map(addr), ptrs);
}, { hostMemory: 64 * MB });

backendTest(
  "while asleep: alloc, ptr, write, read, pin and sleep refuse; free, usage, destroy work",
  async () => {
    const ctx = createContext("sleeper", { maxVram: 16 * MB });
    const keep = ctx.alloc(1 * MB);
    const drop = ctx.alloc(2 * MB);
    const data = await fill(keep, 5);
    await ctx.sleep();
    const isAsleep = asleepError(ctx);
    assert.throws(() => ctx.alloc(1024), isAsleep);
    assert.throws(() => keep.ptr, isAsleep);
    assert.throws(() => keep.pin(), isAsleep);
    await assert.rejects(keep.write(new Uint8Array(4)), isAsleep);
    await assert.rejects(keep.read(new Uint8Array(4)), isAsleep);
    await assert.rejects(keep.resident(), isAsleep);
    await assert.rejects(ctx.sleep(), isAsleep);
    assert.equal(ctx.sleeping, true, "a refused call changes nothing");
    // Bad input is still a TypeError/RangeError first where it always was.
    assert.throws(() => ctx.alloc(-1), RangeError);
    assert.throws(() => ctx.alloc(1, { evictable: "yes" as unknown as boolean }), TypeError);
    await assert.rejects(keep.write("x" as unknown as Uint8Array), TypeError);
    drop.free();
    assert.equal(getContextUsage(ctx).evicted, 1 * MB, "a freed buffer leaves the host copy");
    await ctx.wake();
    assert.deepEqual(await readAll(keep), data);
    assert.equal(getContextUsage(ctx).used, 1 * MB);
    assert.equal(drop.freed, true);
    const gone = createContext("gone", { maxVram: 16 * MB });
    gone.alloc(4 * MB);
    await gone.sleep();
    destroyContext(gone);
    assert.equal(gone.alive, false);
    await assert.rejects(gone.wake(), SchedulerError);
  },
  { hostMemory: 64 * MB },
);

backendTest(
  "while asleep: zero-length writes, reads and copies refuse too",
  async () => {
    const ctx = createContext("sleeper", { maxVram: 16 * MB });
    const buf = ctx.alloc(1 * MB);
    const data = await fill(buf, 9);
    const other = createContext("awake", { maxVram: 16 * MB }).alloc(1024);
    await ctx.sleep();
    const isAsleep = asleepError(ctx);
    await assert.rejects(buf.write(new Uint8Array(0)), isAsleep);
    await assert.rejects(buf.write(new ArrayBuffer(0), { offset: 16 }), isAsleep);
    await assert.rejects(buf.read(new Uint8Array(0)), isAsleep);
    await assert.rejects(buf.copyFrom(other, { bytes: 0 }), isAsleep);
    await assert.rejects(other.copyFrom(buf, { bytes: 0 }), isAsleep);
    // Bad ranges are still RangeErrors first.
    await assert.rejects(buf.write(new Uint8Array(0), { offset: 1 * MB + 1 }), RangeError);
    assert.equal(ctx.sleeping, true);
    await ctx.wake();
    await buf.write(new Uint8Array(0));
    await buf.read(new Uint8Array(0));
    assert.deepEqual(await readAll(buf), data);
  },
  { hostMemory: 64 * MB },
);

backendTest(
  "a wake whose context is destroyed before it completes rejects, naming the context",
  async () => {
    const ctx = createContext("doomed", { maxVram: 16 * MB });
    ctx.alloc(4 * MB);
    await ctx.sleep();
    const waking = ctx.wake();
    destroyContext(ctx);
    await assert.rejects(waking, (e: unknown) => {
      assert.ok(e instanceof SchedulerError);
      assert.match(e.message, /"doomed".*destroyed/);
      return true;
    });
    assert.equal(getContextUsage(createContext("next", { maxVram: 16 * MB })).used, 0);
    assert.equal(getAvailableVram(), 64 * MB, "nothing of the destroyed context is held");
  },
  { hostMemory: 64 * MB },
);

backendTest(
  "an allocation whose pressure handler puts its context to sleep is refused as asleep",
  async () => {
    const ctx = createContext("napper", { maxVram: 64 * MB });
    const other = createContext("other", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT });
    other.alloc(40 * MB, { evictable: true });
    let sleeping: Promise<void> | undefined;
    const off = onMemoryPressure((asking) => {
      if (asking === ctx) sleeping ??= ctx.sleep();
      return true;
    });
    try {
      assert.throws(() => ctx.alloc(30 * MB), asleepError(ctx));
    } finally {
      off();
    }
    await sleeping;
    assert.equal(ctx.sleeping, true);
    assert.deepEqual(
      [getContextUsage(ctx).used, getContextUsage(ctx).evicted],
      [0, 0],
      "the refused allocation left nothing behind",
    );
    await ctx.wake();
    assert.equal(getContextUsage(ctx).used, 0);
    // The same for a restore on use: ptr of an evicted buffer refuses once its context sleeps.
    destroyContext(other);
    const evictable = ctx.alloc(20 * MB, { evictable: true });
    await fill(evictable, 3);
    ctx.alloc(50 * MB).free(); // past its own maxVram: its evictable buffer goes out
    assert.equal(evictable.state, "evicted");
    const third = createContext("third", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT });
    const blocker = third.alloc(50 * MB);
    sleeping = undefined;
    const off2 = onMemoryPressure((asking) => {
      if (asking === ctx) sleeping ??= ctx.sleep();
      blocker.free();
      return true;
    });
    try {
      assert.throws(() => evictable.ptr, asleepError(ctx));
    } finally {
      off2();
    }
    await sleeping;
    assert.equal(getContextUsage(ctx).evicted, 20 * MB);
  },
  { hostMemory: 64 * MB },
);

backendTest(
  "a wake() called from a pressure handler of the wake itself joins it",
  async () => {
    const ctx = createContext("riser", { maxVram: 32 * MB, qos: QoSPolicy.GUARANTEED });
    const buf = ctx.alloc(8 * MB);
    const data = await fill(buf, 11);
    await ctx.sleep();
    const be = createContext("be", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT });
    const filler = be.alloc(60 * MB, { evictable: true }); // the wake must evict it
    let inner: Promise<void> | undefined;
    let asked = false;
    const off = onMemoryPressure((asking) => {
      if (asking === ctx && !asked) {
        asked = true;
        inner = ctx.wake();
      }
      return true;
    });
    try {
      await ctx.wake();
      await inner;
    } finally {
      off();
    }
    assert.ok(asked, "the wake asked the handlers");
    assert.equal(ctx.sleeping, false);
    assert.equal(filler.state, "evicted");
    assert.deepEqual(await readAll(buf), data);
    const usage = getContextUsage(ctx);
    assert.deepEqual([usage.used, usage.reserved], [8 * MB, 32 * MB]);
    destroyContext(be);
    assert.equal(getAvailableVram(), 32 * MB, "the reservation is held once");
    await ctx.sleep();
    assert.equal(getAvailableVram(), 64 * MB);
    await ctx.wake();
  },
  { hostMemory: 64 * MB },
);

backendTest("sleep refuses while a buffer is pinned, moving nothing", async () => {
  const ctx = createContext("pinned", { maxVram: 8 * MB, qos: QoSPolicy.GUARANTEED });
  const buf = ctx.alloc(1 * MB);
  const data = await fill(buf, 6);
  const before = getContextUsage(ctx);
  const pin = buf.pin();
  await assert.rejects(
    ctx.sleep(),
    (e: unknown) => e instanceof SchedulerError && /pinned/.test((e as Error).message),
  );
  assert.equal(ctx.sleeping, false);
  assert.deepEqual(getContextUsage(ctx), before);
  assert.equal(buf.state, "resident");
  pin.unpin();
  await ctx.sleep();
  await ctx.wake();
  assert.deepEqual(await readAll(buf), data);
}, { hostMemory: 32 * MB });

backendTest(
  "work queued before sleep, and writes in flight, are in what comes back",
  async (sched) => {
    const ctx = createContext("busy", { maxVram: 64 * MB });
    const big = ctx.alloc(24 * MB);
    const filled = ctx.alloc(1 * MB);
    const data = randomBytes(big.size, 7);
    const g = gate();
    const stream = getStream(ctx);
    hold(sched.backend, stream.handle, g);
    // Queued behind the gate: a kernel writing 7 + i into `filled`, then a write larger than a staging chunk.
    kernels(sched.backend).gs_fill_u32(
      stream.handle,
      filled.ptr,
      7,
      BigInt(filled.size / 4),
    );
    const writing = big.write(data);
    const sleeping = ctx.sleep();
    g.open();
    await Promise.all([writing, sleeping]);
    assert.equal(ctx.sleeping, true);
    await ctx.wake();
    assert.deepEqual(await readAll(big), data);
    const words = new Uint32Array((await readAll(filled)).buffer);
    assert.equal(words.findIndex((w, i) => w !== 7 + i), -1, "the kernel's output came back");
  },
  { hostMemory: 128 * MB },
);

backendTest(
  "two sleeps at once: the second is refused; wake during sleep waits for it",
  async () => {
    const ctx = createContext("twice", { maxVram: 8 * MB });
    const buf = ctx.alloc(2 * MB);
    const data = await fill(buf, 8);
    const first = ctx.sleep();
    await assert.rejects(ctx.sleep(), asleepError(ctx));
    const waking = ctx.wake();
    await first;
    await waking;
    assert.equal(ctx.sleeping, false);
    assert.deepEqual(await readAll(buf), data);
    await ctx.wake(); // awake already: resolves
  },
  { hostMemory: 32 * MB },
);

backendTest(
  "wake is refused with AdmissionError while others hold the memory, and may be retried",
  async () => {
    const llm = createContext("llm", { maxVram: 24 * MB, qos: QoSPolicy.GUARANTEED });
    const weights = llm.alloc(16 * MB);
    const data = await fill(weights, 9);
    const ptr = addr(weights);
    await llm.sleep();
    // Another model takes the memory the sleeper gave back.
    const other = createContext("other", { maxVram: 24 * MB, qos: QoSPolicy.GUARANTEED });
    const held = other.alloc(20 * MB);
    await assert.rejects(llm.wake(), AdmissionError);
    assert.equal(llm.sleeping, true);
    assert.equal(getContextUsage(llm).reserved, 0);
    assert.equal(getContextUsage(llm).evicted, 16 * MB);
    held.free();
    destroyContext(other);
    await llm.wake();
    assert.equal(addr(weights), ptr);
    assert.deepEqual(await readAll(weights), data);
  },
  { hostMemory: 32 * MB },
);

backendTest(
  "wake makes room by evicting lower classes, and a pressure handler can refuse it",
  async () => {
    const llm = createContext("llm", { maxVram: 16 * MB });
    const weights = llm.alloc(12 * MB);
    const data = await fill(weights, 11);
    await llm.sleep();
    const bg = createContext("bg", { maxVram: 32 * MB, qos: QoSPolicy.BEST_EFFORT });
    const cache = [bg.alloc(12 * MB, { evictable: true }), bg.alloc(12 * MB, { evictable: true })];
    const cacheData = await Promise.all(cache.map((b, i) => fill(b, 20 + i)));
    const off = onMemoryPressure(() => false);
    await assert.rejects(
      llm.wake(),
      (e: unknown) => e instanceof AdmissionError && (e as Error).cause !== undefined,
    );
    assert.equal(llm.sleeping, true);
    assert.equal(getContextUsage(llm).used, 0);
    off();
    await llm.wake();
    assert.ok(
      cache.some((b) => b.state === "evicted"),
      "best effort made room",
    );
    assert.deepEqual(await readAll(weights), data);
    for (let i = 0; i < cache.length; i++) assert.deepEqual(await readAll(cache[i]!), cacheData[i]);
  },
  { hostMemory: 32 * MB },
);

backendTest(
  "a pressure handler that destroys the waking context rejects the wake cleanly",
  async () => {
    const llm = createContext("llm", { maxVram: 16 * MB });
    llm.alloc(12 * MB);
    await llm.sleep();
    const bg = createContext("bg", { maxVram: 32 * MB, qos: QoSPolicy.BEST_EFFORT });
    bg.alloc(24 * MB, { evictable: true });
    const off = onMemoryPressure((ctx) => {
      if (ctx === llm) destroyContext(llm);
      return true;
    });
    await assert.rejects(llm.wake(), SchedulerError);
    off();
    assert.equal(llm.alive, false);
    const again = createContext("llm", { maxVram: 16 * MB });
    again.alloc(4 * MB);
  },
  { hostMemory: 32 * MB },
);

backendTest(
  "destroy and shutdown while falling asleep settle the promise and leak nothing",
  async (sched) => {
    const ctx = createContext("doomed", { maxVram: 16 * MB });
    const buf = ctx.alloc(8 * MB);
    const g = gate();
    hold(sched.backend, getStream(ctx).handle, g);
    const writing = buf.write(randomBytes(buf.size, 12));
    const sleeping = ctx.sleep();
    const destroyed = (async () => {
      await Promise.resolve();
      g.open();
      destroyContext(ctx);
    })();
    await destroyed;
    await assert.rejects(sleeping, SchedulerError);
    await writing.catch(() => {});
    assert.equal(getAvailableVram(), sched.memoryLimit);
    const late = createContext("late", { maxVram: 16 * MB });
    late.alloc(4 * MB);
    const g2 = gate();
    hold(sched.backend, getStream(late).handle, g2);
    const lateSleep = late.sleep();
    g2.open();
    shutdown();
    await lateSleep.catch((e) => assert.ok(e instanceof Error));
    initialize({ backend: sched.backend, memoryLimit: 32 * MB });
  },
  { hostMemory: 32 * MB },
);

backendTest(
  "wake fails cleanly when the device refuses memory, and a retry succeeds",
  async (sched) => {
    if (sched.backend !== "host") return; // fault injection is host-only
    const ctx = createContext("faulty", { maxVram: 16 * MB });
    const buf = ctx.alloc(4 * MB);
    const data = await fill(buf, 13);
    await ctx.sleep();
    const { lib } = await import("../src/native/loader.ts");
    lib().sched_host_inject_fault(1, 4); // every try of the restore fails (two rounds, each retried)
    await assert.rejects(ctx.wake(), AdmissionError);
    assert.equal(ctx.sleeping, true);
    lib().sched_host_inject_fault(1, 0);
    await ctx.wake();
    assert.deepEqual(await readAll(buf), data);
  },
  { hostMemory: 32 * MB },
);

backendTest(
  "sleeping contexts serve models larger together than the device, round robin",
  async () => {
    const models: ExecutionContext[] = [];
    // Only one fits at a time: each sleeps before the next is created.
    const weights: DeviceBuffer[] = [];
    const data: Uint8Array[] = [];
    const ptrs: bigint[] = [];
    for (const [i, name] of ["a", "b", "c"].entries()) {
      if (i > 0) await models[i - 1]!.sleep();
      const m = createContext(name, { maxVram: 12 * MB, qos: QoSPolicy.GUARANTEED });
      models.push(m);
      weights.push(m.alloc(10 * MB));
      ptrs.push(addr(weights[i]!));
      data.push(await fill(weights[i]!, 30 + i));
    }
    await models[2]!.sleep();
    for (let round = 0; round < 3; round++) {
      for (const [i, m] of models.entries()) {
        await m.wake();
        assert.deepEqual(await readAll(weights[i]!), data[i]);
        assert.equal(addr(weights[i]!), ptrs[i]);
        await m.sleep();
      }
    }
  },
  { hostMemory: 16 * MB },
);

backendTest(
  "destroy and shutdown while waking settle the promise and leak nothing",
  async (sched) => {
    const a = createContext("a", { maxVram: 8 * MB });
    a.alloc(4 * MB);
    await a.sleep();
    const g = gate();
    hold(sched.backend, getStream(a).handle, g);
    const waking = a.wake(); // copies queued behind the gate
    assert.equal(a.sleeping, false, "buffers have memory again; their copies are queued");
    destroyContext(a);
    g.open();
    await waking.catch((e) => assert.ok(e instanceof SchedulerError));
    assert.equal(getAvailableVram(), sched.memoryLimit);
    const b = createContext("b", { maxVram: 8 * MB });
    const buf = b.alloc(4 * MB);
    await fill(buf, 50);
    await b.sleep();
    const g2 = gate();
    hold(sched.backend, getStream(b).handle, g2);
    const wakingB = b.wake();
    g2.open();
    shutdown();
    await wakingB.catch((e) => assert.ok(e instanceof Error));
    initialize({ backend: sched.backend, memoryLimit: 32 * MB });
  },
  { hostMemory: 32 * MB },
);

backendTest(
  "a wake and another context's allocations interleaved never over-commit the device",
  async (sched) => {
    const a = createContext("a", { maxVram: 20 * MB, qos: QoSPolicy.GUARANTEED });
    const weights = a.alloc(16 * MB);
    const data = await fill(weights, 60);
    await a.sleep();
    const b = createContext("b", { maxVram: 32 * MB });
    const early = b.alloc(8 * MB); // fits while a sleeps
    const waking = a.wake(); // admits a's 20 MiB at once
    assert.throws(() => b.alloc(8 * MB), VramBudgetExceededError, "only 4 MiB are left");
    const small = b.alloc(4 * MB);
    await waking;
    assert.ok(getAvailableVram() === 0 && sched.memoryLimit === 32 * MB);
    assert.deepEqual(await readAll(weights), data);
    // And the other way round: b takes the memory first, a's wake is refused and retried later.
    await a.sleep();
    const late = b.alloc(16 * MB);
    await assert.rejects(a.wake(), AdmissionError);
    late.free();
    b.pool.trim();
    await a.wake();
    assert.deepEqual(await readAll(weights), data);
    early.free();
    small.free();
  },
  { hostMemory: 32 * MB },
);
