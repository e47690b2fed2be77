/**
 * One contract, every memory layer (RMM's way of testing resources): the
 * device source alone, the size-class cache over it, the pool limit over
 * it (claims in a LimitOwner), a standalone MemoryPool (all layers), a pool
 * whose blocks the evictor may move out, and a context's pool. Each layer
 * is wrapped in a small fixture with the same shape, and the same checks
 * run against each: allocate hands out distinct real memory; freed memory
 * serves the next request of its size; a request that does not fit is
 * refused and changes nothing; freeing everything gives every byte back;
 * and after every step of random sequences (fast-check) all the layer's
 * accounts agree with each other and with the bytes libsched committed,
 * and every live allocation still holds its own data.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  createContext,
  MB,
  MemoryPool,
  onMemoryPressure,
  type PoolBlock,
  QoSPolicy,
  type Scheduler,
  SchedulerError,
  type Stream,
  VramBudgetExceededError,
} from "../mod.ts";
import { LimitOwner, limitOwnerOf } from "../src/engine/limit_owner.ts";
import { sizeClassOf } from "../src/engine/size_classes.ts";
import { addressSpaceFor } from "../src/engine/virtual_memory.ts";
import { type DeviceMemory, DeviceSource } from "../src/memory/device_source.ts";
import { limitOwnerBudget, PoolLimit } from "../src/memory/pool_limit.ts";
import { SizeClassCache } from "../src/memory/size_class_cache.ts";
import { StreamOrder } from "../src/memory/stream_order.ts";
import { copyToDevice, copyToHost, pinnedAlloc, pinnedFree } from "../src/native/memory.ts";
import { vmmReap, vmmUsage } from "../src/native/vmm.ts";
import { backendTest, lib } from "./_helpers.ts";

/** The managed memory of every test's device: the device source's limit. */
const DEVICE = 32 * MB;
/** The limit of every layer above the source. */
const LIMIT = 8 * MB;
/** Bytes of each allocation's stamp (its own data, checked after every sequence). */
const STAMP = 16;

/** One allocation as the contract sees it. */
interface Allocation {
  readonly size: number;
  /** Its device pointer now (a pool block restores itself when evicted). */
  ptr(): Deno.PointerObject;
}

/** A layer under test, behind the one shape every check uses. */
interface LayerFixture {
  /** Most bytes the layer may hold on the device here. */
  readonly limit: number;
  /**
   * False where nothing refuses a request past `limit`: a device source (and
   * a cache over it) on CUDA, where the limit is the physical device, far
   * beyond the scheduler's memoryLimit. Limits are the limit owner's job.
   */
  readonly refusesPastLimit: boolean;
  /** True when a freed allocation stays held (cached) until `trim`. */
  readonly caches: boolean;
  /** True when live allocations may be moved out to make room (so a full layer still serves). */
  readonly evicts: boolean;
  /** The stream everything is ordered on. */
  readonly stream: Stream;
  /** A new allocation, or undefined when the layer refused (holding nothing more). */
  allocate(bytes: number): Allocation | undefined;
  free(allocation: Allocation): void;
  /** Keeps an allocation on the device until the returned function is called. */
  hold(allocation: Allocation): () => void;
  /** Gives back what the layer keeps for reuse. */
  trim(): void;
  /** Device bytes held, by each of the layer's own accounts: all must agree. */
  accounts(): Record<string, number>;
  /** Device bytes the layer serves live allocations with (for the cache: held less cached). */
  live(): number;
  /** Allocations served from cached memory, by the layer's statistics (layers that count them). */
  reuses?(): number;
  /** Blocks moved out so far, by the layer's statistics (layers that move blocks). */
  evictions?(): number;
  /** The layer's public allocate, unchecked (public layers only: they validate their input). */
  allocateUnchecked?(bytes: unknown): unknown;
  write(allocation: Allocation, data: Uint8Array): Promise<void>;
  read(allocation: Allocation, out: Uint8Array): Promise<void>;
  destroy(): void;
}

