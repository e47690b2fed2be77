/**
 * Making room: how a pool gets device memory it does not have cached. The
 * one place where the layers meet on the slow path, in this order:
 *
 * 1. claim the bytes from the limit (quota, then budget), releasing the
 *    pool's own cache first when that is what stands in the way;
 * 2. failing that, ask the memory-pressure handlers (the one call into
 *    user code: afterwards nothing read before it is trusted, and the
 *    pool, its context and the scheduler are checked again);
 * 3. if they allow it, release cache and evict own blocks until the bytes
 *    fit under the quota, and let the budget reclaim from others; retry;
 * 4. commit the claimed bytes on the device source; when the device
 *    refuses although the accounts had the bytes, retry once from step 2
 *    with the device's refusal in mind (own evictions count then).
 *
 * A size class that does not fit is retried at the exact size, so size-class
 * rounding never makes an allocation fail that would fit.
 *
 * @module
 */

import { type PoolAsker, SchedulerError, VramBudgetExceededError } from "../errors.ts";
import type { ExecutionContext } from "../context/execution_context.ts";
import type { PoolBlock } from "../engine/pool_block.ts";
import type { Stream } from "../stream.ts";
import type { BlockRecord } from "./block_record.ts";
import type { DeviceMemory, DeviceSource } from "./device_source.ts";
import type { Evictor } from "./evictor.ts";
import type { PoolLimit } from "./pool_limit.ts";
import type { SizeClassCache } from "./size_class_cache.ts";

/** What the room maker reads of its pool, which may change in any pressure handler. */
export interface PoolState {
  readonly name: string;
  /** Who errors name as asking: a context, or a standalone pool (by name). */
  readonly errorContext: ExecutionContext | PoolAsker;
  /** Whether evictable blocks may be evicted to make room. */
  readonly enableEviction: boolean;
  /** False once the pool is destroyed. */
  readonly alive: boolean;
  /** Why its blocks cannot be used now (a sleeping context), or undefined. */
  readonly asleep: string | undefined;
}

/** What the room maker needs of the scheduler. */
export interface SchedulerView {
  readonly active: boolean;
  assertActive(doing: string): void;
  memoryInfo(device?: number): { readonly free: number };
}

/** Thrown inside a restore when a pressure handler made the block resident itself. */
const RESTORED_MEANWHILE = Symbol("restored meanwhile");

/**
 * The slow path of one pool.
 *
 * @example
 * ```ts
 * import { initialize, MB, MemoryPool, shutdown, VramBudgetExceededError } from "@gpusched/core";
 * import assert from "node:assert/strict";
 * initialize({ backend: "host" });
 * // Room is made inside a pool: its cache goes first, then evictable blocks.
 * const pool = new MemoryPool({ quota: 4 * MB, enableEviction: true });
 * pool.allocate(3 * MB).free(); // cached
 * const b = pool.allocate(2 * MB); // the cached 3 MiB are released for it
 * assert.equal(pool.stats().cachedBytes, 0);
 * assert.throws(() => pool.allocate(3 * MB), VramBudgetExceededError); // b is not evictable
 * b.free();
 * shutdown();
 * ```
 */
export class RoomMaker {
  #pool: PoolState;
  #scheduler: SchedulerView;
  #limit: PoolLimit;
  #cache: SizeClassCache;
  #evictor: Evictor;
  #source: DeviceSource;

  /** The room maker of the pool made of these layers. */
  constructor(
    pool: PoolState,
    scheduler: SchedulerView,
    layers: { limit: PoolLimit; cache: SizeClassCache; evictor: Evictor; source: DeviceSource },
  ) {
    this.#pool = pool;
    this.#scheduler = scheduler;
    this.#limit = layers.limit;
    this.#cache = layers.cache;
    this.#evictor = layers.evictor;
    this.#source = layers.source;
  }

  /** Device bytes of resident live blocks: what the pool holds less its cache. */
  get allocated(): number {
    return this.#limit.held - this.#cache.bytes;
  }

  /**
   * New device memory for `size` bytes (`key`: its size class, or `size`
   * itself for exact sizes), for use on `stream`: room claimed, then
   * committed. A device refusal gives the claim back and tries once more
   * after the handlers allowed making room.
   *
   * @throws {VramBudgetExceededError} when no room can be made
   * @throws {SchedulerError} when a pressure handler destroyed the pool or shut the scheduler down
   */
  acquire(size: number, key: number, stream: Stream): DeviceMemory {
    for (let attempt = 0;; attempt++) {
      const want = this.#claim(size, key, undefined, attempt > 0);
      let memory: DeviceMemory | undefined;
      try {
        memory = this.#source.allocate(want, stream);
      } finally {
        if (!memory) this.#limit.release(want);
      }
      if (memory) return memory;
      if (attempt === 1) throw this.#refusal(size, true);
    }
  }

