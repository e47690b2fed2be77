/**
 * The device source: the bottom layer of a pool, where device memory comes
 * from. It hands out address ranges (slots of the pool's SlotAllocator, in
 * the device's AddressSpace) backed by physical memory through libsched's
 * virtual memory calls (`src/native/vmm.ts`: the only FFI under the pool).
 *
 * It knows nothing of limits, caches or blocks: it commits, decommits and
 * keeps addresses stable. Because a decommitted slot keeps its address, the
 * evictor can move a block's physical memory out and back while its
 * pointer stays the same. A refusal is a value (`undefined` / false): the
 * layers above react to it by making room.
 *
 * @module
 */

import type { Stream } from "../stream.ts";
import { ListNode } from "../engine/linked_list.ts";
import { type AddressSpace, type Slot, SlotAllocator } from "../engine/virtual_memory.ts";
import { vmmCommit, vmmDecommit, vmmReap } from "../native/vmm.ts";
import type { StreamOrder } from "./stream_order.ts";

/** Committed device memory: one address range of the source, moved between layers as is. */
export interface DeviceMemory {
  readonly ptr: Deno.PointerObject;
  /** Bytes committed: a size class, or the exact size asked for. */
  readonly size: number;
  /** Stream of its last use: a use on another stream waits for it. */
  stream: Stream;
  /** Its node in the cache's free list of its size (the cache's; allocated once with it). */
  readonly classNode: ListNode<DeviceMemory>;
  /** Its node in the cache's least-recently-freed order. */
  readonly cacheNode: ListNode<DeviceMemory>;
  /** Its fixed address range: kept while evicted, so `ptr` never changes. */
  readonly slot: Slot;
}

/**
 * Device memory of one pool on one device.
 *
 * @example
 * ```ts
 * import { initialize, shutdown } from "@gpusched/core";
 * import { addressSpaceFor } from "../engine/virtual_memory.ts";
 * import { DeviceSource } from "./device_source.ts";
 * import { StreamOrder } from "./stream_order.ts";
 * import assert from "node:assert/strict";
 * const sched = initialize({ backend: "host" });
 * const stream = sched.createStream();
 * const order = new StreamOrder(sched.createEvent(), stream);
 * const source = new DeviceSource(addressSpaceFor(sched), order, () => {});
 * const memory = source.allocate(4096, stream)!;
 * assert.equal(memory.size, 4096);
 * source.deallocate(memory, "free");
 * source.destroy();
 * shutdown();
 * ```
 */
export class DeviceSource {
  /** The device index. */
  readonly device: number;
  #slots: SlotAllocator;
  #order: StreamOrder;
  #beforeRetry: () => void;

  /**
   * A source in `space`. `beforeRetry` runs once when the device refuses a
   * commit, before the one retry: memory the accounts call free may still
   * be held by frees not yet done in stream order (the pool lets them land).
   * It must run no user code.
   */
  constructor(space: AddressSpace, order: StreamOrder, beforeRetry: () => void) {
    this.device = space.device;
    this.#slots = new SlotAllocator(space);
    this.#order = order;
    this.#beforeRetry = beforeRetry;
  }

  /** `bytes` of new device memory for use on `stream`; undefined when the device refused. */
  allocate(bytes: number, stream: Stream): DeviceMemory | undefined {
    const slot = this.#slots.take(bytes);
    let committed = false;
    try {
      committed = this.commit(slot, bytes, stream);
    } finally {
      if (!committed) this.#slots.give(slot);
    }
    if (!committed) return undefined;
    const memory: DeviceMemory = {
      ptr: slot.ptr,
      size: bytes,
      slot,
      stream,
      classNode: undefined as unknown as ListNode<DeviceMemory>,
      cacheNode: undefined as unknown as ListNode<DeviceMemory>,
    };
    return withNodes(memory);
  }

  /** Gives `memory` back to the device once its stream is done with it; its address range too. */
  deallocate(memory: DeviceMemory, doing: string): void {
    vmmDecommit(this.device, memory.ptr, memory.stream.nativeHandle(doing));
    memory.slot.stream = memory.stream;
    this.#slots.give(memory.slot);
  }

  /**
   * Backs `slot` with `bytes` of device memory for use on `stream`, ordered
   * after its last use; false when the device refused twice.
   */
  commit(slot: Slot, bytes: number, stream: Stream): boolean {
    if (!vmmCommit(this.device, slot.ptr, bytes)) {
      this.#beforeRetry();
      if (!vmmCommit(this.device, slot.ptr, bytes)) return false;
    }
    const last = slot.stream;
    if (last !== undefined && last !== stream && !last.destroyed) {
      // Its address was last used on another stream: work queued there may still touch it.
      this.#order.after(last, stream);
    }
    slot.stream = stream;
    this.#order.uses(stream);
    return true;
  }

  /** Releases `memory`'s physical memory once `stream` is done; its address stays reserved. */
  decommit(memory: DeviceMemory, stream: Stream, doing: string): void {
    vmmDecommit(this.device, memory.ptr, stream.nativeHandle(doing));
    memory.stream = stream;
    memory.slot.stream = stream;
  }

  /** Takes back the address range of decommitted memory. */
  unreserve(memory: DeviceMemory): void {
    this.#slots.give(memory.slot);
  }

  /**
   * Returns every address range to the device's space. Call it once the
   * pool's streams are idle, so the decommits queued on them have landed
   * before another pool may commit the same addresses, laid out differently.
   */
  destroy(): void {
    vmmReap(this.device);
    this.#slots.destroy();
  }
}

/** Gives new memory its two list nodes, made once for its whole life. */
function withNodes(memory: DeviceMemory): DeviceMemory {
  (memory as { classNode: ListNode<DeviceMemory> }).classNode = new ListNode(memory);
  (memory as { cacheNode: ListNode<DeviceMemory> }).cacheNode = new ListNode(memory);
  return memory;
}