/** Raw device memory copies for fixtures below the pool (staged through pinned memory). */
function rawCopies(stream: Stream) {
  return {
    async write(ptr: Deno.PointerObject, data: Uint8Array): Promise<void> {
      const host = pinnedAlloc(data.byteLength)!;
      try {
        new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(host, data.byteLength)).set(data);
        copyToDevice(ptr, 0, host, data.byteLength, stream.nativeHandle("test write"));
        await stream.synchronize();
      } finally {
        pinnedFree(host);
      }
    },
    async read(ptr: Deno.PointerObject, out: Uint8Array): Promise<void> {
      const host = pinnedAlloc(out.byteLength)!;
      try {
        copyToHost(host, ptr, 0, out.byteLength, stream.nativeHandle("test read"));
        await stream.synchronize();
        out.set(new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(host, out.byteLength)));
      } finally {
        pinnedFree(host);
      }
    },
  };
}

/** Bytes libsched has committed on the default device now, less `base`. */
function committed(sched: Scheduler, base = 0): number {
  return vmmUsage(sched.device.id).committed - base;
}

/**
 * What the fixtures over a raw device source share: a stream and its order, the source on the
 * default device's address space, raw copies, and which memory each allocation holds. `close`
 * frees what is left through `free`, runs `beforeSync`, then lets the stream finish and destroys
 * source, order and stream.
 */
function rawSource(sched: Scheduler) {
  const base = committed(sched);
  const stream = sched.createStream();
  const order = new StreamOrder(sched.createEvent(), stream);
  const source = new DeviceSource(addressSpaceFor(sched), order, () => stream.synchronizeSync());
  const memoryOf = new Map<Allocation, DeviceMemory>();
  return {
    base,
    stream,
    order,
    source,
    copies: rawCopies(stream),
    memoryOf,
    close(free: (allocation: Allocation) => void, beforeSync = () => {}): void {
      for (const allocation of [...memoryOf.keys()]) free(allocation);
      beforeSync();
      stream.synchronizeSync();
      source.destroy();
      order.destroy();
      stream.destroy();
    },
  };
}

/** The device source alone: the device itself is the limit. */
function sourceFixture(sched: Scheduler): LayerFixture {
  const { base, stream, source, copies, memoryOf, close } = rawSource(sched);
  let held = 0;
  return {
    limit: DEVICE,
    refusesPastLimit: sched.backend !== "cuda",
    caches: false,
    evicts: false,
    stream,
    allocate(bytes) {
      const memory = source.allocate(bytes, stream);
      if (!memory) return undefined;
      held += memory.size;
      const allocation = { size: memory.size, ptr: () => memory.ptr };
      memoryOf.set(allocation, memory);
      return allocation;
    },
    free(allocation) {
      const memory = memoryOf.get(allocation)!;
      memoryOf.delete(allocation);
      source.deallocate(memory, "free");
      held -= memory.size;
    },
    hold: () => () => {},
    trim() {},
    accounts: () => ({ fixture: held, committed: committed(sched, base) }),
    live: () => held,
    write: (a, data) => copies.write(a.ptr(), data),
    read: (a, out) => copies.read(a.ptr(), out),
    destroy() {
      close((allocation) => this.free(allocation));
    },
  };
}

/** The size-class cache over the device source. */
function cacheFixture(sched: Scheduler): LayerFixture {
  const { base, stream, order, source, copies, memoryOf, close } = rawSource(sched);
  let live = 0;
  const cache = new SizeClassCache(order, (memory) => source.deallocate(memory, "release"));
  return {
    limit: DEVICE,
    refusesPastLimit: sched.backend !== "cuda",
    caches: true,
    evicts: false,
    stream,
    allocate(bytes) {
      const key = sizeClassOf(bytes);
      const memory = cache.take(key, stream) ?? source.allocate(key, stream);
      if (!memory) return undefined;
      live += memory.size;
      const allocation = { size: bytes, ptr: () => memory.ptr };
      memoryOf.set(allocation, memory);
      return allocation;
    },
    free(allocation) {
      const memory = memoryOf.get(allocation)!;
      memoryOf.delete(allocation);
      live -= memory.size;
      cache.put(memory);
    },
    hold: () => () => {},
    trim: () => cache.releaseAll(),
    accounts: () => ({ "live + cache": live + cache.bytes, committed: committed(sched, base) }),
    live: () => live,
    write: (a, data) => copies.write(a.ptr(), data),
    read: (a, out) => copies.read(a.ptr(), out),
    destroy() {
      close((allocation) => this.free(allocation), () => cache.releaseAll());
    },
  };
}

