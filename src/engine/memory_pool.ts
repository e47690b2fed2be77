/**
 * MemoryPool: device memory in size classes with free lists, LRU order and
 * real eviction to pinned host memory.
 *
 * @module
 */

import { SchedulerError, VramBudgetExceededError } from "../errors.ts";
import type { ExecutionContext } from "../context/execution_context.ts";
import type { GpuEvent } from "../event.ts";
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
import { LinkedList, ListNode } from "./linked_list.ts";
import {
  copyToDevice,
  copyToHost,
  createNativePool,
  destroyNativePool,
  pinnedAlloc,
  pinnedFree,
  pinnedRefused,
} from "./native_memory.ts";
import { limitOwnerOf } from "./limit_owner.ts";
import { type BlockHost, PoolBlock } from "./pool_block.ts";
export type { BlockHost };
import { sizeClassOf } from "./size_classes.ts";
import { stagedRead, stagedWrite, type StagingArea, stagingFor } from "./staging.ts";
import {
  addressSpaceFor,
  type Slot,
  SlotAllocator,
  vmmCommit,
  vmmDecommit,
  vmmReap,
} from "./virtual_memory.ts";
import { traceCopy, traceMemory, tracing } from "../trace/recorder.ts";

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

/**
 * The account a pool claims device bytes from: a context's share of the
 * device (its manager's rules), or, for a standalone pool, the device's
 * limit owner directly. Only `pressure` may run user code; the pool
 * re-validates everything after it, so no decision survives a callback.
 * @internal
 */
export interface PoolBudget {
  /** Claims `bytes` more for the pool if they fit now; true when claimed. Runs no user code. */
  tryRequest(bytes: number): boolean;
  /** Called after the pool gave `bytes` of device memory back. */
  returned(bytes: number): void;
  /**
   * The pool cannot fit `bytes` without evicting or reclaiming: asks the
   * memory-pressure handlers (user code: anything may change meanwhile);
   * throws to refuse. Nothing is evicted unless it returns.
   */
  pressure(bytes: number, available: number): void;
  /** After `pressure` allowed it: frees others' claims so `bytes` more may be claimed. No user code. */
  reclaim(bytes: number): void;
  /** Bytes the pool could claim now without evicting anything (others' caches count). */
  available(): number;
}

