import assert from "node:assert/strict";
import {
  MB,
  MemoryPool,
  type PoolBlock,
  SchedulerError,
  shutdown,
  VramBudgetExceededError,
} from "../mod.ts";
import { backendTest, d2h, kernels, randomBytes, spin, Status } from "./_helpers.ts";

async function fill(block: PoolBlock, seed: number): Promise<Uint8Array> {
  const data = randomBytes(block.size, seed);
  await block.write(data);
  return data;
}

async function readAll(block: PoolBlock): Promise<Uint8Array> {
  const out = new Uint8Array(block.size);
  await block.read(out);
  return out;
}

backendTest("a freed block is handed out again for a request of the same size class", () => {
  using pool = new MemoryPool({ quota: 16 * MB });
  const a = pool.allocate(1000);
  assert.equal(a.classSize, 1024);
  assert.equal(a.state, "resident");
  const ptr = Deno.UnsafePointer.value(a.ptr);
  assert.notEqual(ptr, 0n);
  pool.free(a);
  assert.deepEqual(
    [pool.stats().cachedBytes, pool.stats().freeBlocks, pool.stats().allocatedBytes],
    [1024, 1, 0],
  );
  const b = pool.allocate(1024);
  assert.equal(Deno.UnsafePointer.value(b.ptr), ptr, "same device memory");
  assert.equal(pool.stats().reuseCount, 1);
  const c = pool.allocate(1025);
  assert.equal(c.classSize, 1280, "next class");
  assert.notEqual(Deno.UnsafePointer.value(c.ptr), ptr);
  assert.equal(pool.stats().allocationCount, 3);
});

backendTest(
  "write and read round-trip bit-exact, at offsets and across staging chunks",
  async () => {
    using pool = new MemoryPool({ quota: 64 * MB });
    const block = pool.allocate(9 * MB + 123);
    const data = await fill(block, 3);
    assert.deepEqual(await readAll(block), data);
    const part = new Uint8Array(4096);
    await block.read(part, { offset: 5 * MB });
    assert.deepEqual(part, data.subarray(5 * MB, 5 * MB + 4096));
    const patch = new Uint32Array([0xdeadbeef, 7]);
    await block.write(patch, { offset: 8 });
    const head = new Uint32Array(4);
    await block.read(head);
    assert.deepEqual([head[2], head[3]], [0xdeadbeef, 7]);
  },
);

backendTest("cached memory is released, oldest first, when a new allocation needs room", () => {
  using pool = new MemoryPool({ quota: 8 * MB });
  const a = pool.allocate(3 * MB), b = pool.allocate(3 * MB);
  pool.free(a);
  pool.free(b);
  assert.equal(pool.stats().cachedBytes, 6 * MB);
  const big = pool.allocate(4 * MB); // needs one cached block released, not both
  assert.equal(pool.stats().cachedBytes, 3 * MB);
  assert.equal(pool.stats().allocatedBytes, 4 * MB);
  big.free();
  pool.trim();
  assert.equal(pool.stats().cachedBytes, 0);
});

backendTest("over the quota without eviction fails cleanly and loses nothing", async () => {
  using pool = new MemoryPool({ quota: 8 * MB });
  const keep = pool.allocate(6 * MB);
  const data = await fill(keep, 9);
  assert.throws(() => pool.allocate(3 * MB), (e: unknown) => {
    assert.ok(e instanceof VramBudgetExceededError);
    assert.equal(e.requested, 3 * MB);
    assert.equal(e.available, 2 * MB);
    assert.equal(e.contextName, "pool");
    return true;
  });
  assert.equal(pool.stats().activeBlocks, 1);
  assert.deepEqual(await readAll(keep), data);
});

