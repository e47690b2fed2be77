/**
 * Virtual device memory under the pools: every block lives at a fixed
 * device address for its whole life, and only the physical memory under it
 * comes and goes (eviction, sleeping contexts). libsched's `sched_vmm_*`
 * calls do the mapping (their wrappers are in `src/native/vmm.ts`).
 *
 * Layout. The scheduler reserves large ranges of address space (an
 * {@link AddressSpace}) and hands granule-aligned pieces of them to pools.
 * A pool's {@link SlotAllocator} turns pieces into slots, one size class
 * each: a class that is a whole number of granules gets a piece of its own
 * (mapped in one call when committed); any smaller or unaligned class is
 * cut from slabs of whole granules, so small blocks share granules. libsched
 * counts, per granule, the committed blocks touching it and unmaps a granule
 * when the last one goes. A slab belongs to one pool, so a sleeping context
 * gives back every granule it used. Slots are never moved: a freed slot is
 * reused by the next block of its class in the same pool.
 *
 * @module
 */

import type { Stream } from "../stream.ts";
import { vmmGranularity, vmmReserve } from "../native/vmm.ts";
import { sizeClassOf } from "./size_classes.ts";

/** A block's fixed address range; committed or not. */
export interface Slot {
  readonly ptr: Deno.PointerObject;
  /** Bytes it can hold (a size class); what is committed may be less. */
  readonly size: number;
  /** Stream of its last use: a reuse on another stream is ordered after it. */
  stream: Stream | undefined;
}

function roundUp(bytes: number, unit: number): number {
  return Math.ceil(bytes / unit) * unit;
}

/** Address space of one device, reserved in large ranges and handed out in granule multiples. */
export class AddressSpace {
  /** The device's mapping granularity. */
  readonly granularity: number;
  readonly device: number;
  #arenaBytes: number;
  #arenas: { next: bigint; end: bigint }[] = [];
  #free = new Map<number, bigint[]>();

  constructor(device: number, memoryLimit: number) {
    this.device = device;
    this.granularity = vmmGranularity(device);
    // Twice the managed memory: address space is cheap, and size classes
    // keep freed pieces for their own class.
    this.#arenaBytes = roundUp(Math.max(2 * memoryLimit, 64 * 1024 * 1024), this.granularity);
  }

  /** A piece of `bytes` (a granule multiple), reserved but not committed. */
  take(bytes: number): bigint {
    const reused = this.#free.get(bytes)?.pop();
    if (reused !== undefined) return reused;
    const size = BigInt(bytes);
    let arena = this.#arenas.find((a) => a.end - a.next >= size);
    if (!arena) {
      const arenaBytes = Math.max(this.#arenaBytes, bytes);
      const base = vmmReserve(this.device, arenaBytes);
      arena = { next: base, end: base + BigInt(arenaBytes) };
      this.#arenas.push(arena);
    }
    const base = arena.next;
    arena.next += size;
    return base;
  }

  /** Takes back a piece from `take` (nothing in it committed). */
  give(base: bigint, bytes: number): void {
    const list = this.#free.get(bytes);
    if (list) list.push(base);
    else this.#free.set(bytes, [base]);
  }
}

/**
 * The address space of one device of `scheduler` (default: its device):
 * the one that device owns, `scheduler.deviceAt(device).addressSpace`,
 * reserved on first use. Each device has its own: a granule is never
 * shared by blocks of two devices.
 */
export function addressSpaceFor(
  scheduler: { deviceAt(device?: number): { readonly addressSpace: AddressSpace } },
  device?: number,
): AddressSpace {
  return scheduler.deviceAt(device).addressSpace;
}

/** One pool's slots, by size class; see the module notes for the layout. */
export class SlotAllocator {
  readonly space: AddressSpace;
  #free = new Map<number, Slot[]>();
  #pieces: { base: bigint; bytes: number }[] = [];

  constructor(space: AddressSpace) {
    this.space = space;
  }

  /**
   * An uncommitted slot that holds `bytes`. Slots are laid out by size
   * class, so pools that keep exact sizes still share slabs between
   * nearby sizes instead of making one per size.
   */
  take(bytes: number): Slot {
    const size = sizeClassOf(bytes);
    const reused = this.#free.get(size)?.pop();
    if (reused) return reused;
    const g = this.space.granularity;
    // Slots start 256-byte aligned, as cudaMalloc's pointers do.
    const stride = roundUp(size, 256);
    const piece = size % g === 0 ? size : roundUp(Math.max(g, 4 * stride), g);
    const base = this.space.take(piece);
    this.#pieces.push({ base, bytes: piece });
    const count = Math.floor(piece / stride);
    const list = this.#free.get(size) ?? [];
    // Highest address first, so pop() hands slots out in address order.
    for (let i = count - 1; i >= 1; i--) list.push(slotAt(base + BigInt(i * stride), size));
    this.#free.set(size, list);
    return slotAt(base, size);
  }

  /** Takes back a decommitted slot for reuse by its class. */
  give(slot: Slot): void {
    const list = this.#free.get(slot.size);
    if (list) list.push(slot);
    else this.#free.set(slot.size, [slot]);
  }

  /** Returns every piece to the address space; no slot may be committed. */
  destroy(): void {
    for (const piece of this.#pieces) this.space.give(piece.base, piece.bytes);
    this.#pieces = [];
    this.#free.clear();
  }
}

function slotAt(address: bigint, size: number): Slot {
  return { ptr: Deno.UnsafePointer.create(address)!, size, stream: undefined };
}
