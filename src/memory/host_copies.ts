/**
 * Pinned host buffers that hold evicted blocks. A buffer freed by a
 * restore is kept, by size, for the next eviction, but only once the
 * block's stream has finished copying out of it: until then it is
 * pending, and `destroy` frees pending buffers too (after the pool's
 * streams are idle). Eviction asks for buffers here, never the allocator.
 *
 * Spares are bounded by the most the pool has ever had evicted at once:
 * spare plus in-use bytes never pass that high-water mark, the least
 * recently returned sizes going first. Without the bound, evictions of
 * ever new sizes kept one spare per size forever (a 16 MiB context held 8
 * GiB pinned after 3,000 evictions); with it, a context that sleeps and
 * wakes whole keeps its copies for the next sleep.
 *
 * @module
 */

import { type PoolAsker, VramBudgetExceededError } from "../errors.ts";
import type { ExecutionContext } from "../context/execution_context.ts";
import { pinnedAlloc, pinnedFree, pinnedRefused } from "../native/memory.ts";
import type { Stream } from "../stream.ts";

/** Pinned host memory holding an evicted block. */
export interface HostCopy {
  readonly ptr: Deno.PointerObject;
  readonly size: number;
}

/**
 * The host buffers of one pool.
 *
 * @example
 * ```ts
 * import { initialize, shutdown } from "@gpusched/core";
 * import { HostCopies } from "./host_copies.ts";
 * import assert from "node:assert/strict";
 * const sched = initialize({ backend: "host" });
 * const copies = new HostCopies({ poolName: "pool" }, () => true, () => sched.active);
 * const copy = copies.take(4096);
 * copies.returnWhenDone(copy, sched.createStream());
 * await new Promise((resolve) => setTimeout(resolve, 10));
 * assert.equal(copies.spareBytes, 4096); // kept for the next eviction
 * copies.destroy();
 * shutdown();
 * ```
 */
export class HostCopies {
  /** Who a refusal names as asking: the pool's context, or the standalone pool. */
  #asker: ExecutionContext | PoolAsker;
  #spare = new Map<number, HostCopy[]>();
  #spareBytes = 0;
  /** Bytes taken and not yet back (evicted blocks, and copies still pending). */
  #inUseBytes = 0;
  /** The most bytes in use at once: what spares may be kept up to. */
  #peakInUseBytes = 0;
  /** Buffers whose return waits on a stream: freed at once by destroy(). */
  #pending = new Set<HostCopy>();
  #poolAlive: () => boolean;
  #schedulerActive: () => boolean;

  /** Buffers for the pool `name`; the two callbacks say whether pool and scheduler live. */
  constructor(
    asker: ExecutionContext | PoolAsker,
    poolAlive: () => boolean,
    schedulerActive: () => boolean,
  ) {
    this.#asker = asker;
    this.#poolAlive = poolAlive;
    this.#schedulerActive = schedulerActive;
  }

  /** Pinned bytes kept for later evictions. */
  get spareBytes(): number {
    return this.#spareBytes;
  }

  /**
   * A buffer of `bytes`, spare or new.
   *
   * @throws {VramBudgetExceededError} when the host refuses pinned memory
   */
  take(bytes: number): HostCopy {
    const spare = this.#spare.get(bytes)?.pop();
    if (spare) {
      this.#spareBytes -= spare.size;
      this.#inUse(spare.size);
      return spare;
    }
    // A new buffer: spares of other sizes that the bound no longer covers go first.
    this.#trimSpares(bytes);
    const ptr = pinnedAlloc(bytes);
    if (!ptr) {
      throw new VramBudgetExceededError(this.#asker, bytes, 0, {
        cause: pinnedRefused(bytes, "Cannot evict"),
      });
    }
    this.#inUse(bytes);
    return { ptr, size: bytes };
  }

  #inUse(bytes: number): void {
    this.#inUseBytes += bytes;
    if (this.#inUseBytes > this.#peakInUseBytes) this.#peakInUseBytes = this.#inUseBytes;
  }

  /** Frees the least recently returned spares until `extra` more bytes fit under the bound. */
  #trimSpares(extra: number): void {
    for (const [size, copies] of this.#spare) {
      while (
        copies.length > 0 &&
        this.#spareBytes + this.#inUseBytes + extra > this.#peakInUseBytes
      ) {
        pinnedFree(copies.pop()!.ptr);
        this.#spareBytes -= size;
      }
      if (copies.length === 0) this.#spare.delete(size);
      if (this.#spareBytes + this.#inUseBytes + extra <= this.#peakInUseBytes) return;
    }
  }

  /** Keeps `copy` for the next eviction once `stream` has finished with it. */
  returnWhenDone(copy: HostCopy, stream: Stream): void {
    this.#pending.add(copy);
    stream.synchronize().then(
      () => {
        // destroy() already freed it (and shutdown freed everything natively).
        if (!this.#pending.delete(copy)) return;
        this.#inUseBytes -= copy.size;
        if (!this.#poolAlive()) {
          if (this.#schedulerActive()) pinnedFree(copy.ptr);
          return;
        }
        // Most recently returned last, so #trimSpares frees the oldest sizes first.
        const list = this.#spare.get(copy.size) ?? [];
        this.#spare.delete(copy.size);
        list.push(copy);
        this.#spare.set(copy.size, list);
        this.#spareBytes += copy.size;
        this.#trimSpares(0);
      },
      () => {/* the scheduler shut down; libsched freed the buffer */},
    );
  }

  /** Frees a buffer that nothing uses any more (its stream is idle). */
  free(copy: HostCopy): void {
    this.#inUseBytes -= copy.size;
    pinnedFree(copy.ptr);
  }

  /** Frees every spare and pending buffer; the pool's streams must be idle. */
  destroy(): void {
    for (const copies of this.#spare.values()) for (const copy of copies) pinnedFree(copy.ptr);
    this.#spare.clear();
    this.#spareBytes = 0;
    for (const copy of this.#pending) pinnedFree(copy.ptr);
    this.#pending.clear();
    this.#inUseBytes = 0;
  }

  /** Forgets every buffer (libsched freed them at shutdown). */
  clear(): void {
    this.#spare.clear();
    this.#spareBytes = 0;
    this.#pending.clear();
    this.#inUseBytes = 0;
  }
}
