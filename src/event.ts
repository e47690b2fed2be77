/**
 * Events: points in a stream that other streams, or the host, can wait for.
 *
 * Two kinds share this class. An event from `Scheduler.createEvent()` owns
 * its native event until `destroy()` (a FinalizationRegistry destroys it
 * if it is dropped without one). An event from `recordEvent(ctx)` borrows a
 * native event of its stream's ring (see event_ring.ts), which is reused
 * once the record completed, so events nobody references cost nothing.
 *
 * @module
 */

import { useDevice } from "./native/devices.ts";
import type { EventRing, RingSlot } from "./event_ring.ts";
import { destroyedError, type Liveness, type Owner } from "./lifetime.ts";
import { drainCompletions, waitForCompletion } from "./native/completions.ts";
import { lib } from "./native/loader.ts";
import { Status } from "./native/status_codes.ts";
import { nativeError, unwrap } from "./native/unwrap.ts";
import { requireStream, type Stream } from "./stream.ts";
import { traceEventWait, traceRecord, traceWait, tracing } from "./trace/recorder.ts";
import { show } from "./validate.ts";

const EVENT_TIMING = 1;
const handleOut = new Uint32Array(1);
const msOut = new Float32Array(1);

interface Abandoned {
  readonly native: number;
  /**
   * Its owner's liveness, not the owner: a dropped event must not keep a
   * shut-down scheduler alive, and a WeakRef would until the job ends.
   */
  readonly owner: Liveness;
}

/** Backstop for explicit events dropped without destroy(). */
const abandoned = new FinalizationRegistry<Abandoned>(({ native, owner }) => {
  // After a shutdown the handle is dead (and may name a new scheduler's event).
  if (owner.active) lib().sched_event_destroy(native);
});

function createNative(owner: Owner, timing: boolean, device: number): number {
  owner.assertActive("create an event");
  useDevice(device); // CUDA records an event only on streams of its own device
  unwrap(
    lib().sched_event_create(timing ? EVENT_TIMING : 0, handleOut),
    "Cannot create an event",
  );
  return handleOut[0]!;
}

/**
 * `value` as a GpuEvent, for functions that take one.
 *
 * @throws {TypeError} naming `argument` and the value when it is not a GpuEvent
 */
export function requireEvent(value: unknown, argument: string, doing: string): GpuEvent {
  if (!GpuEvent.isReal(value)) {
    throw new TypeError(`${doing}: ${argument} must be a GpuEvent, got ${show(value)}`);
  }
  return value;
}

/**
 * A completion point recorded on a stream.
 *
 * @example Ordering one stream after another
 * ```ts
 * import { initialize, shutdown } from "@gpusched/core";
 * import assert from "node:assert/strict";
 * const sched = initialize({ backend: "host" });
 * const producer = sched.createStream(), consumer = sched.createStream();
 * const ready = sched.createEvent();
 * ready.record(producer);
 * ready.wait(consumer);          // consumer's later work runs after producer's
 * await ready.synchronize();
 * assert.ok(ready.query());
 * shutdown();
 * ```
 */
export class GpuEvent {
  /** Whether it records timestamps (for `elapsedMs`). */
  readonly timing: boolean;
  #native: number; // 0: destroyed
  #owner: Owner;
  /** Set while it borrows a ring's native event. */
  #ring: EventRing | undefined;
  #slot: RingSlot | undefined;
  #generation = 0;
  #device: number;

  /**
   * @internal True for a real GpuEvent, false for a look-alike (a Proxy of
   * one, an object made from the prototype) that `instanceof` accepts but
   * whose private state is missing: callers refuse it with a clear TypeError.
   */
  static isReal(value: unknown): value is GpuEvent {
    return typeof value === "object" && value !== null && #native in value;
  }

  /** Index of the device it lives on now (recording it on another device's stream moves it there). */
  get device(): number {
    return this.#device;
  }