/** The pool limit over the device source: every byte claimed in a LimitOwner first. */
function limitFixture(sched: Scheduler): LayerFixture {
  const { base, stream, source, copies, memoryOf, close } = rawSource(sched);
  // The owner has more than the quota: the quota is the limit that binds.
  const owner = new LimitOwner(2 * LIMIT);
  const limit = new PoolLimit(LIMIT, limitOwnerBudget(owner, () => {}));
  return {
    limit: LIMIT,
    refusesPastLimit: true,
    caches: false,
    evicts: false,
    stream,
    allocate(bytes) {
      if (!limit.tryClaim(bytes)) return undefined;
      const memory = source.allocate(bytes, stream);
      if (!memory) {
        limit.release(bytes);
        return undefined;
      }
      const allocation = { size: bytes, ptr: () => memory.ptr };
      memoryOf.set(allocation, memory);
      return allocation;
    },
    free(allocation) {
      const memory = memoryOf.get(allocation)!;
      memoryOf.delete(allocation);
      source.deallocate(memory, "free");
      limit.release(memory.size);
    },
    hold: () => () => {},
    trim() {},
    accounts: () => ({
      "limit held": limit.held,
      "owner claimed": owner.claimed,
      committed: committed(sched, base),
    }),
    live: () => limit.held,
    write: (a, data) => copies.write(a.ptr(), data),
    read: (a, out) => copies.read(a.ptr(), out),
    destroy() {
      close((allocation) => this.free(allocation));
    },
  };
}

/** A MemoryPool (every layer), standalone or evicting. */
function poolFixture(sched: Scheduler, evicting: boolean): LayerFixture {
  const base = committed(sched);
  const owner = limitOwnerOf(sched);
  const claimedBefore = owner.claimed;
  const pool = new MemoryPool({
    quota: LIMIT,
    enableEviction: evicting,
    evictableByDefault: evicting,
  });
  return blockFixture({
    limit: LIMIT,
    evicts: evicting,
    stream: pool.stream,
    allocate: (bytes) => pool.allocate(bytes),
    trim: () => pool.trim(),
    accounts: () => {
      const s = pool.stats();
      return {
        "stats allocated + cached": s.allocatedBytes + s.cachedBytes,
        "pool allocated + cached": pool.allocatedBytes + pool.cachedBytes,
        "device owner claimed": owner.claimed - claimedBefore,
        committed: committed(sched, base),
      };
    },
    live: () => pool.allocatedBytes,
    reuses: () => pool.stats().reuseCount,
    evictions: () => pool.stats().evictionCount,
    destroy: () => pool.destroy(),
  });
}

/** A context's pool: its claims go through the context manager's rules to the device owner. */
function contextFixture(sched: Scheduler): LayerFixture {
  const base = committed(sched);
  const ctx = createContext("layers", { maxVram: LIMIT, qos: QoSPolicy.BURSTABLE });
  return blockFixture({
    limit: LIMIT,
    evicts: false,
    stream: ctx.stream,
    allocate: (bytes) => ctx.alloc(bytes),
    trim: () => ctx.pool.trim(),
    accounts: () => {
      const u = ctx.usage(), s = ctx.pool.stats();
      return {
        "usage used + cached": u.used + u.cached,
        "stats allocated + cached": s.allocatedBytes + s.cachedBytes,
        committed: committed(sched, base),
      };
    },
    live: () => ctx.usage().used,
    reuses: () => ctx.pool.stats().reuseCount,
    destroy: () => ctx.destroy(),
  });
}