/** @internal Hooks for pools owned by the scheduler. */
export interface PoolInternals {
  budget?: PoolBudget;
  /**
   * A libsched pool shared with other MemoryPools (not destroyed with this
   * one). Sharing one native pool lets memory freed by one context be
   * reused by another in stream order, without a device synchronization.
   */
  nativePool?: number;
  /** Makes the block objects (a subclass of PoolBlock, e.g. DeviceBuffer). */
  makeBlock?: (...args: ConstructorParameters<typeof PoolBlock>) => PoolBlock;
  /** Who errors name as asking (the ExecutionContext of a context's pool). */
  errorContext?: ExecutionContext;
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

/** What `MemoryPool.stats()` reports. */
export interface MemoryPoolStats {
  /** The pool's cap on device bytes (live blocks plus cache). */
  quota: number;
  /** Device bytes held by resident live blocks (class sizes). */
  allocatedBytes: number;
  /** Bytes asked for by live blocks, resident or evicted. */
  requestedBytes: number;
  /** Device bytes kept for reuse (freed blocks not yet released). */
  cachedBytes: number;
  /** Live blocks, resident or evicted. */
  activeBlocks: number;
  /** Cached device allocations ready for reuse. */
  freeBlocks: number;
  /** Live blocks currently moved out to host memory. */
  evictedBlocks: number;
  /** Pinned host bytes holding evicted blocks. */
  evictedHostBytes: number;
  /** Device bytes of resident, unpinned, evictable blocks: what eviction could free now. */
  evictableBytes: number;
  /** Pinned host bytes of staging chunks and spare eviction buffers. */
  hostCacheBytes: number;
  /** Allocations served. */
  allocationCount: number;
  /** Allocations served from the cache, without a native call. */
  reuseCount: number;
  /** Evictions performed. */
  evictionCount: number;
  /** Restores performed. */
  restoreCount: number;
  /** Bytes copied out by evictions, in total. */
  evictedBytesTotal: number;
  /** Bytes copied back by restores, in total. */
  restoredBytesTotal: number;
  /** Highest `allocatedBytes + cachedBytes` seen. */
  peakBytes: number;
  /** Share of resident device bytes lost to size-class rounding: 1 - requested / allocated. */
  fragmentation: number;
}

/** A cached or live device allocation. Moves between blocks and free lists without reallocation. */
interface DeviceMemory {
  readonly ptr: Deno.PointerObject;
  readonly size: number;
  /** Stream of its last use: reuse on another stream waits for it. */
  stream: Stream;
  readonly classNode: ListNode<DeviceMemory>;
  readonly cacheNode: ListNode<DeviceMemory>;
  /** Its fixed address range: the block keeps it while evicted, so `ptr` never changes. */
  readonly slot: Slot;
}

/** Pinned host memory holding an evicted block. */
interface HostCopy {
  readonly ptr: Deno.PointerObject;
  readonly size: number;
}

/** Typed access to the pool's records that a block carries. */
function memoryOf(block: PoolBlock): DeviceMemory | undefined {
  return block._memory as DeviceMemory | undefined;
}
function hostCopyOf(block: PoolBlock): HostCopy | undefined {
  return block._hostCopy as HostCopy | undefined;
}
function lruNodeOf(block: PoolBlock): ListNode<PoolBlock> | undefined {
  return block._lruNode as ListNode<PoolBlock> | undefined;
}

const CREATE = "Cannot create a memory pool";
/** Cached bytes a pool always may keep (see #boundCache). */
const CACHE_FLOOR = 32 * 1024 * 1024;

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
  #nativePool: number;
  #ownsNativePool: boolean;
  #ownsStream: boolean;
  #evictableByDefault: boolean;
  #alive = true;
  #nextId = 1;
  #free = new Map<number, LinkedList<DeviceMemory>>();
  #cacheLru = new LinkedList<DeviceMemory>();
  #residentLru = new LinkedList<PoolBlock>();
  #live: PoolBlock[] = [];
  #spareHost = new Map<number, HostCopy[]>();
  #spareHostBytes = 0;
  #staging: StagingArea;
  #orderEvent: GpuEvent;
  #streams = new Set<Stream>();
  #host: BlockHost;
  #budget: PoolBudget;
  #errorContext: ExecutionContext | string;
  #exact: boolean;
  /** Host copies whose release waits on a stream: freed at once by destroy(). */
  #pendingHostCopies = new Set<HostCopy>();
  #makeBlock: NonNullable<PoolInternals["makeBlock"]>;
  #slots: SlotAllocator;
  #device: number;
  /** Address ranges of evicted blocks, committed again at restore. */
  #parked = new Map<PoolBlock, DeviceMemory>();
  /** Why its blocks cannot be used now (a sleeping context), or undefined. */
  #asleep: string | undefined;
  #inflight = new Set<Promise<void>>();