backendTest(
  "eviction picks the least recently used evictable block and restores it bit-exact",
  async () => {
    using pool = new MemoryPool({ quota: 8 * MB, enableEviction: true });
    const a = pool.allocate(2 * MB, { evictable: true });
    const b = pool.allocate(2 * MB, { evictable: true });
    const c = pool.allocate(2 * MB, { evictable: true });
    const fixed = pool.allocate(2 * MB); // not evictable
    const [da, db, dc] = [await fill(a, 1), await fill(b, 2), await fill(c, 3)];
    await a.read(new Uint8Array(16)); // a is now the most recently used
    pool.allocate(2 * MB);
    assert.deepEqual([a.state, b.state, c.state, fixed.state], [
      "resident",
      "evicted",
      "resident",
      "resident",
    ]);
    assert.equal(pool.stats().evictedBlocks, 1);
    assert.equal(pool.stats().evictedHostBytes, 2 * MB);
    // Using b brings it back, evicting the next least recently used (c).
    assert.deepEqual(await readAll(b), db);
    assert.equal(b.state, "resident");
    assert.equal(c.state, "evicted");
    await c.resident();
    assert.equal(c.state, "resident");
    assert.deepEqual(await readAll(c), dc);
    assert.deepEqual(await readAll(a), da);
    const s = pool.stats();
    assert.ok(s.evictionCount >= 2 && s.restoreCount >= 2);
    assert.equal(s.evictedBytesTotal, s.evictionCount * 2 * MB);
  },
);

backendTest("a pinned block is never evicted", () => {
  using pool = new MemoryPool({ quota: 4 * MB, enableEviction: true });
  const a = pool.allocate(2 * MB, { evictable: true });
  const b = pool.allocate(2 * MB, { evictable: true });
  {
    using _pin = a.pin(); // a is the least recently used, but pinned
    pool.allocate(2 * MB);
    assert.equal(a.state, "resident");
    assert.equal(b.state, "evicted");
    assert.throws(
      () => pool.allocate(2 * MB),
      VramBudgetExceededError,
      "only pinned or fixed left",
    );
    assert.throws(() => a.free(), /it is pinned/);
  }
  pool.allocate(2 * MB);
  assert.equal(a.state, "evicted", "evictable again once unpinned");
  // Nothing evictable is left to make room: restoring fails and a stays safely evicted.
  assert.throws(() => a.ptr, VramBudgetExceededError);
  assert.equal(a.state, "evicted");
  assert.equal(b.state, "evicted");
});

backendTest("eviction is ordered after work queued on the block's stream", async (sched) => {
  using pool = new MemoryPool({ quota: 4 * MB, enableEviction: true });
  const n = 256 * 1024;
  const victim = pool.allocate(n * 4, { evictable: true });
  const stream = victim.stream;
  // A kernel that fills the block runs only after a 40 ms spin; evict at once.
  spin(sched.backend, stream.handle, 40);
  assert.equal(kernels(sched.backend).gs_fill_u32(stream.handle, victim.ptr, 1000, BigInt(n)), 0);
  const big = pool.allocate(3.5 * MB);
  assert.equal(victim.state, "evicted");
  big.free(); // room for the restore below
  const words = new Uint32Array(n);
  await victim.read(words);
  for (const i of [0, 1, n >> 1, n - 1]) assert.equal(words[i], 1000 + i);
});

backendTest(
  "memory reused on another stream waits for the first stream's queued work",
  async (sched) => {
    using pool = new MemoryPool({ quota: 4 * MB });
    const other = sched.createStream();
    const n = 1024;
    const first = pool.allocate(n * 4);
    const firstPtr = Deno.UnsafePointer.value(first.ptr);
    spin(sched.backend, first.stream.handle, 40);
    assert.equal(
      kernels(sched.backend).gs_fill_u32(first.stream.handle, first.ptr, 5, BigInt(n)),
      0,
    );
    first.free();
    const second = pool.allocate(n * 4, { stream: other });
    assert.equal(Deno.UnsafePointer.value(second.ptr), firstPtr, "the cached memory was reused");
    const data = randomBytes(n * 4, 77);
    await second.write(data);
    assert.deepEqual(
      await readAll(second),
      data,
      "the late fill on the first stream did not land after",
    );
  },
);