/** The fixture of anything that hands out PoolBlocks. */
function blockFixture(layer: {
  limit: number;
  evicts: boolean;
  stream: Stream;
  allocate(bytes: number): PoolBlock;
  trim(): void;
  accounts(): Record<string, number>;
  live(): number;
  reuses(): number;
  evictions?(): number;
  destroy(): void;
}): LayerFixture {
  type Block = ReturnType<typeof layer.allocate>;
  const blockOf = (a: Allocation) => (a as Allocation & { block: Block }).block;
  return {
    limit: layer.limit,
    refusesPastLimit: true,
    caches: true,
    evicts: layer.evicts,
    stream: layer.stream,
    allocate(bytes) {
      try {
        const block = layer.allocate(bytes);
        return { size: block.size, ptr: () => block.ptr, block };
      } catch (error) {
        if (error instanceof VramBudgetExceededError) return undefined;
        throw error;
      }
    },
    free: (a) => blockOf(a).free(),
    hold(a) {
      const pin = blockOf(a).pin();
      return () => pin.unpin();
    },
    trim: () => layer.trim(),
    accounts: () => layer.accounts(),
    live: () => layer.live(),
    reuses: () => layer.reuses(),
    ...(layer.evictions ? { evictions: layer.evictions } : {}),
    allocateUnchecked: (bytes) => layer.allocate(bytes as number),
    write: (a, data) => blockOf(a).write(data),
    read: (a, out) => blockOf(a).read(out),
    destroy: () => layer.destroy(),
  };
}

/** Every layer; `public` ones validate their input (internal layers trust their callers). */
const FIXTURES: readonly {
  name: string;
  public: boolean;
  make(sched: Scheduler): LayerFixture;
}[] = [
  { name: "DeviceSource", public: false, make: sourceFixture },
  { name: "SizeClassCache over DeviceSource", public: false, make: cacheFixture },
  { name: "PoolLimit over DeviceSource", public: false, make: limitFixture },
  { name: "MemoryPool", public: true, make: (sched) => poolFixture(sched, false) },
  { name: "MemoryPool with its Evictor", public: true, make: (sched) => poolFixture(sched, true) },
  { name: "a context's MemoryPool", public: true, make: contextFixture },
];

/** Asserts that every account of the layer says the same number of bytes; returns it. */
function agreed(layer: LayerFixture, when: string): number {
  const accounts = layer.accounts();
  const values = Object.values(accounts);
  assert.ok(
    values.every((v) => v === values[0]),
    `${when}: the accounts disagree: ${JSON.stringify(accounts)}`,
  );
  return values[0]!;
}

function stampOf(id: number): Uint8Array {
  const stamp = new Uint8Array(STAMP);
  for (let i = 0; i < STAMP; i++) stamp[i] = (id * 31 + i * 7 + 1) & 0xff || 1;
  return stamp;
}

function contractTest(
  name: string,
  fn: (layer: LayerFixture) => void | Promise<void>,
  publicOnly = false,
): void {
  for (const fixture of FIXTURES) {
    if (publicOnly && !fixture.public) continue;
    backendTest(`${fixture.name}: ${name}`, async (sched) => {
      const layer = fixture.make(sched);
      try {
        await fn(layer);
      } finally {
        layer.destroy();
      }
    }, { hostMemory: DEVICE });
  }
}

contractTest(
  "allocate hands out distinct device memory of the size asked that holds data",
  async (layer) => {
    const sizes = [256, 1000, 64 * 1024, 1 * MB + 3];
    const allocations = sizes.map((size) => layer.allocate(size)!);
    assert.ok(allocations.every((a) => a !== undefined));
    const ranges = allocations.map((a) => [Deno.UnsafePointer.value(a.ptr()), BigInt(a.size)]);
    for (const [i, [start, size]] of ranges.entries()) {
      assert.ok(allocations[i]!.size >= sizes[i]!, "at least the size asked");
      for (const [j, [other, otherSize]] of ranges.entries()) {
        if (i !== j) {
          assert.ok(
            start! + size! <= other! || other! + otherSize! <= start!,
            "disjoint",
          );
        }
      }
    }
    for (const [i, a] of allocations.entries()) await layer.write(a, stampOf(i));
    for (const [i, a] of allocations.entries()) {
      const out = new Uint8Array(STAMP);
      await layer.read(a, out);
      assert.deepEqual(out, stampOf(i));
    }
    assert.equal(agreed(layer, "after allocating"), layer.live());
    for (const a of allocations) layer.free(a);
  },
);

contractTest("a freed allocation's memory serves the next request of its size", (layer) => {
  const a = layer.allocate(100_000)!;
  const ptr = Deno.UnsafePointer.value(a.ptr());
  const held = agreed(layer, "allocated");
  layer.free(a);
  assert.equal(agreed(layer, "freed"), layer.caches ? held : 0, "cached, or given back");
  const reused = layer.reuses?.();
  const b = layer.allocate(100_000)!;
  assert.equal(Deno.UnsafePointer.value(b.ptr()), ptr, "the same device memory again");
  if (reused !== undefined) assert.equal(layer.reuses!(), reused + 1, "counted as a reuse");
  assert.equal(agreed(layer, "allocated again"), held, "nothing more held");
  layer.free(b);
});