  /**
   * Claims and commits an evicted block's memory again, at its address, as
   * an allocation would; false when a pressure handler restored the block
   * meanwhile (it is resident: nothing to do).
   *
   * @throws {VramBudgetExceededError} when no room can be made
   * @throws {SchedulerError} when a handler freed the block, destroyed the pool or shut down
   */
  recommit(block: PoolBlock, record: BlockRecord): boolean {
    const memory = record.memory!;
    // A pressure handler may have freed or restored this very block.
    const stillWanted = () => {
      if (record.state === "freed") {
        throw new SchedulerError(
          `Cannot use block ${block.id} of pool "${this.#pool.name}": it was freed by a memory-pressure handler`,
        );
      }
      if (record.state === "resident") throw RESTORED_MEANWHILE;
    };
    for (let attempt = 0;; attempt++) {
      try {
        this.#claim(block.classSize, block.classSize, stillWanted, attempt > 0);
      } catch (error) {
        if (error === RESTORED_MEANWHILE) return false;
        throw error;
      }
      let committed = false;
      try {
        committed = this.#source.commit(memory.slot, memory.size, block.stream);
      } finally {
        if (!committed) this.#limit.release(block.classSize);
      }
      if (committed) return true;
      if (attempt === 1) throw this.#refusal(block.classSize, true);
    }
  }

  /** Evicts own evictable blocks, least recently used first, until `bytes` were released. */
  evictOwn(bytes: number): void {
    if (this.#pool.enableEviction) this.#evictor.evictBytes(bytes);
  }

  /** Bytes this pool could get now without evicting: under its quota and in its budget. */
  availableNow(): number {
    return Math.max(
      0,
      Math.min(this.#limit.quota - this.allocated, this.#limit.budget.available()),
    );
  }

  /** The error of a refused allocation of `size` bytes. */
  #refusal(size: number, deviceRefused: boolean): VramBudgetExceededError {
    const pool = this.#pool;
    let available = pool.alive && this.#scheduler.active ? this.availableNow() : 0;
    if (deviceRefused && this.#scheduler.active) {
      available = Math.min(available, this.#scheduler.memoryInfo().free);
    }
    return new VramBudgetExceededError(pool.errorContext, size, available);
  }

  /**
   * Claims room for `size` bytes under the quota and in the budget; returns
   * the bytes claimed: the size class `classKey` when it fits what is left,
   * else exactly `size`.
   *
   * Every decision is re-made from scratch after the one call into user
   * code (the pressure handlers): they may allocate, free, destroy this
   * pool's context, or shut the scheduler down. `stillWanted` (restore)
   * re-checks the caller's own precondition after it. With `deviceRefused`
   * the device refused the last try: the handlers are asked first.
   */
  #claim(
    size: number,
    classKey: number,
    stillWanted: (() => void) | undefined,
    deviceRefused: boolean,
  ): number {
    const pool = this.#pool, limit = this.#limit, cache = this.#cache;
    let key = classKey;
    let asked = false;
    for (;;) {
      if (!pool.alive) {
        throw new SchedulerError(`Cannot allocate: pool "${pool.name}" was destroyed`);
      }
      this.#scheduler.assertActive("allocate");
      const want = key <= limit.quota - this.allocated ? key : size;
      if (!deviceRefused || asked) {
        while (!limit.fits(want) && cache.releaseOldest());
        if (limit.fits(want)) {
          let claimed = limit.tryClaim(want);
          if (!claimed && cache.count > 0) {
            cache.releaseAll(); // our own cache is claimed too: give it back and ask again
            claimed = limit.tryClaim(want);
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
      limit.budget.pressure(want, this.availableNow());
      if (!this.#scheduler.active) {
        throw new SchedulerError(
          `Cannot allocate in "${pool.name}": a memory-pressure handler shut the scheduler down`,
        );
      }
      if (!pool.alive) {
        throw new SchedulerError(
          `Cannot allocate in "${pool.name}": it was destroyed by a memory-pressure handler`,
        );
      }
      if (stillWanted) stillWanted();
      else if (pool.asleep !== undefined) {
        // A handler put this pool's context to sleep: a new allocation is refused, as while asleep.
        throw new SchedulerError(`Cannot allocate from pool "${pool.name}": ${pool.asleep}`);
      }
      this.#makeRoom(want, deviceRefused);
    }
  }

  /**
   * The handlers allowed it: evict our own evictable blocks until `bytes`
   * fit under the quota (or, when the device refused, until `bytes` were
   * released), then let the budget reclaim from others. No user code.
   */
  #makeRoom(bytes: number, deviceRefused: boolean): void {
    const limit = this.#limit;
    while (!limit.fits(bytes) && this.#cache.releaseOldest());
    if (this.#pool.enableEviction) {
      for (let block = this.#evictor.oldest; block && !limit.fits(bytes);) {
        this.#evictor.evict(block);
        block = this.#evictor.oldest;
      }
    }
    if (deviceRefused) this.evictOwn(bytes);
    limit.budget.reclaim(bytes);
  }
}