backendTest(
  "when the device itself runs out, the pool gives back its cache and evicts",
  async (sched) => {
    if (sched.backend !== "host") return; // needs a device smaller than the pool's quota
    using pool = new MemoryPool({ quota: 64 * MB, enableEviction: true });
    const a = pool.allocate(6 * MB, { evictable: true });
    const da = await fill(a, 5);
    pool.free(pool.allocate(4 * MB)); // 4 MiB cached
    const b = pool.allocate(12 * MB, { evictable: true }); // device: 16 MiB
    assert.equal(pool.stats().cachedBytes, 0);
    assert.equal(a.state, "evicted");
    b.free();
    pool.trim();
    assert.deepEqual(await readAll(a), da);
    using fixedPool = new MemoryPool({ quota: 64 * MB, name: "fixed" });
    const held = fixedPool.allocate(8 * MB);
    assert.throws(() => fixedPool.allocate(8 * MB), (e: unknown) => {
      assert.ok(e instanceof VramBudgetExceededError);
      assert.equal(e.contextName, "fixed");
      return true;
    });
    assert.equal(held.state, "resident");
  },
  { hostMemory: 16 * MB },
);

backendTest("bad sizes and options are refused with the option and value named", () => {
  using pool = new MemoryPool({ quota: 4 * MB, name: "p" });
  const cases: [unknown, unknown, ErrorConstructor, RegExp][] = [
    [0, undefined, RangeError, /size must be a positive integer, got 0/],
    [-1, undefined, RangeError, /got -1/],
    [1.5, undefined, RangeError, /got 1.5/],
    [NaN, undefined, RangeError, /got NaN/],
    [Infinity, undefined, RangeError, /got Infinity/],
    ["8", undefined, TypeError, /size must be a number, got "8"/],
    [8n, undefined, TypeError, /got 8n/],
    [2 ** 60, undefined, RangeError, /size must be a positive integer, got 1152921504606847000/],
    [16, null, TypeError, /options must be an object, got null/],
    [16, { evictable: "yes" }, TypeError, /evictable must be a boolean, got "yes"/],
    [16, { stream: {} }, TypeError, /stream must be a Stream/],
  ];
  for (const [size, options, kind, message] of cases) {
    assert.throws(() => pool.allocate(size as number, options as never), (e: Error) => {
      assert.ok(e instanceof kind, `${String(size)}: ${e.name}`);
      assert.match(e.message, /^Cannot allocate from pool "p": /);
      assert.match(e.message, message);
      return true;
    });
  }
  // Past the quota is a budget refusal, as past a context's maxVram.
  using held = pool.allocate(1 * MB);
  for (const size of [2 ** 50, 5 * MB, 4 * MB]) {
    assert.throws(() => pool.allocate(size), (e: Error) => {
      assert.ok(e instanceof VramBudgetExceededError, `${size}: ${e.name}`);
      assert.equal(e.contextName, "p");
      assert.equal(e.context, undefined);
      assert.equal(e.requested, size);
      assert.ok(e.available < size && e.available <= 3 * MB, `available ${e.available}`);
      return true;
    });
  }
  held.free();
  assert.equal(pool.stats().activeBlocks, 0, "nothing was allocated by the failures");
  for (
    const bad of [undefined, null, { quota: 0 }, { quota: -1 }, { quota: 1.5 }, { quota: "1" }]
  ) {
    assert.throws(
      () => new MemoryPool(bad as never),
      (e: Error) => e instanceof TypeError || e instanceof RangeError,
    );
  }
  assert.throws(
    () => new MemoryPool({ quota: MB, enableEviction: 1 as never }),
    /enableEviction must be a boolean/,
  );
  assert.throws(
    () => new MemoryPool({ quota: MB, name: "" }),
    (e: Error) => e instanceof RangeError && /name must be a non-empty string/.test(e.message),
  );
});

