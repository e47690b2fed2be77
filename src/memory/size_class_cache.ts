/**
 * The size-class cache: device memory freed by blocks is kept, by size, for
 * the next block of that size, so the pool's hot path (allocate and free of
 * a size it has seen) never crosses FFI. Memory leaves the cache least
 * recently freed first, through `release`, which the pool wires to the
 * device source and the limit (cached bytes stay claimed until released).
 *
 * Reuse honours stream order: memory freed on one stream and taken for
 * another is ordered after the first stream's queued work (StreamOrder).
 *
 * @module
 */

import { LinkedList } from "../engine/linked_list.ts";
import type { Stream } from "../stream.ts";
import type { DeviceMemory } from "./device_source.ts";
import type { StreamOrder } from "./stream_order.ts";

/**
 * Freed device memory by size, oldest first.
 *
 * @example
 * ```ts
 * import { initialize, shutdown } from "@gpusched/core";
 * import { addressSpaceFor } from "../engine/virtual_memory.ts";
 * import { DeviceSource } from "./device_source.ts";
 * import { SizeClassCache } from "./size_class_cache.ts";
 * import { StreamOrder } from "./stream_order.ts";
 * import assert from "node:assert/strict";
 * const sched = initialize({ backend: "host" });
 * const stream = sched.createStream();
 * const order = new StreamOrder(sched.createEvent(), stream);
 * const source = new DeviceSource(addressSpaceFor(sched), order, () => {});
 * const cache = new SizeClassCache(order, (memory) => source.deallocate(memory, "release"));
 * cache.put(source.allocate(1024, stream)!);
 * assert.equal(cache.bytes, 1024);
 * const again = cache.take(1024, stream)!; // no native call
 * cache.put(again);
 * cache.releaseAll();
 * source.destroy();
 * shutdown();
 * ```
 */
export class SizeClassCache {
  #bySize = new Map<number, LinkedList<DeviceMemory>>();
  #oldestFirst = new LinkedList<DeviceMemory>();
  #bytes = 0;
  #order: StreamOrder;
  #release: (memory: DeviceMemory) => void;

  /** A cache whose memory leaves through `release` (it must give the memory back for good). */
  constructor(order: StreamOrder, release: (memory: DeviceMemory) => void) {
    this.#order = order;
    this.#release = release;
  }

  /** Bytes cached. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Cached allocations. */
  get count(): number {
    return this.#oldestFirst.size;
  }

  /** Cached memory of exactly `size` bytes for use on `stream`, if any. The hot path: no FFI. */
  take(size: number, stream: Stream): DeviceMemory | undefined {
    const cached = this.#bySize.get(size)?.pop();
    if (!cached) return undefined;
    this.#oldestFirst.remove(cached.cacheNode);
    this.#bytes -= size;
    if (cached.stream !== stream) {
      // Freed on another stream: work queued there may still use it.
      this.#order.after(cached.stream, stream);
      cached.stream = stream;
      this.#order.uses(stream);
    }
    return cached;
  }

  /** Keeps `memory` (its `stream` the stream of its last use) for the next request of its size. */
  put(memory: DeviceMemory): void {
    let list = this.#bySize.get(memory.size);
    if (!list) {
      list = new LinkedList();
      this.#bySize.set(memory.size, list);
    }
    list.push(memory.classNode);
    this.#oldestFirst.push(memory.cacheNode);
    this.#bytes += memory.size;
  }

  /** Releases the least recently cached memory; false when the cache is empty. */
  releaseOldest(): boolean {
    const memory = this.#oldestFirst.head?.value;
    if (!memory) return false;
    this.#oldestFirst.remove(memory.cacheNode);
    memory.classNode.list!.remove(memory.classNode);
    this.#bytes -= memory.size;
    this.#release(memory);
    return true;
  }

  /** Releases every cached byte. */
  releaseAll(): void {
    while (this.releaseOldest());
  }

  /** Forgets everything without releasing (libsched already freed it all at shutdown). */
  clear(): void {
    this.#bySize.clear();
    this.#oldestFirst = new LinkedList();
    this.#bytes = 0;
  }
}
