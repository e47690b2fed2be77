/**
 * Host <-> device transfers of JavaScript memory, staged through pinned
 * memory.
 *
 * A CUDA copy from or to pageable memory (any JavaScript ArrayBuffer)
 * blocks the calling thread: device-to-host until the copy and everything
 * queued before it on the stream are done. Awaiting such a call would
 * still freeze the event loop. So transfers go through page-locked chunks,
 * and the only wait is an `await` on the stream position after the last
 * copy. All of a transfer's copies are queued when the call returns, as
 * API.md promises.
 *
 * Staging is proportional to the bytes in flight, with a cap:
 * - each copy takes a lease of exactly its bytes from the open chunk (a
 *   bump allocator), so a thousand pending 256-byte writes share one chunk
 *   instead of holding a chunk each; a chunk is reused once every lease on
 *   it was returned (its copies completed);
 * - the chunks held never exceed the area's cap (STAGING_CAP_BYTES). A
 *   transfer that needs more waits, synchronously, for the oldest transfer
 *   in flight to complete and takes its chunks, so its own copies are still
 *   queued when the call returns. Only transfers past the cap ever wait.
 *
 * @module
 */

import { SchedulerError } from "../errors.ts";
import type { Stream } from "../stream.ts";
import {
  copyToDevice,
  copyToHost,
  pinnedAlloc,
  pinnedFree,
  pinnedRefused,
} from "../native/memory.ts";

/** Bytes per staging chunk: large enough to run near copy-engine speed. */
export const CHUNK_BYTES = 4 * 1024 * 1024;
/** Pinned bytes the transfers of one device may hold at once. */
export const STAGING_CAP_BYTES = 256 * 1024 * 1024;
/** Free chunks kept for reuse; more are freed once their copies completed. */
const KEPT_CHUNKS = 16;

interface Chunk {
  readonly ptr: Deno.PointerObject;
  readonly view: Uint8Array;
  /** Bytes handed out from the start (bump allocation). */
  used: number;
  /** Leases not yet returned. */
  leases: number;
}

/** `n` bytes at `offset` of a chunk, for the transfer's bytes at `pos`. */
interface Lease {
  readonly chunk: Chunk;
  readonly offset: number;
  readonly n: number;
  readonly pos: number;
}

/** A transfer whose copies are queued; `out` for reads. */
interface InFlight {
  readonly stream: Stream;
  readonly out: Uint8Array | undefined;
  leases: Lease[];
}

/**
 * The pinned staging memory of one device of a scheduler (`Device.staging`:
 * pinned allocation costs milliseconds; sharing keeps every pool's first
 * transfer fast). Pinned memory is portable, but each device has its own
 * area, so one device's transfers never wait for another's to free chunks.
 */
export class StagingArea {
  #free: Chunk[] = [];
  #open: Chunk | undefined;
  #held = 0;
  #inFlight: InFlight[] = [];
  readonly #owner: { readonly active: boolean };
  readonly #cap: number;

  /**
   * `owner`'s shutdown frees every chunk (libsched frees all pinned memory).
   *
   * @param cap pinned bytes it may hold (at least one chunk)
   */
  constructor(owner: { readonly active: boolean }, cap = STAGING_CAP_BYTES) {
    this.#owner = owner;
    this.#cap = Math.max(CHUNK_BYTES, cap);
  }

  /** False once the owner shut down and the chunks were freed with it. */
  get alive(): boolean {
    return this.#owner.active;
  }

  /** Pinned bytes held. */
  get bytes(): number {
    return this.#held * CHUNK_BYTES;
  }

  /** Transfers whose copies are queued and not yet complete (for tests). */
  get inFlight(): number {
    return this.#inFlight.length;
  }

  /** @internal Starts a transfer on `stream`. */
  begin(stream: Stream, out: Uint8Array | undefined): InFlight {
    const transfer: InFlight = { stream, out, leases: [] };
    this.#inFlight.push(transfer);
    return transfer;
  }

  /** @internal `n` bytes (at most CHUNK_BYTES) of pinned memory for `transfer`. */
  lease(transfer: InFlight, n: number, pos: number): Lease {
    let chunk = this.#open;
    if (chunk === undefined || chunk.used + n > CHUNK_BYTES) {
      const replaced = chunk;
      chunk = this.#takeChunk();
      // Taking a chunk may have completed the transfers on the open one.
      if (replaced !== undefined && replaced.used === 0 && replaced !== chunk) {
        this.#open = undefined;
        this.#shelve(replaced);
      }
      if (chunk.used + n > CHUNK_BYTES) throw new Error("staging: a fresh chunk is not empty");
      this.#open = chunk;
    }
    const lease = { chunk, offset: chunk.used, n, pos };
    chunk.used += n;
    chunk.leases++;
    transfer.leases.push(lease);
    return lease;
  }

  /** @internal Gives back a lease whose copy was never queued. */
  unlease(transfer: InFlight, lease: Lease): void {
    transfer.leases.splice(transfer.leases.indexOf(lease), 1);
    this.#giveBack(lease.chunk);
  }