contractTest("a request that does not fit is refused and changes nothing", async (layer) => {
  // A raw device source on CUDA has the physical device behind it: nothing to refuse here.
  if (!layer.refusesPastLimit) return;
  // Live allocations that cannot be moved (held), filling most of the limit.
  const kept = [layer.allocate(layer.limit / 2)!, layer.allocate(layer.limit / 4)!];
  const releases = kept.map((a) => layer.hold(a));
  for (const [i, a] of kept.entries()) await layer.write(a, stampOf(i));
  const before = agreed(layer, "filled");
  assert.equal(layer.allocate(layer.limit / 2), undefined, "refused");
  assert.equal(agreed(layer, "after the refusal"), before, "nothing more held");
  for (const [i, a] of kept.entries()) {
    const out = new Uint8Array(STAMP);
    await layer.read(a, out);
    assert.deepEqual(out, stampOf(i), "data intact");
  }
  for (const release of releases) release();
  for (const a of kept) layer.free(a);
});

contractTest(
  "freeing everything gives every byte back, so the whole limit serves again",
  (layer) => {
    const all = [1000, 5000, 1 * MB, 2 * MB].map((size) => layer.allocate(size)!);
    for (const a of all) layer.free(a);
    layer.trim();
    assert.equal(agreed(layer, "all freed and trimmed"), 0);
    const whole = layer.allocate(layer.limit);
    assert.ok(whole, "the whole limit in one allocation");
    layer.free(whole);
    layer.trim();
    assert.equal(agreed(layer, "whole freed"), 0);
  },
);

contractTest(
  "bad sizes are a TypeError or RangeError, a size past the limit a VramBudgetExceededError; nothing changes",
  (layer) => {
    const a = layer.allocate(4096)!;
    const before = agreed(layer, "before");
    for (const bad of [0, -1, 1.5, Number.NaN, Infinity, 2 ** 60]) {
      assert.throws(() => layer.allocateUnchecked!(bad), RangeError, `size ${bad}`);
    }
    for (const bad of ["4096", undefined, null, 4096n, {}]) {
      assert.throws(() => layer.allocateUnchecked!(bad), TypeError, `size ${String(bad)}`);
    }
    // Past the limit (a pool's quota, a context's maxVram): refused as any allocation past a limit.
    assert.throws(() => layer.allocateUnchecked!(layer.limit + 1), VramBudgetExceededError);
    assert.equal(agreed(layer, "after the refusals"), before);
    layer.free(a);
    const freed = agreed(layer, "freed");
    layer.free(a); // idempotent
    assert.equal(agreed(layer, "freed twice"), freed);
  },
  true,
);

/** One step of a random sequence. */
type Step =
  | { op: "allocate"; size: number }
  | { op: "free"; pick: number }
  | { op: "trim" };

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant("allocate" as const),
      size: fc.oneof(
        fc.integer({ min: STAMP, max: 4096 }),
        fc.integer({ min: 4097, max: 512 * 1024 }),
        fc.integer({ min: 512 * 1024, max: 3 * MB }),
      ),
    }),
  },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("free" as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("trim" as const) }) },
);

