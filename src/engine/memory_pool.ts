/**
 * MemoryPool: device memory in size classes with free lists, LRU order and
 * real eviction to pinned host memory, as a thin composition of the layers
 * in `src/memory/` (docs/memory_layers.md has the picture):
 *
 * - `SizeClassCache` serves a cached size without crossing FFI (the hot path);
 * - `RoomMaker` is the slow path: claim from `PoolLimit` (quota, then the
 *   budget: a context's account or the device's `LimitOwner`), ask the
 *   pressure handlers, release cache and evict (`Evictor`), retry;
 * - `DeviceSource` commits and decommits VMM slots, so addresses are stable;
 * - `PoolStatistics` observes it all for `stats()`, usage and the trace.
 *
 * This file keeps what is the pool's own: argument checks, the live blocks,
 * the block facade (`BlockHost`), destroy/invalidate and the sleep access.
 *
 * @module
 */

import { SchedulerError, VramBudgetExceededError } from "../errors.ts";
import type { ExecutionContext } from "../context/execution_context.ts";
import type { Owned } from "../lifetime.ts";
import { getScheduler, type Scheduler } from "../scheduler.ts";
import { Stream } from "../stream.ts";
import {
  requireBoolean,
  requireNonEmptyString,
  requireOptions,
  requirePositiveInteger,
  show,
} from "../validate.ts";
import { limitOwnerOf } from "./limit_owner.ts";
import { type BlockHost, PoolBlock, recordOf } from "./pool_block.ts";
export type { BlockHost };
import { sizeClassOf } from "./size_classes.ts";
import { stagedRead, stagedWrite, type StagingArea, stagingFor } from "./staging.ts";
import { addressSpaceFor } from "./virtual_memory.ts";
import { traceCopy, tracing } from "../trace/recorder.ts";
import { type DeviceMemory, DeviceSource } from "../memory/device_source.ts";
import { Evictor } from "../memory/evictor.ts";
import { HostCopies } from "../memory/host_copies.ts";
import { limitOwnerBudget, type PoolBudget, PoolLimit } from "../memory/pool_limit.ts";
export type { PoolBudget };
import { type MemoryPoolStats, PoolStatistics } from "../memory/pool_statistics.ts";
export type { MemoryPoolStats };
import type { BlockRecord } from "../memory/block_record.ts";
import { type PoolState, RoomMaker } from "../memory/room_maker.ts";
import { SizeClassCache } from "../memory/size_class_cache.ts";
import { StreamOrder } from "../memory/stream_order.ts";

/** Options of `new MemoryPool()`. */
export interface MemoryPoolOptions {
  /** Most device bytes the pool may hold: live blocks plus its cache. Required. */
  quota: number;
  /** Let the pool evict evictable blocks to host memory under pressure (default false). */
  enableEviction?: boolean;
  /** Make blocks evictable unless `allocate` says otherwise (default false). */
  evictableByDefault?: boolean;
  /** Stream that blocks are ordered on unless `allocate` names one (default: a new stream). */
  stream?: Stream;
  /** Name used in error messages (default "pool"). */
  name?: string;
  /**
   * Index of the device the pool's memory is on (default: the device of
   * `stream` when given, else the scheduler's `device`).
   */
  device?: number;
}

/** @internal Hooks for pools owned by the scheduler. */
export interface PoolInternals {
  budget?: PoolBudget;
  /** Makes the block objects (a subclass of PoolBlock, e.g. DeviceBuffer). */
  makeBlock?: (...args: ConstructorParameters<typeof PoolBlock>) => PoolBlock;
  /** Who errors name as asking (the ExecutionContext of a context's pool). */
  errorContext?: ExecutionContext;
  /**
   * Told of each refused restore that a user's access asked for (`ptr`,
   * `read`, `write`, `resident()` of an evicted block), before it is thrown:
   * the context counts it as an allocation failure, as a refused `alloc`.
   */
  refused?: (error: VramBudgetExceededError) => void;
  /**
   * Exact sizes instead of size classes (GUARANTEED contexts): every block
   * occupies exactly the bytes asked for, so allocations whose sizes sum to
   * the quota always fit.
   */
  exactSizes?: boolean;
}

/** Options of `MemoryPool.allocate()`. */
export interface AllocateOptions {
  /** May this block be moved to host memory under pressure (default: the pool's `evictableByDefault`). */
  evictable?: boolean;
  /** Stream for this block's copies, eviction and restore (default: the pool's stream). */
  stream?: Stream;
}

