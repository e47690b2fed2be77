/**
 * A block of device memory handed out by a MemoryPool.
 *
 * @module
 */

import { SchedulerError } from "../errors.ts";
import { getScheduler } from "../scheduler.ts";
import type { Stream } from "../stream.ts";
import { copyDeviceToDevice } from "../native/memory.ts";
import { BlockRecord } from "../memory/block_record.ts";
import { requireNonNegativeInteger, requireOptions, show } from "../validate.ts";

/** Where a block's bytes are: on the device, or moved out to pinned host memory. */
export type BlockState = "resident" | "evicted";

/** Options of `copyFrom()`. */
export interface CopyFromOptions {
  /** Byte offset in the source buffer (default 0). */
  srcOffset?: number;
  /** Byte offset in this buffer, the destination (default 0). */
  offset?: number;
  /** Bytes to copy (default: `src.size - srcOffset`). */
  bytes?: number;
}

/** Options of `write` and `read`. */
export interface TransferOptions {
  /** Byte offset into the block (default 0). */
  offset?: number;
}

/**
 * What a block asks of its pool. Implemented privately by MemoryPool so a
 * block can reach exactly these operations and nothing else of it. A block
 * hands its own record along, so its pool needs no lookup.
 * @internal
 */
export interface BlockHost {
  readonly name: string;
  /** Marks the block most recently used. */
  touch(block: PoolBlock, record: BlockRecord): void;
  /** Makes an evicted block resident again (stream-ordered); returns its pointer. */
  ensureResident(block: PoolBlock, record: BlockRecord): Deno.PointerObject;
  /** Throws what `ensureResident` would for a pool that cannot be used now (destroyed, asleep). */
  assertUsable(block: PoolBlock): void;
  pin(block: PoolBlock, record: BlockRecord): void;
  unpin(block: PoolBlock, record: BlockRecord): void;
  /** Releases the block's memory; false when it was already released. */
  release(block: PoolBlock, record: BlockRecord): boolean;
  write(block: PoolBlock, ptr: Deno.PointerObject, offset: number, data: Uint8Array): Promise<void>;
  read(block: PoolBlock, ptr: Deno.PointerObject, offset: number, out: Uint8Array): Promise<void>;
}

let readRecord: (block: PoolBlock) => BlockRecord;

/**
 * @internal The pool-side record of `block`, for the memory layers only:
 * mod.ts does not export it, so it is not public API.
 *
 * @example
 * ```ts
 * import { initialize, MemoryPool, shutdown } from "@gpusched/core";
 * import { recordOf } from "./pool_block.ts";
 * import assert from "node:assert/strict";
 * initialize({ backend: "host" });
 * const block = new MemoryPool({ quota: 1 << 20 }).allocate(4096);
 * assert.equal(recordOf(block).state, "resident");
 * block.free();
 * assert.equal(recordOf(block).state, "freed");
 * shutdown();
 * ```
 */
export function recordOf(block: PoolBlock): BlockRecord {
  return readRecord(block);
}

/** A pin: while held, the block is never evicted. Release with `using` or `unpin()`. */
export interface BlockPin extends Disposable {
  /** Releases the pin. Idempotent. */
  unpin(): void;
}

function asBytes(data: unknown, doing: string, option: string): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) {
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  throw new TypeError(
    `${doing}: ${option} must be an ArrayBuffer or a typed array, got ${show(data)}`,
  );
}

/**
 * Device memory from a MemoryPool: `ptr` for your own kernels, async
 * `write`/`read` on its stream, `pin` to keep it resident, `free` to give
 * it back. Evictable blocks may be moved to host memory under pressure and
 * come back, bit-exact, on their next use.
 *
 * @example
 * ```ts
 * import { initialize, MemoryPool, shutdown } from "@gpusched/core";
 * import assert from "node:assert/strict";
 * initialize({ backend: "host" });
 * const pool = new MemoryPool({ quota: 1 << 20 });
 * const block = pool.allocate(16);
 * await block.write(new Uint8Array([1, 2, 3, 4]));
 * const back = new Uint8Array(4);
 * await block.read(back);
 * assert.ok(back[3] === 4);
 * block.free();
 * shutdown();
 * ```
 */