backendTest(
  "a double free is a no-op; foreign blocks and use after free are clear errors",
  async () => {
    using pool = new MemoryPool({ quota: 4 * MB });
    using other = new MemoryPool({ quota: 4 * MB, name: "other" });
    const block = pool.allocate(64);
    const foreign = other.allocate(64);
    assert.throws(() => pool.free(foreign), RangeError);
    assert.equal(foreign.state, "resident", "the foreign block is untouched");
    assert.throws(() => pool.free({} as never), TypeError);
    pool.free(block);
    pool.free(block); // idempotent, as block.free() is
    block.free(); // idempotent, as DeviceBuffer.free is
    assert.equal(pool.stats().activeBlocks, 0);
    assert.equal(pool.stats().freeBlocks, 1, "freed once: one cached block");
    assert.throws(() => block.ptr, SchedulerError);
    assert.throws(() => block.state, SchedulerError);
    assert.throws(() => block.pin(), SchedulerError);
    await assert.rejects(block.write(new Uint8Array(4)), SchedulerError);
    await assert.rejects(block.read(new Uint8Array(4)), SchedulerError);
    const live = pool.allocate(64);
    await assert.rejects(live.write(new Uint8Array(65)), RangeError);
    await assert.rejects(
      live.write(new Uint8Array(8), { offset: 60 }),
      /offset 60 \+ 8 bytes exceeds/,
    );
    await assert.rejects(live.read("x" as never), TypeError);
    await assert.rejects(live.write(new Uint8Array(1), { offset: -1 }), RangeError);
    assert.equal(pool.stats().activeBlocks, 1);
  },
);

backendTest("a destroyed pool, or one whose scheduler shut down, refuses use", () => {
  const pool = new MemoryPool({ quota: MB });
  const block = pool.allocate(64);
  pool.destroy();
  pool.destroy();
  assert.throws(() => pool.allocate(64), /pool "pool" was destroyed/);
  assert.throws(() => block.ptr, SchedulerError);
  const second = new MemoryPool({ quota: MB });
  const b2 = second.allocate(64);
  shutdown();
  assert.throws(() => second.allocate(64), SchedulerError);
  assert.throws(() => b2.ptr, SchedulerError);
  second.destroy();
});

backendTest(
  "a large write is fully queued when called, so work queued after it sees it",
  async (sched) => {
    using pool = new MemoryPool({ quota: 64 * MB });
    const block = pool.allocate(13 * MB + 7); // four staging chunks
    const data = randomBytes(block.size, 21);
    const writing = block.write(data); // not awaited: the event below is queued right after the call
    const queuedAfter = sched.createEvent().record(block.stream);
    await queuedAfter.synchronize();
    // When that event fired, every chunk, the last one included, must be on the device.
    const probe = sched.createStream();
    const tail = new Uint8Array(4096);
    assert.equal(
      d2h(tail, block.ptr, probe.nativeHandle("probe"), block.size - tail.length),
      Status.OK,
    );
    probe.synchronizeSync();
    assert.deepEqual(tail, data.subarray(block.size - tail.length));
    await writing;
  },
);

backendTest(
  "a read in flight when the scheduler shuts down rejects instead of reading freed memory",
  async () => {
    const pool = new MemoryPool({ quota: 16 * MB });
    const block = pool.allocate(6 * MB);
    await fill(block, 7);
    const out = new Uint8Array(block.size);
    const reading = block.read(out);
    shutdown();
    await assert.rejects(
      reading,
      (error: Error) =>
        error instanceof SchedulerError && /shut down while it was in flight/.test(error.message),
    );
    assert.ok(out.every((b) => b === 0), "out was not written from freed staging memory");
  },
  { hostMemory: 64 * MB },
);