  #allocated = 0;
  #requested = 0;
  #residentRequested = 0;
  #cached = 0;
  #evictableResident = 0;
  #evictedBlocks = 0;
  #evictedHostBytes = 0;
  #allocationCount = 0;
  #reuseCount = 0;
  #evictionCount = 0;
  #restoreCount = 0;
  #evictedBytesTotal = 0;
  #restoredBytesTotal = 0;
  #peak = 0;
  #peakAllocated = 0;

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
    this.#slots = new SlotAllocator(addressSpaceFor(this.#scheduler, this.#device));
    this.#ownsNativePool = internals?.nativePool === undefined;
    // No native cap: the quota and the device account are the caps (a native cap also counts
    // memory the pool keeps in pieces, refusing bytes the accounts rightly call free).
    this.#nativePool = internals?.nativePool ?? createNativePool(0, this.#device);
    try {
      this.#ownsStream = opts.stream === undefined;
      this.stream = opts.stream ?? this.#scheduler.createStream({ device: this.#device });
      this.#orderEvent = this.#scheduler.createEvent({ device: this.#device });
    } catch (error) {
      if (this.#ownsNativePool) destroyNativePool(this.#nativePool);
      throw error;
    }
    this.#streams.add(this.stream);
    this.#host = this.#makeBlockHost();
    this.#budget = internals?.budget ??
      standaloneBudget(this.#scheduler, this.#device, (bytes) => this.#evictOwn(bytes));
    this.#errorContext = internals?.errorContext ?? this.name;
    this.#exact = internals?.exactSizes ?? false;
    this.#makeBlock = internals?.makeBlock ?? ((...args) => new PoolBlock(...args));
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
    if (!this.#alive) {
      throw new SchedulerError(`Cannot ${doing}: pool "${this.name}" was destroyed`);
    }
  }

  /**
   * A block of at least `size` bytes.
   *
   * @throws {TypeError | RangeError} for a bad size or options
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
      if (opts.stream !== undefined) stream = this.#requireOwnStream(opts.stream, doing, "stream");
    }
    if (!this.#alive) this.#assertAlive("allocate");
    if (this.#asleep !== undefined) throw new SchedulerError(`${doing}: ${this.#asleep}`);
    // Past the pool's cap: refused as an allocation past a context's budget is.
    if (size > this.quota) {
      throw new VramBudgetExceededError(this.#errorContext, size, this.#availableNow());
    }
    const key = this.#exact ? size : sizeClassOf(size);
    const memory = this.#reuse(key, stream) ?? this.#takeDevice(size, key, stream);
    const classSize = memory.size;
    const block = this.#makeBlock(this.#host, this.#nextId++, size, classSize, evictable, stream);
    block._memory = memory;
    block._index = this.#live.length;
    this.#live.push(block);
    if (evictable) {
      const node = new ListNode(block);
      block._lruNode = node;
      this.#residentLru.push(node);
      this.#evictableResident += classSize;
    }
    this.#allocated += classSize;
    this.#requested += size;
    this.#residentRequested += size;
    this.#allocationCount++;
    const held = this.#allocated + this.#cached;
    if (held > this.#peak) this.#peak = held;
    if (this.#allocated > this.#peakAllocated) this.#peakAllocated = this.#allocated;
    if (tracing.on) this.#trace("alloc", size);
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
    if (block._owner !== this.#host) {
      throw new RangeError(`${doing}: block ${block.id} belongs to another pool`);
    }
    if (block.freed) return; // idempotent, as block.free() is
    this.#release(block);
  }

  /** Releases every cached byte back to the device. */
  trim(): void {
    this.#assertAlive("trim a pool");
    while (this.#cacheLru.size > 0) this.#releaseOldestCached();
  }

  /** Counters for tuning; see MemoryPoolStats. */
  stats(): MemoryPoolStats {
    let freeBlocks = 0;
    for (const list of this.#free.values()) freeBlocks += list.size;
    return {
      quota: this.quota,
      allocatedBytes: this.#allocated,
      requestedBytes: this.#requested,
      cachedBytes: this.#cached,
      activeBlocks: this.#live.length,
      freeBlocks,
      evictedBlocks: this.#evictedBlocks,
      evictedHostBytes: this.#evictedHostBytes,
      evictableBytes: this.#evictableResident,
      hostCacheBytes: this.#spareHostBytes + this.#staging.bytes,
      allocationCount: this.#allocationCount,
      reuseCount: this.#reuseCount,
      evictionCount: this.#evictionCount,
      restoreCount: this.#restoreCount,
      evictedBytesTotal: this.#evictedBytesTotal,
      restoredBytesTotal: this.#restoredBytesTotal,
      peakBytes: this.#peak,
      fragmentation: this.#allocated === 0 ? 0 : 1 - this.#residentRequested / this.#allocated,
    };
  }

  /** Device bytes of resident live blocks (class sizes). */
  get allocatedBytes(): number {
    return this.#allocated;
  }

  /** Highest `allocatedBytes` seen (restores included). */
  get peakAllocatedBytes(): number {
    return this.#peakAllocated;
  }

  /** Device bytes cached for reuse. */
  get cachedBytes(): number {
    return this.#cached;
  }

  /** Device bytes eviction could free right now (resident, unpinned, evictable). */
  get evictableBytes(): number {
    return this.#evictableResident;
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
    let released = 0;
    while (released < bytes && this.#residentLru.head) {
      released += this.#evictBlock(this.#residentLru.head.value);
    }
    return released;
  }

  /**
   * Frees every block and cached byte and the pool's own stream. Blocks of
   * the pool become unusable. Idempotent.
   */
  destroy(): void {
    if (!this.#alive) return;
    this.#alive = false;
    this.#scheduler.release(this);
    // Let queued copies into staging and host buffers finish before they are freed.
    for (const stream of this.#streams) if (!stream.destroyed) stream.synchronizeSync();
    for (const block of this.#live) {
      block._state = "freed";
      const memory = memoryOf(block), host = hostCopyOf(block);
      if (memory) {
        vmmDecommit(this.#device, memory.ptr, memory.stream.nativeHandle("free"));
        this.#budget.returned(memory.size);
      }
      if (host) pinnedFree(host.ptr);
    }
    this.#live = [];
    this.#parked.clear();
    this.#resetLiveCounters();
    while (this.#cacheLru.size > 0) this.#releaseOldestCached();
    for (const copies of this.#spareHost.values()) for (const copy of copies) pinnedFree(copy.ptr);
    this.#spareHost.clear();
    this.#spareHostBytes = 0;
    // Streams are synchronized above: host copies waiting for them are free to go now.
    for (const copy of this.#pendingHostCopies) pinnedFree(copy.ptr);
    this.#pendingHostCopies.clear();
    // The decommits above are stream-ordered: let them land before the address ranges go back
    // to the device's space, where another pool may commit them at once, laid out differently.
    for (const stream of this.#streams) if (!stream.destroyed) stream.synchronizeSync();
    vmmReap(this.#device);
    this.#slots.destroy();
    this.#orderEvent.destroy();
    if (this.#ownsStream) this.stream.destroy();
    if (this.#ownsNativePool) destroyNativePool(this.#nativePool);
  }

  /** Same as `destroy()`, for `using`. */
  [Symbol.dispose](): void {
    this.destroy();
  }

  /** @internal The scheduler shut down and freed everything natively. */
  invalidate(): void {
    this.#alive = false;
    for (const block of this.#live) block._state = "freed";
    this.#live = [];
    this.#parked.clear();
    // libsched freed every allocation: nothing is held, cached or evicted any more.
    this.#resetLiveCounters();
    this.#free.clear();
    this.#cacheLru = new LinkedList();
    this.#cached = 0;
    this.#spareHost.clear();
    this.#spareHostBytes = 0;
    this.#pendingHostCopies.clear();
  }

  /** No live block is left: live counters go to zero (totals and peaks stay). */
  #resetLiveCounters(): void {
    this.#allocated = 0;
    this.#requested = 0;
    this.#residentRequested = 0;
    this.#evictableResident = 0;
    this.#evictedBlocks = 0;
    this.#evictedHostBytes = 0;
    this.#residentLru = new LinkedList();
  }

  /** @internal Refuses every use of its blocks with `reason` (a sleeping context), or allows them again. */
  _setAsleep(reason: string | undefined): void {
    this.#asleep = reason;
  }

  /** @internal True while a block is pinned by `pin()` (not by a transfer). */
  _userPinned(): boolean {
    return this.#live.some((block) => block._userPins > 0);
  }

  /** @internal Resolves once no write or read of its blocks is in flight. */
  async _transfersSettled(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
  }

  /**
   * @internal Moves every resident block, evictable or not, to pinned host
   * memory and releases the cache (a context falling asleep). Returns the
   * blocks moved; blocks already evicted stay as they are.
   */
  _evictAll(): PoolBlock[] {
    this.#assertAlive("evict a pool");
    const moved: PoolBlock[] = [];
    for (const block of [...this.#live]) {
      if (memoryOf(block) === undefined) continue;
      this.#evictBlock(block);
      moved.push(block);
    }
    while (this.#cacheLru.size > 0) this.#releaseOldestCached();
    return moved;
  }

  /**
   * @internal Restores `blocks` at their addresses (a context waking), each
   * as an allocation would (quota, budget, pressure, eviction); throws at the
   * first that cannot be given memory, leaving the ones before it resident.
   */
  _restoreAll(blocks: PoolBlock[]): void {
    for (const block of blocks) {
      this.#assertAlive("restore a pool");
      if (block._state === "evicted") this.#restore(block);
    }
  }

  // ------------------------------------------------------------ internals

  /** Cached device memory of exactly `key` bytes for stream, if any (the hot path: no FFI). */
  #reuse(key: number, stream: Stream): DeviceMemory | undefined {
    const cached = this.#free.get(key)?.pop();
    if (!cached) return undefined;
    this.#cacheLru.remove(cached.cacheNode);
    this.#cached -= key;
    this.#reuseCount++;
    if (cached.stream !== stream) {
      // Freed on another stream: work queued there may still use it.
      this.#orderEvent.record(cached.stream);
      this.#orderEvent.wait(stream);
      cached.stream = stream;
      this.#streams.add(stream);
    }
    return cached;
  }

  /**
   * New device memory for `size` bytes (`key`: its size class, or `size`
   * itself for exact sizes): room claimed first (#claimRoom), then an
   * address range backed by device memory. A device refusal gives the
   * claim back and tries once more after the handlers allowed making room.
   */
  #takeDevice(size: number, key: number, stream: Stream): DeviceMemory {
    for (let attempt = 0;; attempt++) {
      const want = this.#claimRoom(size, key, undefined, attempt > 0);
      const slot = this.#slots.take(want);
      let committed = false;
      try {
        committed = this.#tryCommit(slot, want, stream);
      } finally {
        if (!committed) {
          this.#slots.give(slot);
          this.#budget.returned(want);
        }
      }
      if (committed) {
        const memory: DeviceMemory = {
          ptr: slot.ptr,
          size: want,
          slot,
          stream,
          classNode: undefined as unknown as ListNode<DeviceMemory>,
          cacheNode: undefined as unknown as ListNode<DeviceMemory>,
        };
        (memory as { classNode: ListNode<DeviceMemory> }).classNode = new ListNode(memory);
        (memory as { cacheNode: ListNode<DeviceMemory> }).cacheNode = new ListNode(memory);
        return memory;
      }
      if (attempt === 1) throw this.#refusal(size, true);
    }
  }

  /**
   * Claims room for `size` bytes under the quota and in the budget; returns
   * the bytes claimed: the size class `classKey` when it fits what is left,
   * else exactly `size`, so rounding never makes an allocation fail that
   * would fit.
   *
   * Every decision is re-made from scratch after the one call into user
   * code (the pressure handlers): they may allocate, free, destroy this
   * pool's context, or shut the scheduler down. `stillWanted` (restore)
   * re-checks the caller's own precondition after it. With `deviceRefused`
   * the device refused the last try: the handlers are asked first.
   */
  #claimRoom(
    size: number,
    classKey: number,
    stillWanted: (() => void) | undefined,
    deviceRefused: boolean,
  ): number {
    let key = classKey;
    let asked = false;
    for (;;) {
      if (!this.#alive) this.#assertAlive("allocate");
      this.#scheduler.assertActive("allocate");
      const want = key <= this.quota - this.#allocated ? key : size;
      if (!deviceRefused || asked) {
        while (this.#allocated + this.#cached + want > this.quota && this.#cacheLru.size > 0) {
          this.#releaseOldestCached();
        }
        if (this.#allocated + this.#cached + want <= this.quota) {
          let claimed = this.#budget.tryRequest(want);
          if (!claimed && this.#cacheLru.size > 0) {
            this.trim(); // our own cache is claimed too: give it back and ask again
            claimed = this.#budget.tryRequest(want);
          }
          if (!claimed && want > size) {
            key = size; // the class does not fit the budget but the exact size might
            continue;
          }
          if (claimed) return want;
        }
        if (asked) throw this.#refusal(size, deviceRefused);
      }
      asked = true;
      // The one call into user code: on return, nothing read above is trusted.
      this.#budget.pressure(want, this.#availableNow());
      if (!this.#scheduler.active) {
        throw new SchedulerError(
          `Cannot allocate in "${this.name}": a memory-pressure handler shut the scheduler down`,
        );
      }
      if (!this.#alive) {
        throw new SchedulerError(
          `Cannot allocate in "${this.name}": it was destroyed by a memory-pressure handler`,
        );
      }
      if (stillWanted) stillWanted();
      else if (this.#asleep !== undefined) {
        // A handler put this pool's context to sleep: a new allocation is refused, as while asleep.
        throw new SchedulerError(`Cannot allocate from pool "${this.name}": ${this.#asleep}`);
      }
      this.#makeRoom(want, deviceRefused);
    }
  }

  /** Bytes this pool could get now without evicting: under its quota and in its budget. */
  #availableNow(): number {
    return Math.max(0, Math.min(this.quota - this.#allocated, this.#budget.available()));
  }

  #refusal(size: number, deviceRefused: boolean): VramBudgetExceededError {
    let available = this.#alive && this.#scheduler.active ? this.#availableNow() : 0;
    if (deviceRefused && this.#scheduler.active) {
      available = Math.min(available, this.#scheduler.memoryInfo().free);
    }
    return new VramBudgetExceededError(this.#errorContext, size, available);
  }

  /**
   * The handlers allowed it: evict our own evictable blocks until `bytes`
   * fit under the quota (or, when the device refused, until `bytes` were
   * released), then let the budget reclaim from others. No user code.
   */
  #makeRoom(bytes: number, deviceRefused: boolean): void {
    while (this.#allocated + this.#cached + bytes > this.quota && this.#cacheLru.size > 0) {
      this.#releaseOldestCached();
    }
    while (
      this.enableEviction && this.#allocated + this.#cached + bytes > this.quota &&
      this.#residentLru.head
    ) {
      this.#evictBlock(this.#residentLru.head.value);
    }
    if (deviceRefused) this.#evictOwn(bytes);
    this.#budget.reclaim(bytes);
  }

  /** Evicts own evictable blocks, least recently used first, until `bytes` were released. */
  #evictOwn(bytes: number): void {
    let released = 0;
    while (this.enableEviction && released < bytes && this.#residentLru.head) {
      released += this.#evictBlock(this.#residentLru.head.value);
    }
  }

  /**
   * Before mapping more memory, keeps the cache to a small share of what
   * the pool holds (oldest released first). Under virtual memory released
   * physical memory serves any size class, so a large cache would only
   * hold memory (bench/fragmentation_trace.ts measures the effect); reuse
   * of recently freed sizes still hits the cache.
   */
  #boundCache(): void {
    const keep = Math.max(CACHE_FLOOR, this.#allocated / 32);
    while (this.#cached > keep && this.#cacheLru.size > 0) this.#releaseOldestCached();
  }

  /**
   * Backs a slot with device memory for use on stream, ordered after its
   * last use; false when the device refused even after #retryAfterDeviceRefusal.
   */
  #tryCommit(slot: Slot, bytes: number, stream: Stream): boolean {
    if (!vmmCommit(this.#device, slot.ptr, bytes) && !this.#retryAfterDeviceRefusal(slot, bytes)) {
      return false;
    }
    const last = slot.stream;
    if (last !== undefined && last !== stream && !last.destroyed) {
      // Its address was last used on another stream: work queued there may still touch it.
      this.#orderEvent.record(last);
      this.#orderEvent.wait(stream);
    }
    slot.stream = stream;
    this.#streams.add(stream);
    return true;
  }

  /**
   * The device refused although the ledger had the bytes: what accounting
   * calls free may still be held by frees not yet done in stream order.
   * Give back our cache, let every stream of the scheduler reach its queued
   * frees, and try once more. No user code; nobody's live data is touched
   * (eviction waits for the handlers' consent, in #claimRoom).
   */
  #retryAfterDeviceRefusal(slot: Slot, bytes: number): boolean {
    while (this.#cacheLru.size > 0) this.#releaseOldestCached();
    for (const s of this.#scheduler.liveStreams()) if (!s.destroyed) s.synchronizeSync();
    for (const s of this.#streams) if (!s.destroyed) s.synchronizeSync();
    return vmmCommit(this.#device, slot.ptr, bytes);
  }

  /** Frees the least recently cached allocation to the device; returns its stream. */
  #releaseOldestCached(): Stream {
    const memory = this.#cacheLru.head!.value;
    this.#cacheLru.remove(memory.cacheNode);
    memory.classNode.list!.remove(memory.classNode);
    this.#cached -= memory.size;
    vmmDecommit(this.#device, memory.ptr, memory.stream.nativeHandle("release cached memory"));
    memory.slot.stream = memory.stream;
    this.#slots.give(memory.slot);
    this.#budget.returned(memory.size);
    if (tracing.on) this.#trace("release cached", memory.size);
    return memory.stream;
  }

  /** Copies a resident block out to pinned host memory and releases its device memory. */
  #evictBlock(block: PoolBlock): number {
    const memory = memoryOf(block)!;
    const host = this.#takeHostCopy(block.classSize);
    const native = block.stream.nativeHandle("evict a block");
    if (memory.stream !== block.stream) {
      this.#orderEvent.record(memory.stream);
      this.#orderEvent.wait(block.stream);
    }
    copyToHost(host.ptr, memory.ptr, 0, block.size, native);
    // The address stays the block's: only the physical memory goes, once the copy is done.
    vmmDecommit(this.#device, memory.ptr, native);
    memory.stream = block.stream;
    memory.slot.stream = block.stream;
    this.#parked.set(block, memory);
    this.#budget.returned(block.classSize);
    const node = lruNodeOf(block);
    if (node?.list) {
      this.#residentLru.remove(node);
      this.#evictableResident -= block.classSize;
    }
    this.#allocated -= block.classSize;
    this.#residentRequested -= block.size;
    block._memory = undefined;
    block._hostCopy = host;
    block._state = "evicted";
    this.#evictedBlocks++;
    this.#evictedHostBytes += host.size;
    this.#evictionCount++;
    this.#evictedBytesTotal += block.size;
    if (tracing.on) this.#trace("evict", block.size);
    return block.classSize;
  }

  #takeHostCopy(classSize: number): HostCopy {
    const spare = this.#spareHost.get(classSize)?.pop();
    if (spare) {
      this.#spareHostBytes -= spare.size;
      return spare;
    }
    const ptr = pinnedAlloc(classSize);
    if (!ptr) {
      throw new VramBudgetExceededError(this.name, classSize, 0, {
        cause: pinnedRefused(classSize, "Cannot evict"),
      });
    }
    return { ptr, size: classSize };
  }

  /** Keeps a host buffer for the next eviction once stream has finished with it. */
  #returnHostCopyWhenDone(copy: HostCopy, stream: Stream): void {
    this.#pendingHostCopies.add(copy);
    stream.synchronize().then(
      () => {
        // destroy() already freed it (and shutdown freed everything natively).
        if (!this.#pendingHostCopies.delete(copy)) return;
        if (!this.#alive) {
          if (this.#scheduler.active) pinnedFree(copy.ptr);
          return;
        }
        const list = this.#spareHost.get(copy.size) ?? [];
        list.push(copy);
        this.#spareHost.set(copy.size, list);
        this.#spareHostBytes += copy.size;
      },
      () => {/* the scheduler shut down; libsched freed the buffer */},
    );
  }

  #restore(block: PoolBlock): Deno.PointerObject {
    const memory = this.#parked.get(block)!;
    // A pressure handler may have freed or restored this very block.
    const stillWanted = () => {
      if (block._state === "freed") {
        throw new SchedulerError(
          `Cannot use block ${block.id} of pool "${this.name}": it was freed by a memory-pressure handler`,
        );
      }
      if (block._state === "resident") throw RESTORED_MEANWHILE;
    };
    for (let attempt = 0;; attempt++) {
      try {
        this.#claimRoom(block.classSize, block.classSize, stillWanted, attempt > 0);
      } catch (error) {
        if (error === RESTORED_MEANWHILE) return memoryOf(block)!.ptr;
        throw error;
      }
      let committed = false;
      try {
        committed = this.#tryCommit(memory.slot, memory.size, block.stream);
      } finally {
        if (!committed) this.#budget.returned(block.classSize);
      }
      if (committed) break;
      if (attempt === 1) throw this.#refusal(block.classSize, true);
    }
    const host = hostCopyOf(block)!;
    copyToDevice(memory.ptr, 0, host.ptr, block.size, block.stream.nativeHandle("restore a block"));
    this.#parked.delete(block);
    block._memory = memory;
    block._hostCopy = undefined;
    block._state = "resident";
    this.#allocated += block.classSize;
    this.#residentRequested += block.size;
    this.#evictedBlocks--;
    this.#evictedHostBytes -= host.size;
    this.#restoreCount++;
    this.#restoredBytesTotal += block.size;
    if (block.evictable && block._pins === 0) {
      this.#residentLru.push(lruNodeOf(block)!);
      this.#evictableResident += block.classSize;
    }
    const held = this.#allocated + this.#cached;
    if (held > this.#peak) this.#peak = held;
    if (this.#allocated > this.#peakAllocated) this.#peakAllocated = this.#allocated;
    this.#returnHostCopyWhenDone(host, block.stream);
    if (tracing.on) this.#trace("restore", block.size);
    return memory.ptr;
  }

  #release(block: PoolBlock): boolean {
    if (block._state === "freed") return false;
    if (block._pins > 0) {
      throw new SchedulerError(
        `Cannot free block ${block.id} of pool "${this.name}": it is pinned (${block._pins} pin(s) or transfers in flight)`,
      );
    }
    // Swap-remove from the live array: O(1), no hashing on the hot path.
    const last = this.#live.pop()!;
    if (last !== block) {
      this.#live[block._index] = last;
      last._index = block._index;
    }
    block._state = "freed";
    this.#requested -= block.size;
    const memory = memoryOf(block);
    if (memory) {
      block._memory = undefined;
      const node = lruNodeOf(block);
      if (node?.list) {
        this.#residentLru.remove(node);
        this.#evictableResident -= block.classSize;
      }
      this.#allocated -= block.classSize;
      this.#residentRequested -= block.size;
      memory.stream = block.stream;
      let list = this.#free.get(memory.size);
      if (!list) {
        list = new LinkedList();
        this.#free.set(memory.size, list);
      }
      list.push(memory.classNode);
      this.#cacheLru.push(memory.cacheNode);
      this.#cached += memory.size;
    } else {
      const host = hostCopyOf(block)!;
      const parked = this.#parked.get(block)!;
      this.#parked.delete(block);
      this.#slots.give(parked.slot);
      block._hostCopy = undefined;
      this.#evictedBlocks--;
      this.#evictedHostBytes -= host.size;
      this.#returnHostCopyWhenDone(host, block.stream);
    }
    if (tracing.on) this.#trace("free", block.size);
    return true;
  }

  /** Keeps a transfer in the set a sleeping context waits for. */
  #track(transfer: Promise<void>): Promise<void> {
    this.#inflight.add(transfer);
    const done = () => void this.#inflight.delete(transfer);
    transfer.then(done, done);
    return transfer;
  }

  /** Records a memory event and the bytes held after it in the trace. */
  #trace(event: string, bytes: number): void {
    traceMemory(this, event, bytes, this.#allocated, this.#cached, this.#evictedHostBytes);
  }

  #makeBlockHost(): BlockHost {
    return {
      name: this.name,
      touch: (block) => {
        const node = lruNodeOf(block);
        if (node?.list) this.#residentLru.touch(node);
      },
      ensureResident: (block) => {
        this.#assertAlive("use a block");
        if (this.#asleep !== undefined) {
          throw new SchedulerError(`Cannot use block ${block.id}: ${this.#asleep}`);
        }
        const resident = memoryOf(block)?.ptr;
        if (resident !== undefined) return resident;
        const ptr = this.#restore(block);
        if (this.#asleep !== undefined) {
          // A pressure handler of the restore put the context to sleep; its sleep moves it out again.
          throw new SchedulerError(`Cannot use block ${block.id}: ${this.#asleep}`);
        }
        return ptr;
      },
      assertUsable: (block) => {
        this.#assertAlive("use a block");
        if (this.#asleep !== undefined) {
          throw new SchedulerError(`Cannot use block ${block.id}: ${this.#asleep}`);
        }
      },
      pin: (block) => {
        const node = lruNodeOf(block);
        if (block._pins++ === 0 && node?.list) {
          this.#residentLru.remove(node);
          this.#evictableResident -= block.classSize;
        }
      },
      unpin: (block) => {
        const node = lruNodeOf(block);
        if (--block._pins === 0 && node && block._memory) {
          this.#residentLru.push(node);
          this.#evictableResident += block.classSize;
        }
      },
      release: (block) => {
        return this.#release(block);
      },
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

/** Thrown inside a restore when a pressure handler made the block resident itself. */
const RESTORED_MEANWHILE = Symbol("restored meanwhile");

/**
 * A standalone pool's budget: the device's limit owner itself. It takes
 * only bytes nobody claims (others' caches are released for it), so it can
 * never take what a context reserved; it has no reservation of its own.
 */
function standaloneBudget(
  scheduler: Scheduler,
  device: number,
  evictOwn: (bytes: number) => void,
): PoolBudget {
  const owner = limitOwnerOf(scheduler, device);
  return {
    tryRequest: (bytes) => owner.claimReclaiming(bytes),
    returned: (bytes) => owner.release(bytes),
    pressure: () => {},
    reclaim: (bytes) => {
      if (bytes > owner.spare) evictOwn(bytes - owner.spare);
    },
    available: () => Math.max(0, owner.spare),
  };
}
