/**
 * Events: points in a stream that other streams, or the host, can wait for.
 *
 * @module
 */

import { useDevice } from "./device.ts";
import { destroyedError, type Owned, type Owner } from "./lifetime.ts";
import { drainCompletions, waitForCompletion } from "./native/completions.ts";
import { lib } from "./native/loader.ts";
import { Status } from "./native/status_codes.ts";
import { nativeError, unwrap } from "./native/unwrap.ts";
import type { Stream } from "./stream.ts";
import { traceEventWait, traceRecord, traceWait, tracing } from "./trace/recorder.ts";

const EVENT_TIMING = 1;
const handleOut = new Uint32Array(1);
const msOut = new Float32Array(1);

function createNativeEvent(timing: boolean, device: number): number {
  useDevice(device);
  unwrap(
    lib().sched_event_create(timing ? EVENT_TIMING : 0, handleOut),
    "Cannot create an event",
  );
  return handleOut[0]!;
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
export class GpuEvent implements Owned {
  /** Whether it records timestamps (for `elapsedMs`). */
  readonly timing: boolean;
  #native: number;
  #owner: Owner;
  #device: number;

  /** @internal Use `Scheduler.createEvent()`. */
  constructor(owner: Owner, timing: boolean, device = 0) {
    owner.assertActive("create an event");
    this.#native = createNativeEvent(timing, device);
    this.timing = timing;
    this.#owner = owner;
    this.#device = device;
    owner.adopt(this);
  }

  /** Index of the device it lives on now (it moves to the device of a stream it is recorded on). */
  get device(): number {
    return this.#device;
  }

  #handle(doing: string): number {
    if (this.#native === 0) throw destroyedError("the event", doing);
    return this.#native;
  }

  /** True once destroyed or its scheduler shut down. */
  get destroyed(): boolean {
    return this.#native === 0;
  }

  /**
   * Records the event at the current tail of `stream`. Waits on it may
   * come from any device.
   */
  record(stream: Stream): this {
    const native = stream.nativeHandle("record an event");
    this.#handle("record an event");
    if (stream.device !== this.#device) this.#moveTo(stream.device);
    const status = lib().sched_event_record(this.#native, native);
    unwrap(status, "Cannot record an event");
    if (tracing.on) traceRecord(this, stream);
    return this;
  }

  /** Makes `stream`'s later work wait for this event on the device; the host does not block. */
  wait(stream: Stream): void {
    const status = lib().sched_stream_wait_event(
      stream.nativeHandle("wait for an event"),
      this.#handle("wait for an event"),
    );
    unwrap(status, "Cannot make a stream wait for an event");
    if (tracing.on) traceWait(this, stream);
  }

  /** True when the latest record has completed (or none was made). */
  query(): boolean {
    const status = lib().sched_event_query(this.#handle("query an event"));
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
    unwrap(
      lib().sched_event_synchronize(this.#handle("synchronize an event")),
      "Cannot synchronize an event",
    );
    drainCompletions();
  }

  /**
   * Milliseconds from this event's completed record to `end`'s. Both must
   * be timing events.
   *
   * @returns undefined while either record is still pending
   */
  elapsedMs(end: GpuEvent): number | undefined {
    const status = lib().sched_event_elapsed_ms(
      this.#handle("measure elapsed time"),
      end.#handle("measure elapsed time"),
      msOut,
    );
    if (status === Status.NOT_READY) return undefined;
    unwrap(status, "Cannot measure elapsed time");
    return msOut[0]!;
  }

  /** Destroys the event; streams already waiting on it are unaffected. Idempotent. */
  destroy(): void {
    if (this.#native === 0) return;
    const native = this.#native;
    this.#native = 0;
    this.#owner.release(this);
    unwrap(lib().sched_event_destroy(native), "Cannot destroy an event");
  }

  /** Same as `destroy()`, for `using`. */
  [Symbol.dispose](): void {
    this.destroy();
  }

  /**
   * CUDA records an event only on a stream of its own device, so recording
   * on another device replaces the native event by one made there. Waits
   * already queued on the old one keep waiting on its last record, as
   * destroying an event allows; the new record is the latest from now on.
   */
  #moveTo(device: number): void {
    const fresh = createNativeEvent(this.timing, device);
    const old = this.#native;
    this.#native = fresh;
    this.#device = device;
    unwrap(lib().sched_event_destroy(old), "Cannot destroy an event");
  }

  /** @internal Called at scheduler shutdown. */
  invalidate(): void {
    this.#native = 0;
  }
}