const CREATE = "Cannot create a memory pool";

/**
 * @internal What a sleeping context does with its pool (src/sleep/), reached
 * through `sleepAccessOf`, which mod.ts does not export.
 */
export interface PoolSleepAccess {
  /** Refuses every use of its blocks with `reason` (a sleeping context), or allows them again. */
  setAsleep(reason: string | undefined): void;
  /** True while a block is pinned by `pin()` (not by a transfer). */
  userPinned(): boolean;
  /** Resolves once no write or read of its blocks is in flight. */
  transfersSettled(): Promise<void>;
  /**
   * Moves every resident block, evictable or not, to pinned host memory and
   * releases the cache (a context falling asleep). Returns the blocks moved;
   * blocks already evicted stay as they are.
   */
  evictAll(): PoolBlock[];
  /**
   * Restores `blocks` at their addresses (a context waking), each as an
   * allocation would (quota, budget, pressure, eviction); throws at the
   * first that cannot be given memory, leaving the ones before it resident.
   */
  restoreAll(blocks: PoolBlock[]): void;
}

let readSleepAccess: (pool: MemoryPool) => PoolSleepAccess;

/**
 * @internal The sleep side of `pool`, for src/sleep/ only.
 *
 * @example
 * ```ts
 * import { initialize, MemoryPool, SchedulerError, shutdown } from "@gpusched/core";
 * import { sleepAccessOf } from "./memory_pool.ts";
 * import assert from "node:assert/strict";
 * initialize({ backend: "host" });
 * const pool = new MemoryPool({ quota: 1 << 20 });
 * sleepAccessOf(pool).setAsleep("it is asleep");
 * assert.throws(() => pool.allocate(4096), SchedulerError);
 * sleepAccessOf(pool).setAsleep(undefined);
 * pool.allocate(4096).free();
 * shutdown();
 * ```
 */
export function sleepAccessOf(pool: MemoryPool): PoolSleepAccess {
  return readSleepAccess(pool);
}

/**
 * Device memory for one owner (a model, a context), in size classes with
 * free lists, so a freed block is handed out again without crossing FFI.
 *
 * - **Quota.** The pool never holds more than `quota` device bytes (live
 *   blocks plus cache). When a new allocation needs room, cached bytes are
 *   released least recently freed first, then, with `enableEviction`,
 *   evictable blocks are evicted least recently used first.
 * - **Eviction.** An evicted block's bytes are copied to pinned host memory
 *   on the block's stream and its device memory is released. It is restored,
 *   bit-exact, before its next use: `ptr`, `write`, `read`, `pin` or
 *   `await resident()`. Eviction and restore are stream-ordered, so they
 *   never race work queued on the block's stream. Pinned blocks are never
 *   evicted.
 * - **Device pressure.** When the device itself refuses, the pool releases
 *   its cache and, if allowed, evicts, then retries once.
 *
 * @example
 * ```ts
 * import { initialize, MB, MemoryPool, shutdown } from "@gpusched/core";
 * import assert from "node:assert/strict";
 * initialize({ backend: "host" });
 * const pool = new MemoryPool({ quota: 100 * MB, enableEviction: true });
 * const block = pool.allocate(4096);
 * pool.free(block);
 * const again = pool.allocate(4000); // same size class: reused, no native call
 * assert.ok(pool.stats().reuseCount === 1);
 * again.free();
 * pool.destroy();
 * shutdown();
 * ```
 */
export class MemoryPool implements Owned {
  /** Name used in error messages. */
  readonly name: string;
  /** Most device bytes the pool may hold. */
  readonly quota: number;
  /** Whether evictable blocks may be evicted. */
  readonly enableEviction: boolean;
  /** The stream blocks default to. */
  readonly stream: Stream;

  #scheduler: Scheduler;
  #ownsStream: boolean;
  #evictableByDefault: boolean;
  #exact: boolean;
  #device: number;
  #nextId = 1;
  #live: PoolBlock[] = [];
  #staging: StagingArea;
  #host: BlockHost;
  #makeBlock: NonNullable<PoolInternals["makeBlock"]>;
  #refusedHook: PoolInternals["refused"];
  /** Alive, asleep and names: what the layers read of the pool. */
  #state: { -readonly [K in keyof PoolState]: PoolState[K] };
  #inflight = new Set<Promise<void>>();
  #sleepAccess: PoolSleepAccess | undefined;
  // The layers.
  #order: StreamOrder;
  #source: DeviceSource;
  #limit: PoolLimit;
  #cache: SizeClassCache;
  #copies: HostCopies;
  #evictor: Evictor;
  #room: RoomMaker;
  #stats: PoolStatistics;