export class PoolBlock {
  /** Unique within its pool. */
  readonly id: number;
  /** Bytes asked for. */
  readonly size: number;
  /** Bytes of device memory it occupies (its size class). */
  readonly classSize: number;
  /** Whether the pool may move it to host memory under pressure. */
  readonly evictable: boolean;
  /** The stream its copies, eviction and restore are ordered on. */
  readonly stream: Stream;
  #host: BlockHost;
  /** The pool's side of the block, reached only by the memory layers (`recordOf`). */
  #record: BlockRecord;

  /**
   * @internal True for a real PoolBlock, false for a look-alike (a Proxy of
   * one, an object made from the prototype) that `instanceof` accepts but
   * whose private state is missing: callers refuse it with a clear TypeError.
   */
  static isReal(value: unknown): value is PoolBlock {
    return typeof value === "object" && value !== null && #record in value;
  }

  static {
    readRecord = (block) => block.#record;
  }

  /** @internal Use `MemoryPool.allocate()`. */
  constructor(
    host: BlockHost,
    id: number,
    size: number,
    classSize: number,
    evictable: boolean,
    stream: Stream,
  ) {
    this.#host = host;
    this.#record = new BlockRecord(host);
    this.id = id;
    this.size = size;
    this.classSize = classSize;
    this.evictable = evictable;
    this.stream = stream;
  }

  /** free() was called while only its own transfers held it: released when the last ends. */
  #freeWhenDone = false;