  /**
   * @internal The transfer's copies completed: hands a read its bytes and
   * returns its leases.
   */
  finish(transfer: InFlight, deliver: boolean): void {
    this.#complete(transfer, deliver);
    const i = this.#inFlight.indexOf(transfer);
    if (i >= 0) this.#inFlight.splice(i, 1);
  }

  #takeChunk(): Chunk {
    for (;;) {
      const free = this.#free.pop();
      if (free) return free;
      if ((this.#held + 1) * CHUNK_BYTES <= this.#cap) return this.#newChunk();
      // At the cap: complete the oldest transfer now and take its chunks.
      // It stays listed (empty) until its own settle() runs.
      const oldest = this.#inFlight.find((t) => t.leases.length > 0);
      if (oldest === undefined || oldest.stream.destroyed) return this.#newChunk();
      oldest.stream.synchronizeSync();
      this.#complete(oldest, true);
    }
  }

  #complete(transfer: InFlight, deliver: boolean): void {
    for (const lease of transfer.leases) {
      if (deliver && transfer.out) {
        transfer.out.set(
          lease.chunk.view.subarray(lease.offset, lease.offset + lease.n),
          lease.pos,
        );
      }
      this.#giveBack(lease.chunk);
    }
    transfer.leases = [];
  }

  #newChunk(): Chunk {
    const ptr = pinnedAlloc(CHUNK_BYTES);
    if (!ptr) throw pinnedRefused(CHUNK_BYTES, "Cannot stage a transfer");
    this.#held++;
    return {
      ptr,
      view: new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(ptr, CHUNK_BYTES)),
      used: 0,
      leases: 0,
    };
  }

  #giveBack(chunk: Chunk): void {
    if (--chunk.leases > 0) return;
    chunk.used = 0;
    if (chunk === this.#open) return; // stays open, empty again
    this.#shelve(chunk);
  }

  /** Keeps an empty chunk for reuse, or frees it when enough are kept. */
  #shelve(chunk: Chunk): void {
    if (this.#free.length < KEPT_CHUNKS) {
      this.#free.push(chunk);
    } else {
      pinnedFree(chunk.ptr);
      this.#held--;
    }
  }
}

/**
 * The staging area of one device of `scheduler` (default: its device): the
 * one that device owns, `scheduler.deviceAt(device).staging`.
 */
export function stagingFor(
  scheduler: { deviceAt(device?: number): { readonly staging: StagingArea } },
  device?: number,
): StagingArea {
  return scheduler.deviceAt(device).staging;
}

/** Waits for the transfer's copies, even after a failure, then settles it. */
async function settle(
  area: StagingArea,
  transfer: InFlight,
  failure: unknown,
): Promise<void> {
  try {
    if (transfer.leases.length > 0) await transfer.stream.synchronize();
    // A shutdown meanwhile completed the copies, then freed the chunks:
    // reading them now would touch freed memory.
    if (!area.alive) {
      throw new SchedulerError(
        "Cannot finish the transfer: the scheduler was shut down while it was in flight",
      );
    }
    area.finish(transfer, failure === undefined);
  } catch (error) {
    if (area.alive) area.finish(transfer, false);
    throw error;
  }
  if (failure !== undefined) throw failure;
}

/**
 * Leases staging for each piece of `bytes` and queues its copy with
 * `copy`; stops at the first failure, keeping the leases whose copies were
 * queued (they must not be reused before those copies complete).
 */
function queuePieces(
  area: StagingArea,
  transfer: InFlight,
  bytes: number,
  copy: (lease: Lease) => void,
): unknown {
  try {
    for (let pos = 0; pos < bytes; pos += CHUNK_BYTES) {
      const lease = area.lease(transfer, Math.min(CHUNK_BYTES, bytes - pos), pos);
      try {
        copy(lease);
      } catch (error) {
        area.unlease(transfer, lease);
        throw error;
      }
    }
    return undefined;
  } catch (failure) {
    return failure;
  }
}

/**
 * Copies `data` to `device + offset` on `stream`. Every copy is queued
 * before this returns (so work queued on the stream afterwards sees the
 * data); the promise resolves when they are complete. `native` is the
 * stream's libsched handle.
 */
export function stagedWrite(
  area: StagingArea,
  stream: Stream,
  native: number,
  device: Deno.PointerObject,
  offset: number,
  data: Uint8Array,
): Promise<void> {
  const transfer = area.begin(stream, undefined);
  const failure = queuePieces(area, transfer, data.byteLength, (lease) => {
    lease.chunk.view.set(data.subarray(lease.pos, lease.pos + lease.n), lease.offset);
    copyToDevice(device, offset + lease.pos, lease.chunk.ptr, lease.n, native, lease.offset);
  });
  return settle(area, transfer, failure);
}

/**
 * Copies `device + offset` into `out` on `stream`. Every copy is queued
 * before this returns; the promise resolves when `out` holds the data.
 */
export function stagedRead(
  area: StagingArea,
  stream: Stream,
  native: number,
  device: Deno.PointerObject,
  offset: number,
  out: Uint8Array,
): Promise<void> {
  const transfer = area.begin(stream, out);
  const failure = queuePieces(area, transfer, out.byteLength, (lease) => {
    copyToHost(lease.chunk.ptr, device, offset + lease.pos, lease.n, native, lease.offset);
  });
  return settle(area, transfer, failure);
}
