/**
 * Recycled native events for `recordEvent(ctx)`, one ring per stream.
 *
 * The README's idiom `waitEvent(tts, recordEvent(llm))` runs once per
 * token for days; a native event per call would fill libsched's handle
 * table (about a million) and hold device resources for events nobody
 * references. So the events recorded on one stream come from a FIFO of
 * native events in record order. Records on one stream complete in order,
 * so when the oldest native event's record has completed it is reused (one
 * cheap query): re-recorded at the tail, its generation bumped. A native
 * event whose record is still pending is never reused (re-recording it
 * would move a later wait past other work, which can deadlock); a new one
 * is made instead. The ring thus holds about as many native events as
 * there are records in flight on the stream, and stays flat when the
 * stream keeps up.
 *
 * A `GpuEvent` keeps (slot, generation). Once the slot's generation has
 * moved on, the event's record is known to be complete: `query()` is true,
 * `synchronize()` resolves, and waiting on it is a no-op. Waits and
 * notifications already queued captured the record when they were queued,
 * on CUDA and on the host backend alike, so reuse never changes them.
 *
 * @module
 */

import { useDevice } from "./native/devices.ts";
import { lib } from "./native/loader.ts";
import { Status } from "./native/status_codes.ts";
import { unwrap } from "./native/unwrap.ts";

/** One native event of a ring; `generation` counts its records. */
export interface RingSlot {
  readonly native: number;
  generation: number;
}

const handleOut = new Uint32Array(1);
/** Compact the FIFO's array once this many slots were taken from its front. */
const COMPACT_AFTER = 1024;

/** The recycled native events of one stream. */
export class EventRing {
  #slots: RingSlot[] = [];
  #head = 0;
  #alive = true;
  /** The device of its stream: its native events are made there (CUDA records only on their own device). */
  readonly #device: number;

  constructor(device = 0) {
    this.#device = device;
  }

  /** False once its stream was destroyed or its scheduler shut down. */
  get alive(): boolean {
    return this.#alive;
  }

  /** Native events it holds (for tests and the soak task). */
  get size(): number {
    return this.#slots.length - this.#head;
  }

  /**
   * Records a native event at the tail of `stream` (a libsched stream
   * handle): the oldest one when its record has completed, else a new one.
   *
   * @throws {NativeError} when libsched cannot make or record the event
   */
  record(stream: number): RingSlot {
    const symbols = lib();
    let slot = this.#slots[this.#head];
    if (slot !== undefined && symbols.sched_event_query(slot.native) === Status.OK) {
      this.#head++;
      if (this.#head >= COMPACT_AFTER && this.#head * 2 >= this.#slots.length) {
        this.#slots = this.#slots.slice(this.#head);
        this.#head = 0;
      }
    } else {
      useDevice(this.#device);
      unwrap(symbols.sched_event_create(0, handleOut), "Cannot create an event");
      slot = { native: handleOut[0]!, generation: 0 };
    }
    // Bumped even when the record below fails: the previous holder's record
    // completed, and that is all it may still ask about.
    slot.generation++;
    this.#slots.push(slot);
    unwrap(symbols.sched_event_record(slot.native, stream), "Cannot record an event");
    return slot;
  }

  /** Destroys every native event (its stream is being destroyed). */
  destroy(): void {
    if (!this.#alive) return;
    this.#alive = false;
    const symbols = lib();
    for (let i = this.#head; i < this.#slots.length; i++) {
      symbols.sched_event_destroy(this.#slots[i]!.native);
    }
    this.#slots = [];
    this.#head = 0;
  }

  /** The scheduler shut down: libsched already destroyed the native events. */
  invalidate(): void {
    this.#alive = false;
    this.#slots = [];
    this.#head = 0;
  }
}
