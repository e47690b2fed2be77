/**
 * Statistics as an observer: the memory layers tell it what happened
 * (a block allocated or freed, memory cached or released, a block evicted
 * or restored) and it counts, keeps peaks and, while a trace records,
 * writes each event with the bytes held after it. It takes no decision and
 * no layer reads it to decide: the limit and the cache keep their own
 * state, so the counters can be checked against them (tests/memory_layers_test.ts).
 *
 * @module
 */

import { traceMemory, tracing, type Tracked } from "../trace/recorder.ts";

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

/** What the statistics cannot count themselves: the layers' present state. */
export interface PoolShape {
  quota: number;
  activeBlocks: number;
  freeBlocks: number;
  evictableBytes: number;
  hostCacheBytes: number;
}

/**
 * The counters of one pool.
 *
 * @example
 * ```ts
 * import { PoolStatistics } from "./pool_statistics.ts";
 * import assert from "node:assert/strict";
 * const stats = new PoolStatistics({ name: "pool" } as never);
 * stats.allocated(1000, 1024, false);
 * stats.freed(1000, 1024);
 * stats.allocated(1000, 1024, true); // from the cache
 * assert.equal(stats.reuseCount, 1);
 * assert.equal(stats.allocatedBytes, 1024);
 * ```
 */
export class PoolStatistics {
  /** Device bytes of resident live blocks. */
  allocatedBytes = 0;
  /** Bytes asked for by live blocks, resident or evicted. */
  requestedBytes = 0;
  /** Bytes asked for by resident live blocks. */
  residentRequestedBytes = 0;
  /** Device bytes cached. */
  cachedBytes = 0;
  /** Live blocks moved out. */
  evictedBlocks = 0;
  /** Pinned host bytes holding them. */
  evictedHostBytes = 0;
  /** Allocations served. */
  allocationCount = 0;
  /** Of them, from the cache. */
  reuseCount = 0;
  /** Evictions. */
  evictionCount = 0;
  /** Restores. */
  restoreCount = 0;
  /** Bytes copied out, in total. */
  evictedBytesTotal = 0;
  /** Bytes copied back, in total. */
  restoredBytesTotal = 0;
  /** Highest `allocatedBytes + cachedBytes`. */
  peakBytes = 0;
  /** Highest `allocatedBytes`. */
  peakAllocatedBytes = 0;
  #subject: Tracked;

  /** Counters of the pool `subject` (named in trace records). */
  constructor(subject: Tracked) {
    this.#subject = subject;
  }

  /** A block of `size` bytes got `classSize` bytes of device memory, `fromCache` or new. */
  allocated(size: number, classSize: number, fromCache: boolean): void {
    // Kept small and branch-light: it is on the hot path, and small enough to be inlined there.
    this.allocationCount++;
    this.requestedBytes += size;
    this.residentRequestedBytes += size;
    const allocated = this.allocatedBytes += classSize;
    if (allocated > this.peakAllocatedBytes) this.peakAllocatedBytes = allocated;
    if (fromCache) {
      // Cache to block: what the pool holds is unchanged, so peakBytes cannot move.
      this.cachedBytes -= classSize;
      this.reuseCount++;
    } else if (allocated + this.cachedBytes > this.peakBytes) {
      this.peakBytes = allocated + this.cachedBytes;
    }
    if (tracing.on) this.#trace("alloc", size);
  }

  /** A resident block was freed: its `classSize` bytes were cached. */
  freed(size: number, classSize: number): void {
    this.requestedBytes -= size;
    this.residentRequestedBytes -= size;
    this.allocatedBytes -= classSize;
    this.cachedBytes += classSize;
    if (tracing.on) this.#trace("free", size);
  }

  /** An evicted block was freed: its host copy of `hostBytes` goes. */
  freedEvicted(size: number, hostBytes: number): void {
    this.requestedBytes -= size;
    this.evictedBlocks--;
    this.evictedHostBytes -= hostBytes;
    if (tracing.on) this.#trace("free", size);
  }

  /** `bytes` of cached memory went back to the device. */
  released(bytes: number): void {
    this.cachedBytes -= bytes;
    if (tracing.on) this.#trace("release cached", bytes);
  }

  /** A block was moved out to a host copy of `hostBytes`. */
  evicted(size: number, classSize: number, hostBytes: number): void {
    this.allocatedBytes -= classSize;
    this.residentRequestedBytes -= size;
    this.evictedBlocks++;
    this.evictedHostBytes += hostBytes;
    this.evictionCount++;
    this.evictedBytesTotal += size;
    if (tracing.on) this.#trace("evict", size);
  }

  /** A block came back from its host copy of `hostBytes`. */
  restored(size: number, classSize: number, hostBytes: number): void {
    this.allocatedBytes += classSize;
    this.residentRequestedBytes += size;
    this.evictedBlocks--;
    this.evictedHostBytes -= hostBytes;
    this.restoreCount++;
    this.restoredBytesTotal += size;
    this.#peaks();
    if (tracing.on) this.#trace("restore", size);
  }

  /** No live block is left (destroy): live counters go to zero; totals and peaks stay. */
  liveCleared(): void {
    this.allocatedBytes = 0;
    this.requestedBytes = 0;
    this.residentRequestedBytes = 0;
    this.evictedBlocks = 0;
    this.evictedHostBytes = 0;
  }

  /** Nothing is held any more (shutdown freed it all): the cache is empty too. */
  allCleared(): void {
    this.liveCleared();
    this.cachedBytes = 0;
  }

  /** The MemoryPoolStats of now. */
  snapshot(shape: PoolShape): MemoryPoolStats {
    return {
      quota: shape.quota,
      allocatedBytes: this.allocatedBytes,
      requestedBytes: this.requestedBytes,
      cachedBytes: this.cachedBytes,
      activeBlocks: shape.activeBlocks,
      freeBlocks: shape.freeBlocks,
      evictedBlocks: this.evictedBlocks,
      evictedHostBytes: this.evictedHostBytes,
      evictableBytes: shape.evictableBytes,
      hostCacheBytes: shape.hostCacheBytes,
      allocationCount: this.allocationCount,
      reuseCount: this.reuseCount,
      evictionCount: this.evictionCount,
      restoreCount: this.restoreCount,
      evictedBytesTotal: this.evictedBytesTotal,
      restoredBytesTotal: this.restoredBytesTotal,
      peakBytes: this.peakBytes,
      fragmentation: this.allocatedBytes === 0
        ? 0
        : 1 - this.residentRequestedBytes / this.allocatedBytes,
    };
  }

  #peaks(): void {
    const held = this.allocatedBytes + this.cachedBytes;
    if (held > this.peakBytes) this.peakBytes = held;
    if (this.allocatedBytes > this.peakAllocatedBytes) {
      this.peakAllocatedBytes = this.allocatedBytes;
    }
  }

  #trace(event: string, bytes: number): void {
    traceMemory(
      this.#subject,
      event,
      bytes,
      this.allocatedBytes,
      this.cachedBytes,
      this.evictedHostBytes,
    );
  }
}
