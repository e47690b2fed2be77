/**
 * The evictor: moves evictable blocks' bytes out to pinned host memory
 * under pressure and back before their next use. It keeps the resident
 * evictable, unpinned blocks in least-recently-used order (pins and
 * transfers take a block out of the order; `ptr` access moves it to the
 * end), copies a block out on its own stream and decommits its physical
 * memory through the device source while the block keeps its address, so
 * `ptr` is the same after a restore (the device source's VMM slots).
 *
 * Eviction returns the block's claim to the limit at once: the decommit is
 * stream-ordered after the copy, so nobody can use the bytes before the
 * copy is done. Restoring needs a claim again (RoomMaker.recommit) and then
 * copies back with `copyBack`, in the same stream order.
 *
 * @module
 */

import { LinkedList, ListNode } from "../engine/linked_list.ts";
import type { PoolBlock } from "../engine/pool_block.ts";
import { copyToDevice, copyToHost } from "../native/memory.ts";
import type { BlockRecord } from "./block_record.ts";
import type { DeviceSource } from "./device_source.ts";
import type { HostCopies } from "./host_copies.ts";
import type { PoolLimit } from "./pool_limit.ts";
import type { PoolStatistics } from "./pool_statistics.ts";
import type { StreamOrder } from "./stream_order.ts";

/** Reads a block's record (pool_block.ts's module-private accessor). */
export type RecordOf = (block: PoolBlock) => BlockRecord;

/**
 * Eviction and restore for one pool.
 *
 * @example
 * ```ts
 * import { initialize, MB, MemoryPool, shutdown } from "@gpusched/core";
 * import assert from "node:assert/strict";
 * initialize({ backend: "host" });
 * // The evictor works inside a pool: an evictable block makes room for another.
 * const pool = new MemoryPool({ quota: 8 * MB, enableEviction: true });
 * const old = pool.allocate(6 * MB, { evictable: true });
 * pool.allocate(4 * MB).free();
 * assert.equal(old.state, "evicted");
 * await old.resident(); // back at the same address, bit-exact
 * shutdown();
 * ```
 */
export class Evictor {
  #lru = new LinkedList<PoolBlock>();
  #evictableBytes = 0;
  #recordOf: RecordOf;
  #source: DeviceSource;
  #limit: PoolLimit;
  #copies: HostCopies;
  #stats: PoolStatistics;
  #order: StreamOrder;

  /** The evictor of the pool made of these layers. */
  constructor(
    recordOf: RecordOf,
    layers: {
      source: DeviceSource;
      limit: PoolLimit;
      copies: HostCopies;
      stats: PoolStatistics;
      order: StreamOrder;
    },
  ) {
    this.#recordOf = recordOf;
    this.#source = layers.source;
    this.#limit = layers.limit;
    this.#copies = layers.copies;
    this.#stats = layers.stats;
    this.#order = layers.order;
  }

  /** Device bytes eviction could free right now (resident, unpinned, evictable). */
  get evictableBytes(): number {
    return this.#evictableBytes;
  }

  /** The least recently used evictable block, if any. */
  get oldest(): PoolBlock | undefined {
    return this.#lru.head?.value;
  }

  /** Starts ordering a new resident evictable block (it is the most recent). */
  track(block: PoolBlock, record: BlockRecord): void {
    const node = new ListNode(block);
    record.lruNode = node;
    this.#lru.push(node);
    this.#evictableBytes += block.classSize;
  }

  /** Takes a block out of the order (freed, or evicted). */
  untrack(block: PoolBlock, record: BlockRecord): void {
    const node = record.lruNode;
    if (node?.list) {
      this.#lru.remove(node);
      this.#evictableBytes -= block.classSize;
    }
  }

  /** Marks a block the most recently used. */
  touch(record: BlockRecord): void {
    const node = record.lruNode;
    if (node?.list) this.#lru.touch(node);
  }

  /** A pin: the block leaves the order at its first pin. */
  pin(block: PoolBlock, record: BlockRecord): void {
    const node = record.lruNode;
    if (record.pins++ === 0 && node?.list) {
      this.#lru.remove(node);
      this.#evictableBytes -= block.classSize;
    }
  }

  /** An unpin: a resident evictable block joins the order again at its last unpin. */
  unpin(block: PoolBlock, record: BlockRecord): void {
    const node = record.lruNode;
    if (--record.pins === 0 && node && record.state === "resident") {
      this.#lru.push(node);
      this.#evictableBytes += block.classSize;
    }
  }

  /** Evicts blocks, least recently used first, until `bytes` were released; returns the bytes. */
  evictBytes(bytes: number): number {
    let released = 0;
    while (released < bytes && this.#lru.head) released += this.evict(this.#lru.head.value);
    return released;
  }

  /**
   * Copies a resident block out to pinned host memory on its stream and
   * releases its device memory (and its claim); returns the bytes released.
   *
   * @throws {VramBudgetExceededError} when the host refuses pinned memory (nothing moved)
   */
  evict(block: PoolBlock): number {
    const record = this.#recordOf(block);
    const memory = record.memory!;
    const host = this.#copies.take(block.classSize);
    const native = block.stream.nativeHandle("evict a block");
    if (memory.stream !== block.stream) this.#order.after(memory.stream, block.stream);
    copyToHost(host.ptr, memory.ptr, 0, block.size, native);
    // The address stays the block's: only the physical memory goes, once the copy is done.
    this.#source.decommit(memory, block.stream, "evict a block");
    this.#limit.release(block.classSize);
    this.untrack(block, record);
    record.hostCopy = host;
    record.state = "evicted";
    this.#stats.evicted(block.size, block.classSize, host.size);
    return block.classSize;
  }

  /**
   * Copies an evicted block back into its memory, committed again by
   * RoomMaker.recommit, on its stream; returns its pointer (the same as before).
   */
  copyBack(block: PoolBlock, record: BlockRecord): Deno.PointerObject {
    const memory = record.memory!;
    const host = record.hostCopy!;
    copyToDevice(memory.ptr, 0, host.ptr, block.size, block.stream.nativeHandle("restore a block"));
    record.hostCopy = undefined;
    record.state = "resident";
    this.#stats.restored(block.size, block.classSize, host.size);
    if (block.evictable && record.pins === 0) {
      this.#lru.push(record.lruNode!);
      this.#evictableBytes += block.classSize;
    }
    this.#copies.returnWhenDone(host, block.stream);
    return memory.ptr;
  }

  /** A freed evicted block: its address range and host copy go (the copy once its stream is done). */
  forget(block: PoolBlock, record: BlockRecord): void {
    const host = record.hostCopy!;
    this.#source.unreserve(record.memory!);
    record.hostCopy = undefined;
    this.#copies.returnWhenDone(host, block.stream);
  }

  /** Forgets the order (no live block is left). */
  clear(): void {
    this.#lru = new LinkedList();
    this.#evictableBytes = 0;
  }
}
