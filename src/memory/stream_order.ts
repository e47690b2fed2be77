/**
 * Stream order between uses of the same device memory: memory last used on
 * one stream and used next on another is ordered after the first stream's
 * queued work by an event, on the device, without the host waiting. Every
 * memory layer of a pool goes through one StreamOrder, so the rule is
 * written once (RMM's stream-ordered semantics) and the pool knows every
 * stream its memory was used on (to let their work finish before it frees
 * host buffers and address ranges).
 *
 * @module
 */

import type { GpuEvent } from "../event.ts";
import type { Stream } from "../stream.ts";

/**
 * The order keeper of one pool.
 *
 * @example
 * ```ts
 * import { initialize, shutdown } from "@gpusched/core";
 * import { StreamOrder } from "./stream_order.ts";
 * import assert from "node:assert/strict";
 * const sched = initialize({ backend: "host" });
 * const a = sched.createStream(), b = sched.createStream();
 * const order = new StreamOrder(sched.createEvent(), a);
 * order.after(a, b); // work queued on b next runs after what a holds now
 * order.uses(b);
 * order.synchronize(); // waits for a and b
 * assert.ok(a.query() && b.query());
 * order.destroy();
 * shutdown();
 * ```
 */
export class StreamOrder {
  #event: GpuEvent;
  #streams = new Set<Stream>();

  /** Orders through `event`; `first` is the pool's own stream. */
  constructor(event: GpuEvent, first: Stream) {
    this.#event = event;
    this.#streams.add(first);
  }

  /** Work queued next on `next` runs after all work queued so far on `last`. */
  after(last: Stream, next: Stream): void {
    this.#event.record(last);
    this.#event.wait(next);
  }

  /** Remembers that the pool's memory is used on `stream`. */
  uses(stream: Stream): void {
    this.#streams.add(stream);
  }

  /** Blocks until every stream the memory was used on (and not destroyed) is idle. */
  synchronize(): void {
    for (const stream of this.#streams) if (!stream.destroyed) stream.synchronizeSync();
  }

  /** Destroys the event. */
  destroy(): void {
    this.#event.destroy();
  }
}
