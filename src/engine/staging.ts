/**
 * Host <-> device transfers of JavaScript memory, staged through pinned
 * chunks.
 *
 * A CUDA copy from or to pageable memory (any JavaScript ArrayBuffer)
 * blocks the calling thread: device-to-host until the copy and everything
 * queued before it on the stream are done. Awaiting such a call would
 * still freeze the event loop. So transfers go through page-locked chunks,
 * and the only wait is an `await` on the stream position after the last
 * copy. A transfer takes as many chunks as it needs, so all its copies are
 * queued when the call returns, as API.md promises.
 *
 * @module
 */

import { SchedulerError } from "../errors.ts";
import type { Stream } from "../stream.ts";
import { copyToDevice, copyToHost, pinnedAlloc, pinnedFree } from "./native_memory.ts";

/** Bytes per staging chunk: large enough to run near copy-engine speed. */
export const CHUNK_BYTES = 4 * 1024 * 1024;
/** Free chunks kept for reuse; more are freed once their copies completed. */
const KEPT_CHUNKS = 16;

interface Chunk {
  readonly ptr: Deno.PointerObject;
  readonly view: Uint8Array;
}

/**
 * A free list of pinned chunks, one per scheduler (pinned allocation costs
 * milliseconds; sharing keeps every pool's first transfer fast).
 */
export class StagingArea {
  #free: Chunk[] = [];
  #held = 0;
  readonly #owner: { readonly active: boolean };

  /** `owner`'s shutdown frees every chunk (libsched frees all pinned memory). */
  constructor(owner: { readonly active: boolean }) {
    this.#owner = owner;
  }

  /** False once the owner shut down and the chunks were freed with it. */
  get alive(): boolean {
    return this.#owner.active;
  }

  /** A free chunk, allocating one when none is free. */
  acquire(): Chunk {
    const chunk = this.#free.pop();
    if (chunk) return chunk;
    const ptr = pinnedAlloc(CHUNK_BYTES);
    if (!ptr) {
      throw new RangeError(
        `Cannot stage a transfer: ${CHUNK_BYTES} bytes of pinned host memory refused`,
      );
    }
    this.#held++;
    return {
      ptr,
      view: new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(ptr, CHUNK_BYTES)),
    };
  }

  /** Returns a chunk whose copies have completed. */
  release(chunk: Chunk): void {
    if (this.#free.length < KEPT_CHUNKS) {
      this.#free.push(chunk);
    } else {
      pinnedFree(chunk.ptr);
      this.#held--;
    }
  }

  /** Pinned bytes held. */
  get bytes(): number {
    return this.#held * CHUNK_BYTES;
  }
}

const areas = new WeakMap<object, StagingArea>();

/** The staging area shared by everything of one scheduler. */
export function stagingFor(scheduler: { readonly active: boolean }): StagingArea {
  let area = areas.get(scheduler);
  if (!area) {
    area = new StagingArea(scheduler);
    areas.set(scheduler, area);
  }
  return area;
}

/**
 * Waits for the copies queued with `chunks` (even after a failure) and
 * gives the chunks back; rethrows the first failure.
 */
async function settle(
  area: StagingArea,
  stream: Stream,
  chunks: Chunk[],
  failure: unknown,
  onDone?: () => void,
): Promise<void> {
  try {
    if (chunks.length > 0) await stream.synchronize();
    // A shutdown meanwhile completed the copies, then freed the chunks:
    // reading them now would touch freed memory.
    if (!area.alive) {
      throw new SchedulerError(
        "Cannot finish the transfer: the scheduler was shut down while it was in flight",
      );
    }
    if (failure === undefined) onDone?.();
  } finally {
    if (area.alive) { for (const chunk of chunks) area.release(chunk); }
  }
  if (failure !== undefined) throw failure;
}

/**
 * Takes a chunk for each CHUNK_BYTES of `bytes` and queues its copy with
 * `copy`; stops at the first failure, keeping the chunks whose copies were
 * queued (they must not be reused before those copies complete).
 */
function queueChunks(
  area: StagingArea,
  bytes: number,
  copy: (chunk: Chunk, pos: number, n: number) => void,
): { chunks: Chunk[]; failure: unknown } {
  const chunks: Chunk[] = [];
  try {
    for (let pos = 0; pos < bytes; pos += CHUNK_BYTES) {
      const chunk = area.acquire();
      try {
        copy(chunk, pos, Math.min(CHUNK_BYTES, bytes - pos));
      } catch (error) {
        area.release(chunk);
        throw error;
      }
      chunks.push(chunk);
    }
    return { chunks, failure: undefined };
  } catch (failure) {
    return { chunks, failure };
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
  const { chunks, failure } = queueChunks(area, data.byteLength, (chunk, pos, n) => {
    chunk.view.set(data.subarray(pos, pos + n));
    copyToDevice(device, offset + pos, chunk.ptr, n, native);
  });
  return settle(area, stream, chunks, failure);
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
  const { chunks, failure } = queueChunks(area, out.byteLength, (chunk, pos, n) => {
    copyToHost(chunk.ptr, device, offset + pos, n, native);
  });
  return settle(area, stream, chunks, failure, () => {
    chunks.forEach((chunk, i) => {
      const pos = i * CHUNK_BYTES;
      out.set(chunk.view.subarray(0, Math.min(CHUNK_BYTES, out.byteLength - pos)), pos);
    });
  });
}
