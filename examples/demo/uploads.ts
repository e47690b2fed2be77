/**
 * Uploading host arrays into new device buffers of the current session's
 * context.
 *
 * @module
 */
import { alloc, type DeviceBuffer } from "../../mod.ts";

/** A batch of uploads: `put` queues each copy at once, `done` waits for all of them. */
export class Uploads {
  #pending: Promise<void>[] = [];

  /**
   * Allocates a buffer in the current session (`alloc()`) and queues the
   * copy of `data` into it on the context's stream. `data` must not change
   * until `done()` resolved.
   */
  put(data: Float32Array | Uint32Array | Uint8Array): DeviceBuffer {
    const buf = alloc(Math.max(4, data.byteLength));
    this.#pending.push(buf.write(data));
    return buf;
  }

  /** Resolves when every queued copy is complete. */
  async done(): Promise<void> {
    const pending = this.#pending;
    this.#pending = [];
    await Promise.all(pending);
  }
}
