/**
 * Host <-> device transfers of JavaScript memory, staged through pinned
 * chunks.
 *
 * A CUDA copy from or to pageable memory (any JavaScript ArrayBuffer)
 * blocks the calling thread: device-to-host until the copy and everything
 * queued before it on the stream are done. Awaiting such a call would
 * still freeze the event loop. So transfers go through page-locked chunks:
 * the copy engine works on one chunk while JavaScript fills or drains the
 * other, and the only waits are `await`s on stream positions.
 *
 * @module
 */

import type { Stream } from "../stream.ts";
import { copyToDevice, copyToHost, pinnedAlloc, pinnedFree } from "./native_memory.ts";

/** Bytes per staging chunk: large enough to run near copy-engine speed. */
export const CHUNK_BYTES = 4 * 1024 * 1024;

interface Chunk {
  readonly ptr: Deno.PointerObject;
  readonly view: Uint8Array;
}

/** A free list of pinned chunks; grows to the number of transfers in flight. */
export class StagingArea {
  #free: Chunk[] = [];
  #all: Chunk[] = [];

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
    const fresh = {
      ptr,
      view: new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(ptr, CHUNK_BYTES)),
    };
    this.#all.push(fresh);
    return fresh;
  }

  /** Returns a chunk whose copies have completed. */
  release(chunk: Chunk): void {
    this.#free.push(chunk);
  }

  /** Frees every chunk (all transfers must have settled). */
  dispose(): void {
    for (const chunk of this.#all) pinnedFree(chunk.ptr);
    this.#all = [];
    this.#free = [];
  }

  /** Pinned bytes held. */
  get bytes(): number {
    return this.#all.length * CHUNK_BYTES;
  }
}

/**
 * Copies `data` to `device + offset` on `stream`; resolves when the copy is
 * complete. `native` is the stream's libsched handle.
 */
export async function stagedWrite(
  area: StagingArea,
  stream: Stream,
  native: number,
  device: Deno.PointerObject,
  offset: number,
  data: Uint8Array,
): Promise<void> {
  let previous: { chunk: Chunk; done: Promise<void> } | undefined;
  try {
    for (let pos = 0; pos < data.byteLength; pos += CHUNK_BYTES) {
      const n = Math.min(CHUNK_BYTES, data.byteLength - pos);
      const chunk = area.acquire();
      chunk.view.set(data.subarray(pos, pos + n));
      try {
        copyToDevice(device, offset + pos, chunk.ptr, n, native);
      } catch (error) {
        area.release(chunk);
        throw error;
      }
      // The position promise must be taken right after this chunk's copy,
      // before the next one is queued.
      const done = stream.synchronize();
      if (previous) {
        await previous.done;
        area.release(previous.chunk);
      }
      previous = { chunk, done };
    }
  } finally {
    if (previous) {
      await previous.done;
      area.release(previous.chunk);
    }
  }
}

/**
 * Copies `device + offset` into `out` on `stream`; resolves when `out`
 * holds the data.
 */
export async function stagedRead(
  area: StagingArea,
  stream: Stream,
  native: number,
  device: Deno.PointerObject,
  offset: number,
  out: Uint8Array,
): Promise<void> {
  let previous: { chunk: Chunk; done: Promise<void>; pos: number; n: number } | undefined;
  const drain = async (p: NonNullable<typeof previous>) => {
    try {
      await p.done;
      out.set(p.chunk.view.subarray(0, p.n), p.pos);
    } finally {
      area.release(p.chunk);
    }
  };
  try {
    for (let pos = 0; pos < out.byteLength; pos += CHUNK_BYTES) {
      const n = Math.min(CHUNK_BYTES, out.byteLength - pos);
      const chunk = area.acquire();
      try {
        copyToHost(chunk.ptr, device, offset + pos, n, native);
      } catch (error) {
        area.release(chunk);
        throw error;
      }
      const done = stream.synchronize();
      const waiting = previous;
      previous = { chunk, done, pos, n };
      if (waiting) await drain(waiting);
    }
  } finally {
    if (previous) await drain(previous);
  }
}