  // Each transfer (write, read, copyFrom either side) holds a pin while in flight; the record's
  // pins are those and `pin()`'s (userPins), so the transfers in flight are pins - userPins.
  #pinTransfer(): void {
    this.#host.pin(this, this.#record);
  }

  #unpinTransfer(): void {
    const record = this.#record;
    if (record.state === "freed") return;
    this.#host.unpin(this, record);
    if (this.#freeWhenDone && record.pins === 0) this.#host.release(this, record);
  }

  #assertLive(doing: string): void {
    if (this.#record.state === "freed" || this.#freeWhenDone) {
      throw new SchedulerError(
        `Cannot ${doing}: block ${this.id} of pool "${this.#host.name}" was freed`,
      );
    }
  }

  /** `"resident"` or `"evicted"`; throws once freed. */
  get state(): BlockState {
    this.#assertLive("read the state of a block");
    return this.#record.state as BlockState;
  }

  /** True once freed. */
  get freed(): boolean {
    return this.#record.state === "freed" || this.#freeWhenDone;
  }

  /**
   * The device pointer, for your own kernels on `stream`. Reading it makes
   * an evicted block resident again (queued on `stream`, so kernels queued
   * after it see the data) and marks it most recently used.
   */
  get ptr(): Deno.PointerObject {
    this.#assertLive("use a block's pointer");
    const ptr = this.#host.ensureResident(this, this.#record);
    this.#host.touch(this, this.#record);
    return ptr;
  }

  #range(doing: string, length: number, options: TransferOptions | undefined): number {
    const opts = requireOptions<TransferOptions>(options, doing);
    const offset = opts.offset === undefined
      ? 0
      : requireNonNegativeInteger(opts.offset, "offset", doing);
    if (offset + length > this.size) {
      throw new RangeError(
        `${doing}: offset ${offset} + ${length} bytes exceeds the block's ${this.size} bytes`,
      );
    }
    return offset;
  }

  /**
   * Copies `data` into the block on its stream; resolves when done. The
   * block stays pinned meanwhile.
   */
  async write(data: ArrayBufferView | ArrayBuffer, options?: TransferOptions): Promise<void> {
    const doing = `Cannot write to block ${this.id}`;
    this.#assertLive("write to a block");
    const bytes = asBytes(data, doing, "data");
    const offset = this.#range(doing, bytes.byteLength, options);
    if (bytes.byteLength === 0) return this.#host.assertUsable(this);
    this.#pinTransfer();
    try {
      await this.#host.write(this, this.ptr, offset, bytes);
    } finally {
      this.#unpinTransfer();
    }
  }

  /** Copies from the block into `out` on its stream; resolves when `out` holds the data. */
  async read(out: ArrayBufferView | ArrayBuffer, options?: TransferOptions): Promise<void> {
    const doing = `Cannot read from block ${this.id}`;
    this.#assertLive("read from a block");
    const bytes = asBytes(out, doing, "out");
    const offset = this.#range(doing, bytes.byteLength, options);
    if (bytes.byteLength === 0) return this.#host.assertUsable(this);
    this.#pinTransfer();
    try {
      await this.#host.read(this, this.ptr, offset, bytes);
    } finally {
      this.#unpinTransfer();
    }
  }

  /** Makes the block resident (if evicted) and resolves once its bytes are back on the device. */
  async resident(): Promise<void> {
    this.#assertLive("make a block resident");
    this.#host.ensureResident(this, this.#record);
    this.#host.touch(this, this.#record);
    await this.stream.synchronize();
  }

  /**
   * Keeps the block resident until the pin is released; makes it resident
   * first if it was evicted.
   *
   * @example
   * ```ts
   * import { initialize, MemoryPool, shutdown } from "@gpusched/core";
   * initialize({ backend: "host" });
   * const pool = new MemoryPool({ quota: 1 << 20, enableEviction: true });
   * const block = pool.allocate(4096, { evictable: true });
   * {
   *   using _pin = block.pin(); // never evicted inside this scope
   * }
   * shutdown();
   * ```
   */
  pin(): BlockPin {
    this.#assertLive("pin a block");
    this.#host.ensureResident(this, this.#record);
    this.#host.pin(this, this.#record);
    const record = this.#record;
    record.userPins++;
    let held = true;
    const host = this.#host;
    const unpin = () => {
      if (!held) return;
      held = false;
      record.userPins--;
      if (record.state !== "freed") host.unpin(this, record);
    };
    return { unpin, [Symbol.dispose]: unpin };
  }

  /**
   * Returns the block to its pool. Idempotent; throws while it is pinned by
   * `pin()`. With its own transfers (write, read, copyFrom) in flight it is
   * freed in their order, as a stream-ordered free: unusable at once, its
   * bytes given back when the last completes (so `using` never leaks it).
   */
  free(): void {
    const record = this.#record;
    if (record.state === "freed" || this.#freeWhenDone) return;
    if (record.pins > 0 && record.userPins === 0) { // only its own transfers hold it
      this.#freeWhenDone = true;
      return;
    }
    this.#host.release(this, record);
  }

  /**
   * Copies `bytes` from `src` (any device buffer or pool block, on this
   * device or another) into this buffer, device to device. The copy runs
   * on this buffer's stream after all work queued so far on both buffers'
   * streams, work queued later on either stream runs after it, and the
   * promise resolves when it is complete. Evicted buffers are restored
   * first; both stay pinned (not evictable) until then, and a `free()` of
   * either meanwhile takes effect when it completes.
   *
   * @example
   * ```ts
   * import { createContext, initialize, MB, shutdown } from "@gpusched/core";
   * import assert from "node:assert/strict";
   * initialize({ backend: "host", hostDevices: 2 });
   * const a = createContext("a", { maxVram: 64 * MB, device: 0 });
   * const b = createContext("b", { maxVram: 64 * MB, device: 1 });
   * const src = a.alloc(1024), dst = b.alloc(1024);
   * await src.write(new Uint8Array(1024).fill(7));
   * await dst.copyFrom(src, { srcOffset: 512, offset: 0, bytes: 512 });
   * const out = new Uint8Array(512);
   * await dst.read(out);
   * assert.ok(out.every((v) => v === 7));
   * shutdown();
   * ```
   * @throws {TypeError} when `src` is not a device buffer, or an option is not a number
   * @throws {RangeError} when a range lies outside either buffer, or overlaps within one buffer
   * @throws {SchedulerError} when either buffer was freed
   */
  async copyFrom(src: PoolBlock, options?: CopyFromOptions): Promise<void> {
    const doing = `Cannot copy into block ${this.id}`;
    this.#assertLive("copy into a block");
    if (!PoolBlock.isReal(src)) {
      throw new TypeError(
        `${doing}: src must be a device buffer (DeviceBuffer or PoolBlock), got ${show(src)}`,
      );
    }
    if (src.freed) throw new SchedulerError(`${doing}: the source, block ${src.id}, was freed`);
    const opts = requireOptions<CopyFromOptions>(options, doing);
    const srcOffset = opts.srcOffset === undefined
      ? 0
      : requireNonNegativeInteger(opts.srcOffset, "srcOffset", doing);
    const offset = opts.offset === undefined
      ? 0
      : requireNonNegativeInteger(opts.offset, "offset", doing);
    if (srcOffset > src.size) {
      throw new RangeError(
        `${doing}: srcOffset ${srcOffset} is past the end of the source's ${src.size} bytes`,
      );
    }
    const bytes = opts.bytes === undefined
      ? src.size - srcOffset
      : requireNonNegativeInteger(opts.bytes, "bytes", doing);
    if (srcOffset + bytes > src.size) {
      throw new RangeError(
        `${doing}: srcOffset ${srcOffset} + bytes ${bytes} exceeds the source's ${src.size} bytes`,
      );
    }
    if (offset + bytes > this.size) {
      throw new RangeError(
        `${doing}: offset ${offset} + bytes ${bytes} exceeds the destination's ${this.size} bytes`,
      );
    }
    if (src === this && bytes > 0 && srcOffset < offset + bytes && offset < srcOffset + bytes) {
      throw new RangeError(
        `${doing}: source [${srcOffset}, +${bytes}) and destination [${offset}, +${bytes}) overlap`,
      );
    }
    if (bytes === 0) {
      this.#host.assertUsable(this);
      return src.#host.assertUsable(src);
    }
    this.#pinTransfer();
    try {
      src.#pinTransfer();
      try {
        await this.#copy(src, srcOffset, offset, bytes);
      } finally {
        src.#unpinTransfer();
      }
    } finally {
      this.#unpinTransfer();
    }
  }

  async #copy(src: PoolBlock, srcOffset: number, offset: number, bytes: number): Promise<void> {
    const dstPtr = this.ptr; // restores an evicted buffer, in its stream's order
    const srcPtr = src.ptr;
    const crossStream = src.stream !== this.stream;
    const native = this.stream.nativeHandle("copy between device buffers");
    if (!crossStream) {
      // One stream orders everything: no events needed.
      copyDeviceToDevice(dstPtr, offset, srcPtr, srcOffset, bytes, native);
      await this.stream.synchronize();
      return;
    }
    const sched = getScheduler();
    {
      // After everything queued on the source's stream so far (a restore included).
      const queued = sched.createEvent({ device: src.stream.device }).record(src.stream);
      queued.wait(this.stream);
      queued.destroy();
    }
    copyDeviceToDevice(dstPtr, offset, srcPtr, srcOffset, bytes, native);
    const done = sched.createEvent({ device: this.stream.device }).record(this.stream);
    try {
      // Later work on the source's stream (a write into it) must not overtake the read.
      done.wait(src.stream);
      await done.synchronize();
    } finally {
      done.destroy();
    }
  }

  /** Same as `free()`, for `using`. */
  [Symbol.dispose](): void {
    this.free();
  }
}