  /**
   * A pool on a device (`device`, default: the scheduler's) of `scheduler`.
   *
   * @param options quota, eviction, stream, name, device
   * @param internals @internal hooks for the pools of contexts
   * @param scheduler whose device it allocates on (default: the initialized one)
   * @throws {TypeError | RangeError} for bad options
   * @throws {SchedulerError} when the scheduler is not initialized or was shut down
   */
  constructor(
    options: MemoryPoolOptions,
    internals?: PoolInternals,
    scheduler: Scheduler = getScheduler(),
  ) {
    if (options === undefined) {
      throw new TypeError(`${CREATE}: options must be an object, got undefined`);
    }
    const opts = requireOptions<MemoryPoolOptions>(options, CREATE);
    this.quota = requirePositiveInteger(opts.quota, "quota", CREATE);
    this.enableEviction = opts.enableEviction === undefined
      ? false
      : requireBoolean(opts.enableEviction, "enableEviction", CREATE);
    this.#evictableByDefault = opts.evictableByDefault === undefined
      ? false
      : requireBoolean(opts.evictableByDefault, "evictableByDefault", CREATE);
    this.name = opts.name === undefined ? "pool" : requireNonEmptyString(opts.name, "name", CREATE);
    scheduler.assertActive("create a memory pool");
    this.#scheduler = scheduler;
    if (opts.stream !== undefined) this.#requireOwnStream(opts.stream, CREATE, "stream");
    const device = opts.device === undefined
      ? undefined
      : this.#scheduler.requireDevice(opts.device, CREATE);
    if (device !== undefined && opts.stream !== undefined && opts.stream.device !== device) {
      throw new RangeError(
        `${CREATE}: device must be the device of stream (${opts.stream.device}), got ${device}`,
      );
    }
    // On the device asked for, else that of the stream it was given, else the scheduler's.
    this.#device = device ?? opts.stream?.device ?? this.#scheduler.device.id;
    this.#staging = stagingFor(this.#scheduler, this.#device);
    const space = addressSpaceFor(this.#scheduler, this.#device);
    this.#ownsStream = opts.stream === undefined;
    this.stream = opts.stream ?? this.#scheduler.createStream({ device: this.#device });
    // Its blocks are freed in this stream's order: only the pool may destroy a stream it made.
    if (this.#ownsStream) this.stream.heldBy = `pool ${JSON.stringify(this.name)}`;
    try {
      this.#order = new StreamOrder(
        this.#scheduler.createEvent({ device: this.#device }),
        this.stream,
      );
    } catch (error) {
      if (this.#ownsStream) this.stream.destroyHeld();
      throw error;
    }
    this.#host = this.#makeBlockHost();
    const budget = internals?.budget ??
      limitOwnerBudget(
        limitOwnerOf(this.#scheduler, this.#device),
        (bytes) => this.#room.evictOwn(bytes),
      );
    this.#state = {
      name: this.name,
      errorContext: internals?.errorContext ?? { poolName: this.name },
      enableEviction: this.enableEviction,
      alive: true,
      asleep: undefined,
    };
    this.#exact = internals?.exactSizes ?? false;
    this.#makeBlock = internals?.makeBlock ?? ((...args) => new PoolBlock(...args));
    this.#refusedHook = internals?.refused;
    // The layers, bottom up (see the module notes).
    this.#source = new DeviceSource(space, this.#order, () => this.#letFreesLand());
    this.#limit = new PoolLimit(this.quota, budget);
    this.#cache = new SizeClassCache(this.#order, (memory) => this.#releaseCached(memory));
    this.#stats = new PoolStatistics(this);
    this.#copies = new HostCopies(
      this.#state.errorContext,
      () => this.#state.alive,
      () => scheduler.active,
    );
    this.#evictor = new Evictor(recordOf, {
      source: this.#source,
      limit: this.#limit,
      copies: this.#copies,
      stats: this.#stats,
      order: this.#order,
    });
    this.#room = new RoomMaker(this.#state, scheduler, {
      limit: this.#limit,
      cache: this.#cache,
      evictor: this.#evictor,
      source: this.#source,
    });
    this.#scheduler.adopt(this);
  }

  #requireOwnStream(stream: unknown, doing: string, option: string): Stream {
    if (!(stream instanceof Stream)) {
      throw new TypeError(`${doing}: ${option} must be a Stream, got ${show(stream)}`);
    }
    if (stream.destroyed) {
      throw new SchedulerError(`${doing}: ${option} ${stream.id} was destroyed`);
    }
    return stream;
  }

  #assertAlive(doing: string): void {
    if (!this.#state.alive) {
      throw new SchedulerError(`Cannot ${doing}: pool "${this.name}" was destroyed`);
    }
  }

  /**
   * A block of at least `size` bytes.
   *
   * @throws {TypeError | RangeError} for a bad size or options (a `RangeError` for a stream of
   *   another device than the pool's)
   * @throws {VramBudgetExceededError} for a size above the quota, or when no room can be made
   *   under the quota or on the device
   */
  allocate(size: number, options?: AllocateOptions): PoolBlock {
    const doing = `Cannot allocate from pool "${this.name}"`;
    if (typeof size !== "number") {
      throw new TypeError(`${doing}: size must be a number, got ${show(size)}`);
    }
    if (!Number.isSafeInteger(size) || size <= 0) {
      throw new RangeError(`${doing}: size must be a positive integer, got ${show(size)}`);
    }
    let evictable = this.#evictableByDefault;
    let stream = this.stream;
    if (options !== undefined) {
      const opts = requireOptions<AllocateOptions>(options, doing);
      if (opts.evictable !== undefined) {
        evictable = requireBoolean(opts.evictable, "evictable", doing);
      }
      if (opts.stream !== undefined) {
        stream = this.#requireOwnStream(opts.stream, doing, "stream");
        // The block's memory is on the pool's device: its copies, eviction and restore go there.
        if (stream.device !== this.#device) {
          throw new RangeError(
            `${doing}: stream must be a stream of the pool's device ${this.#device}, ` +
              `got stream ${stream.id} of device ${stream.device}`,
          );
        }
      }
    }
    const state = this.#state;
    if (!state.alive) this.#assertAlive("allocate");
    if (state.asleep !== undefined) throw new SchedulerError(`${doing}: ${state.asleep}`);
    // Past the pool's cap: refused as an allocation past a context's budget is.
    if (size > this.quota) {
      throw new VramBudgetExceededError(state.errorContext, size, this.#room.availableNow());
    }
    const key = this.#exact ? size : sizeClassOf(size);
    // The hot path: a cached size is handed out without crossing FFI.
    const cached = this.#cache.take(key, stream);
    const memory = cached ?? this.#room.acquire(size, key, stream);
    const classSize = memory.size;
    const block = this.#makeBlock(this.#host, this.#nextId++, size, classSize, evictable, stream);
    const record = recordOf(block);
    record.memory = memory;
    record.index = this.#live.length;
    this.#live.push(block);
    if (evictable) this.#evictor.track(block, record);
    this.#stats.allocated(size, classSize, cached !== undefined);
    return block;
  }

  /**
   * Returns a block to the pool: its device memory is cached for reuse.
   * Idempotent, as `block.free()` is.
   *
   * @throws {TypeError} when `block` is not a PoolBlock
   * @throws {RangeError} when it belongs to another pool
   * @throws {SchedulerError} when it is pinned
   */
  free(block: PoolBlock): void {
    const doing = `Cannot free a block in pool "${this.name}"`;
    if (!(block instanceof PoolBlock)) {
      throw new TypeError(`${doing}: expected a PoolBlock, got ${show(block)}`);
    }
    const record = recordOf(block);
    if (record.host !== this.#host) {
      throw new RangeError(`${doing}: block ${block.id} belongs to another pool`);
    }
    block.free(); // idempotent, and deferred while its own transfers run, as block.free() is
  }

  /** Releases every cached byte back to the device. */
  trim(): void {
    this.#assertAlive("trim a pool");
    this.#cache.releaseAll();
  }

  /** Counters for tuning; see MemoryPoolStats. */
  stats(): MemoryPoolStats {
    return this.#stats.snapshot({
      quota: this.quota,
      activeBlocks: this.#live.length,
      freeBlocks: this.#cache.count,
      evictableBytes: this.#evictor.evictableBytes,
      hostCacheBytes: this.#copies.spareBytes + this.#staging.bytes,
    });
  }

  /** Device bytes of resident live blocks (class sizes). */
  get allocatedBytes(): number {
    return this.#room.allocated;
  }

  /** Highest `allocatedBytes` seen (restores included). */
  get peakAllocatedBytes(): number {
    return this.#stats.peakAllocatedBytes;
  }

  /** Device bytes cached for reuse. */
  get cachedBytes(): number {
    return this.#cache.bytes;
  }

  /** Device bytes eviction could free right now (resident, unpinned, evictable). */
  get evictableBytes(): number {
    return this.#evictor.evictableBytes;
  }

  /**
   * Evicts up to `bytes` of evictable, unpinned blocks, least recently used
   * first; returns the bytes of device memory released. Useful to make room
   * for someone else ahead of time.
   */
  evict(bytes: number): number {
    const doing = `Cannot evict from pool "${this.name}"`;
    requirePositiveInteger(bytes, "bytes", doing);
    this.#assertAlive("evict from a pool");
    return this.#evictor.evictBytes(bytes);
  }

  /**
   * Frees every block and cached byte and the pool's own stream. Blocks of
   * the pool become unusable. Idempotent.
   */
  destroy(): void {
    if (!this.#state.alive) return;
    this.#state.alive = false;
    this.#scheduler.release(this);
    // Let queued copies into staging and host buffers finish before they are freed.
    this.#order.synchronize();
    for (const block of this.#live) {
      const record = recordOf(block);
      record.state = "freed";
      const memory = record.memory, host = record.hostCopy;
      if (memory && !host) {
        this.#source.decommit(memory, memory.stream, "free");
        this.#limit.release(memory.size);
      }
      if (host) this.#copies.free(host);
    }
    this.#live = [];
    this.#stats.liveCleared();
    this.#evictor.clear();
    this.#cache.releaseAll();
    // Streams are synchronized above: host copies waiting for them are free to go now.
    this.#copies.destroy();
    // The decommits above are stream-ordered: let them land before the address ranges go back
    // to the device's space, where another pool may commit them at once, laid out differently.
    this.#order.synchronize();
    this.#source.destroy();
    this.#order.destroy();
    if (this.#ownsStream) this.stream.destroyHeld();
  }

  /** Same as `destroy()`, for `using`. */
  [Symbol.dispose](): void {
    this.destroy();
  }

  /** @internal The scheduler shut down and freed everything natively. */
  invalidate(): void {
    this.#state.alive = false;
    for (const block of this.#live) recordOf(block).state = "freed";
    this.#live = [];
    // libsched freed every allocation: nothing is held, cached or evicted any more.
    this.#stats.allCleared();
    this.#evictor.clear();
    this.#cache.clear();
    this.#limit.forget();
    this.#copies.clear();
  }

  static {
    readSleepAccess = (pool) =>
      pool.#sleepAccess ??= {
        setAsleep: (reason) => pool.#state.asleep = reason,
        userPinned: () => pool.#live.some((block) => recordOf(block).userPins > 0),
        transfersSettled: () => pool.#transfersSettled(),
        evictAll: () => pool.#evictAll(),
        restoreAll: (blocks) => pool.#restoreAll(blocks),
      };
  }

  async #transfersSettled(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
  }

  #evictAll(): PoolBlock[] {
    this.#assertAlive("evict a pool");
    const moved: PoolBlock[] = [];
    for (const block of [...this.#live]) {
      if (recordOf(block).state !== "resident") continue;
      this.#evictor.evict(block);
      moved.push(block);
    }
    this.#cache.releaseAll();
    return moved;
  }

  #restoreAll(blocks: PoolBlock[]): void {
    for (const block of blocks) {
      this.#assertAlive("restore a pool");
      const record = recordOf(block);
      if (record.state === "evicted") this.#restore(block, record);
    }
  }

  // ------------------------------------------------------------ internals

  /** The cache let go of `memory`: back to the device, and its claim back to the limit. */
  #releaseCached(memory: DeviceMemory): void {
    this.#source.deallocate(memory, "release cached memory");
    this.#limit.release(memory.size);
    this.#stats.released(memory.size);
  }

  /**
   * The device refused although the ledger had the bytes: what accounting
   * calls free may still be held by frees not yet done in stream order.
   * Give back our cache and let every stream of the scheduler reach its
   * queued frees before the one retry. No user code; nobody's live data is
   * touched (eviction waits for the handlers' consent, in RoomMaker).
   */
  #letFreesLand(): void {
    this.#cache.releaseAll();
    for (const s of this.#scheduler.liveStreams()) if (!s.destroyed) s.synchronizeSync();
    this.#order.synchronize();
  }

  /** Makes an evicted block resident again: room first, then its bytes copied back. */
  #restore(block: PoolBlock, record: BlockRecord): Deno.PointerObject {
    if (!this.#room.recommit(block, record)) return record.memory!.ptr; // a handler restored it
    try {
      return this.#evictor.copyBack(block, record);
    } catch (error) {
      // The copy never queued: the block stays evicted (its host copy holds the data), so the
      // memory committed for it and its claim go back, and a later restore starts afresh.
      this.#source.decommit(record.memory!, block.stream, "restore a block");
      this.#limit.release(block.classSize);
      throw error;
    }
  }

  #release(block: PoolBlock, record: BlockRecord): boolean {
    if (record.state === "freed") return false;
    if (record.pins > 0) {
      throw new SchedulerError(
        `Cannot free block ${block.id} of pool "${this.name}": it is pinned (${record.pins} pin(s) or transfers in flight)`,
      );
    }
    // Swap-remove from the live array: O(1), no hashing on the hot path.
    const last = this.#live.pop()!;
    if (last !== block) {
      this.#live[record.index] = last;
      recordOf(last).index = record.index;
    }
    const resident = record.state === "resident";
    record.state = "freed";
    if (resident) {
      const memory = record.memory!;
      if (record.lruNode) this.#evictor.untrack(block, record);
      memory.stream = block.stream;
      this.#cache.put(memory);
      this.#stats.freed(block.size, block.classSize);
    } else {
      this.#stats.freedEvicted(block.size, record.hostCopy!.size);
      this.#evictor.forget(block, record);
    }
    record.memory = undefined;
    return true;
  }

  /** Keeps a transfer in the set a sleeping context waits for. */
  #track(transfer: Promise<void>): Promise<void> {
    this.#inflight.add(transfer);
    const done = () => void this.#inflight.delete(transfer);
    transfer.then(done, done);
    return transfer;
  }

  /** Throws when the pool cannot be used now (destroyed, asleep). */
  #assertUsable(block: PoolBlock): void {
    this.#assertAlive("use a block");
    if (this.#state.asleep !== undefined) {
      throw new SchedulerError(`Cannot use block ${block.id}: ${this.#state.asleep}`);
    }
  }

  #makeBlockHost(): BlockHost {
    return {
      name: this.name,
      touch: (_block, record) => this.#evictor.touch(record),
      ensureResident: (block, record) => {
        this.#assertUsable(block);
        if (record.state === "resident") return record.memory!.ptr;
        let ptr: Deno.PointerObject;
        try {
          ptr = this.#restore(block, record);
        } catch (error) {
          if (error instanceof VramBudgetExceededError) this.#refusedHook?.(error);
          throw error;
        }
        if (this.#state.asleep !== undefined) {
          // A pressure handler of the restore put the context to sleep; its sleep moves it out again.
          throw new SchedulerError(`Cannot use block ${block.id}: ${this.#state.asleep}`);
        }
        return ptr;
      },
      assertUsable: (block) => this.#assertUsable(block),
      pin: (block, record) => this.#evictor.pin(block, record),
      unpin: (block, record) => this.#evictor.unpin(block, record),
      release: (block, record) => this.#release(block, record),
      write: (block, ptr, offset, data) => {
        const done = this.#track(stagedWrite(
          this.#staging,
          block.stream,
          block.stream.nativeHandle("write"),
          ptr,
          offset,
          data,
        ));
        return tracing.on ? traceCopy(this, "write", data.byteLength, done) : done;
      },
      read: (block, ptr, offset, out) => {
        const done = this.#track(stagedRead(
          this.#staging,
          block.stream,
          block.stream.nativeHandle("read"),
          ptr,
          offset,
          out,
        ));
        return tracing.on ? traceCopy(this, "read", out.byteLength, done) : done;
      },
    };
  }
}