for (const fixture of FIXTURES) {
  backendTest(
    `${fixture.name}: random sequences keep every account equal, under the limit, and every allocation's data`,
    async (sched) => {
      let evictions = 0, evicting = false;
      await fc.assert(
        fc.asyncProperty(fc.array(step, { minLength: 20, maxLength: 60 }), async (steps) => {
          const layer = fixture.make(sched);
          const live: { allocation: Allocation; id: number }[] = [];
          let refusals = 0;
          try {
            for (const [id, s] of steps.entries()) {
              if (s.op === "allocate") {
                const allocation = layer.allocate(s.size);
                if (allocation) {
                  await layer.write(allocation, stampOf(id));
                  live.push({ allocation, id });
                } else refusals++;
              } else if (s.op === "free" && live.length > 0) {
                const [gone] = live.splice(s.pick % live.length, 1);
                layer.free(gone!.allocation);
              } else if (s.op === "trim") layer.trim();
              // Unmap what was decommitted, so no stale bytes can stand in for a lost copy.
              await layer.stream.synchronize();
              vmmReap(sched.device.id);
              const held = agreed(layer, `after step ${id} (${s.op})`);
              assert.ok(held <= layer.limit, `held ${held} bytes, limit ${layer.limit}`);
              assert.ok(layer.live() <= held);
            }
            for (const { allocation, id } of live) {
              const out = new Uint8Array(STAMP);
              await layer.read(allocation, out);
              assert.deepEqual(out, stampOf(id), `allocation ${id} kept its data`);
            }
            // An evicting layer makes room instead of refusing while its blocks can move.
            if (layer.evicts) assert.equal(refusals, 0, "the evictor made room every time");
          } finally {
            evictions += layer.evictions?.() ?? 0;
            evicting = layer.evicts;
            layer.destroy();
          }
        }),
        { numRuns: 25, seed: 11 },
      );
      // The sequences must really exercise the evictor, or its data checks prove nothing.
      if (evicting) assert.ok(evictions > 0, "no sequence evicted anything");
    },
    { hostMemory: DEVICE },
  );
}

/** Counts every libsched call made while `fn` runs (each writable symbol wrapped, then restored). */
function libschedCalls(fn: () => void): number {
  const symbols = lib() as unknown as Record<string, unknown>;
  const saved = new Map<string, unknown>();
  let calls = 0;
  try {
    for (const [name, original] of Object.entries(symbols)) {
      if (typeof original !== "function") continue;
      if (!Object.getOwnPropertyDescriptor(symbols, name)?.writable) continue;
      saved.set(name, original);
      symbols[name] = (...args: unknown[]) => {
        calls++;
        return (original as (...args: unknown[]) => unknown)(...args);
      };
    }
    fn();
  } finally {
    for (const [name, original] of saved) symbols[name] = original;
  }
  return calls;
}

backendTest(
  "allocate + free of a cached size makes no libsched call, in a pool and in a context",
  () => {
    const pool = new MemoryPool({ quota: LIMIT });
    const ctx = createContext("hot", { maxVram: LIMIT, qos: QoSPolicy.GUARANTEED });
    // The first allocation of a size maps memory: the counter sees the native calls.
    assert.ok(libschedCalls(() => pool.allocate(4096).free()) > 0);
    assert.ok(libschedCalls(() => ctx.alloc(64 * 1024).free()) > 0);
    const hot = libschedCalls(() => {
      for (let i = 0; i < 100; i++) {
        pool.allocate(4096).free();
        ctx.alloc(64 * 1024).free();
        ctx.alloc(64 * 1024, { evictable: true }).free();
      }
    });
    assert.equal(hot, 0);
    pool.destroy();
  },
);

backendTest(
  "a pressure handler that frees the block being restored, and reuses its memory, fails that restore cleanly",
  async () => {
    const ctx = createContext("restoring", { maxVram: LIMIT, qos: QoSPolicy.BURSTABLE });
    const a = ctx.alloc(4 * MB, { evictable: true });
    await a.write(stampOf(1));
    const b = ctx.alloc(6 * MB); // a is evicted to make room
    assert.equal(a.state, "evicted");
    let reused: ReturnType<typeof ctx.alloc> | undefined;
    const off = onMemoryPressure((asking) => {
      if (asking !== ctx || reused) return true;
      b.free();
      a.free(); // the block being restored goes...
      reused = ctx.alloc(4 * MB); // ...and a new block of its size takes its room
      return true;
    });
    try {
      assert.throws(
        () => a.ptr,
        (e) =>
          e instanceof SchedulerError && e.name === "SchedulerError" &&
          /freed by a memory-pressure handler/.test(e.message),
      );
      assert.ok(a.freed);
      assert.ok(reused && reused.state === "resident");
      await reused.write(stampOf(2));
      const out = new Uint8Array(STAMP);
      await reused.read(out);
      assert.deepEqual(out, stampOf(2), "the new block is intact");
      assert.equal(ctx.usage().used, reused.size);
    } finally {
      off();
      ctx.destroy();
    }
  },
  { hostMemory: DEVICE },
);