  /**
   * @internal Use `Scheduler.createEvent()` (or `recordEvent(ctx)`, which
   * passes `borrowed`: a ring's native event, already recorded).
   */
  constructor(
    owner: Owner,
    timing: boolean,
    borrowed?: { ring: EventRing; slot: RingSlot },
    device = 0,
  ) {
    this.#owner = owner;
    this.#device = device;
    if (borrowed) {
      this.timing = false;
      this.#native = borrowed.slot.native;
      this.#ring = borrowed.ring;
      this.#slot = borrowed.slot;
      this.#generation = borrowed.slot.generation;
      return;
    }
    this.#native = createNative(owner, timing, device);
    this.timing = timing;
    abandoned.register(this, { native: this.#native, owner: owner.liveness }, this);
  }

  /**
   * @internal An event recorded now on `stream` with a native event of its
   * ring (what `recordEvent(ctx)` returns).
   */
  static recordOn(owner: Owner, stream: Stream, doing: string): GpuEvent {
    owner.assertActive(doing);
    const native = stream.nativeHandle(doing);
    const ring = stream.eventRing(doing);
    const event = new GpuEvent(owner, false, { ring, slot: ring.record(native) }, stream.device);
    if (tracing.on) traceRecord(event, stream);
    return event;
  }

  /**
   * The native event to use, or 0 when its record is known complete (its
   * ring reused the native event since).
   */
  #current(doing: string): number {
    if (this.#native === 0 || !this.#owner.active) throw destroyedError("the event", doing);
    if (this.#ring !== undefined) {
      if (!this.#ring.alive) throw destroyedError("the event", doing);
      if (this.#slot!.generation !== this.#generation) return 0;
    }
    return this.#native;
  }

  /** True once destroyed, its context destroyed or its scheduler shut down. */
  get destroyed(): boolean {
    return this.#native === 0 || !this.#owner.active ||
      (this.#ring !== undefined && !this.#ring.alive);
  }

  /**
   * Records the event at the current tail of `stream`.
   *
   * @throws {TypeError} when `stream` is not a Stream
   */
  record(stream: Stream): this {
    const doing = "Cannot record an event";
    requireStream(stream, "stream", doing);
    this.#current("record an event");
    const target = stream.nativeHandle("record an event");
    if (this.#ring !== undefined) {
      // Its native event belongs to a ring whose order a record elsewhere
      // would break: from now on the event owns a native event of its own.
      const native = createNative(this.#owner, false, stream.device);
      this.#ring = undefined;
      this.#slot = undefined;
      this.#native = native;
      this.#device = stream.device;
      abandoned.register(this, { native, owner: this.#owner.liveness }, this);
    } else if (stream.device !== this.#device) {
      // Another device's stream: a native event of that device replaces this
      // one. Waits already queued on the old one keep waiting on its last
      // record, as destroying an event allows.
      const native = createNative(this.#owner, this.timing, stream.device);
      const old = this.#native;
      abandoned.unregister(this);
      this.#native = native;
      this.#device = stream.device;
      abandoned.register(this, { native, owner: this.#owner.liveness }, this);
      unwrap(lib().sched_event_destroy(old), "Cannot destroy an event");
    }
    unwrap(lib().sched_event_record(this.#native, target), doing);
    if (tracing.on) traceRecord(this, stream);
    return this;
  }

  /**
   * Makes `stream`'s later work wait for this event on the device; the host
   * does not block.
   *
   * @throws {TypeError} when `stream` is not a Stream
   */
  wait(stream: Stream): void {
    requireStream(stream, "stream", "Cannot make a stream wait for an event");
    const target = stream.nativeHandle("wait for an event");
    const native = this.#current("wait for an event");
    if (native !== 0) {
      unwrap(
        lib().sched_stream_wait_event(target, native),
        "Cannot make a stream wait for an event",
      );
    } // else already complete: nothing to wait for
    if (tracing.on) traceWait(this, stream);
  }

  /** True when the latest record has completed (or none was made). */
  query(): boolean {
    const native = this.#current("query an event");
    if (native === 0) return true;
    const status = lib().sched_event_query(native);
    if (status === Status.OK) return true;
    if (status === Status.NOT_READY) return false;
    throw nativeError(status, "Cannot query an event");
  }

  /** Resolves when the latest record completes; never blocks the event loop. */
  synchronize(): Promise<void> {
    try {
      if (this.query()) return Promise.resolve();
      const native = this.#native;
      const done = waitForCompletion(
        (token) => lib().sched_event_notify(native, token),
        "Cannot wait for an event",
      );
      return tracing.on ? traceEventWait(this, done) : done;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Blocks the calling thread until the latest record completes. */
  synchronizeSync(): void {
    const native = this.#current("synchronize an event");
    if (native === 0) return;
    unwrap(lib().sched_event_synchronize(native), "Cannot synchronize an event");
    drainCompletions();
  }

  /**
   * Milliseconds from this event's completed record to `end`'s. Both must
   * be timing events.
   *
   * @returns undefined while either record is still pending
   * @throws {TypeError} when `end` is not a GpuEvent
   * @throws {RangeError} when either event was created without `{ timing: true }`
   */
  elapsedMs(end: GpuEvent): number | undefined {
    requireEvent(end, "end", "Cannot measure elapsed time");
    this.#current("measure elapsed time");
    end.#current("measure elapsed time");
    // A wrong kind of event is an argument mistake, caught here rather than as a NativeError.
    for (const [event, which] of [[this, "this event"], [end, "end"]] as const) {
      if (!event.timing) {
        throw new RangeError(
          `Cannot measure elapsed time: ${which} must be created with { timing: true } ` +
            `(SCHED_EVENT_TIMING), got one without`,
        );
      }
    }
    const status = lib().sched_event_elapsed_ms(this.#native, end.#native, msOut);
    if (status === Status.NOT_READY) return undefined;
    unwrap(status, "Cannot measure elapsed time");
    return msOut[0]!;
  }

  /** Destroys the event; streams already waiting on it are unaffected. Idempotent. */
  destroy(): void {
    if (this.#native === 0) return;
    const native = this.#native;
    this.#native = 0;
    if (this.#ring !== undefined) return; // the ring owns the native event
    abandoned.unregister(this);
    if (!this.#owner.active) return; // shutdown destroyed it
    unwrap(lib().sched_event_destroy(native), "Cannot destroy an event");
  }

  /** Same as `destroy()`, for `using`. */
  [Symbol.dispose](): void {
    this.destroy();
  }

  /** @internal Called at scheduler shutdown. */
  invalidate(): void {
    this.#native = 0;
  }
}
