/**
 * Streams: ordered queues of device work (a CUDA stream, or a host worker).
 *
 * @module
 */

import { useDevice } from "./native/devices.ts";
import { EventRing } from "./event_ring.ts";
import { SchedulerError } from "./errors.ts";
import { destroyedError, type Owned, type Owner } from "./lifetime.ts";
import { drainCompletions, waitForCompletion } from "./native/completions.ts";
import { lib } from "./native/loader.ts";
import { Status } from "./native/status_codes.ts";
import { nativeError, unwrap } from "./native/unwrap.ts";
import { traceStreamWait, tracing } from "./trace/recorder.ts";
import { show } from "./validate.ts";

const handleOut = new Uint32Array(1);
const priorityOut = new Int32Array(1);
const pointerOut = new BigUint64Array(1);

function readNativeStream(native: number): Deno.PointerValue {
  unwrap(lib().sched_stream_native(native, pointerOut), "Cannot read the native stream");
  return Deno.UnsafePointer.create(pointerOut[0]!);
}

/**
 * `value` as a Stream, for functions that take one.
 *
 * @throws {TypeError} naming `argument` and the value when it is not a Stream
 */
export function requireStream(value: unknown, argument: string, doing: string): Stream {
  if (!Stream.isReal(value)) {
    throw new TypeError(`${doing}: ${argument} must be a Stream, got ${show(value)}`);
  }
  return value;
}

/**
 * A stream of device work. Work queued on it runs in order; work on
 * different streams may overlap.
 *
 * @example Waiting for a stream without blocking the event loop
 * ```ts
 * import { initialize, shutdown } from "@gpusched/core";
 * const sched = initialize({ backend: "host" });
 * const stream = sched.createStream();
 * await stream.synchronize();
 * console.assert(stream.query());
 * shutdown();
 * ```
 */
export class Stream implements Owned {
  /** Small integer, unique per scheduler. */
  readonly id: number;
  /** The priority it was created with (device range; lower is more urgent). */
  readonly priority: number;
  /** Id of the SM partition it runs in; undefined outside partitions. */
  readonly partition: string | undefined;
  /** Index of the device it runs on (`sched.devices[device]`). */
  readonly device: number;
  #handle: Deno.PointerValue;
  #native: number;
  #nativePartition: number;

  /**
   * @internal True for a real Stream, false for a look-alike (a Proxy of
   * one, an object made from the prototype) that `instanceof` accepts but
   * whose private state is missing: callers refuse it with a clear TypeError.
   */
  static isReal(value: unknown): value is Stream {
    return typeof value === "object" && value !== null && #native in value;
  }
  #owner: Owner;
  #ring: EventRing | undefined;

  /**
   * @internal Use `Scheduler.createStream()`.
   *
   * @param nativePartition the libsched partition to create it in (0: the whole device)
   * @param device the device to create it on (a checked index)
   */
  constructor(
    owner: Owner,
    id: number,
    priority: number,
    partition: string | undefined,
    nativePartition: number,
    device = 0,
  ) {
    owner.assertActive("create a stream");
    useDevice(device);
    unwrap(
      lib().sched_stream_create(priority, nativePartition, handleOut, priorityOut),
      "Cannot create a stream",
    );
    this.#native = handleOut[0]!;
    this.#nativePartition = nativePartition;
    this.priority = priorityOut[0]!;
    this.id = id;
    this.partition = partition;
    this.device = device;
    this.#owner = owner;
    this.#handle = readNativeStream(this.#native);
    owner.adopt(this);
  }

  /**
   * The native stream (`cudaStream_t` on CUDA) for the user's own kernels.
   *
   * Read it at each launch rather than keeping it: on CUDA it changes
   * whenever the SM partition layout changes (a partition with a compute
   * limit is created or deleted), because a CUDA stream cannot leave its
   * green context; the old value then only finishes work already queued.
   */
  get handle(): Deno.PointerValue {
    // After destroy() or shutdown() the pointer would dangle (CUDA may
    // reuse it for another stream): refuse, as `buf.ptr` does.
    this.nativeHandle("read a stream's handle");
    return this.#handle;
  }

  /** @internal The libsched partition it runs in (0: the whole device). */
  get nativePartition(): number {
    return this.#nativePartition;
  }

  /**
   * @internal Moves it to another libsched partition; work queued later
   * runs after work queued before. `handle` changes on CUDA.
   */
  rebind(nativePartition: number): void {
    const native = this.nativeHandle("move a stream to another partition");
    if (nativePartition === this.#nativePartition) return;
    unwrap(
      lib().sched_stream_rebind(native, nativePartition),
      `Cannot move stream ${this.id} to another partition`,
    );
    this.#nativePartition = nativePartition;
    this.#handle = readNativeStream(native);
  }

  /** @internal The libsched handle; throws when destroyed. */
  nativeHandle(doing: string): number {
    if (this.#native === 0) throw destroyedError(`stream ${this.id}`, doing);
    return this.#native;
  }

  /** @internal The recycled native events of `recordEvent` on this stream. */
  eventRing(doing: string): EventRing {
    this.nativeHandle(doing);
    return this.#ring ??= new EventRing(this.device);
  }

  /** @internal Native events its ring holds (for tests and the soak task). */
  get ringSize(): number {
    return this.#ring?.size ?? 0;
  }

  /** True once the stream was destroyed or its scheduler shut down. */
  get destroyed(): boolean {
    return this.#native === 0;
  }

  /**
   * True when all work queued so far is done.
   *
   * @throws {SchedulerError} when the stream was destroyed
   */
  query(): boolean {
    const status = lib().sched_stream_query(this.nativeHandle("query a stream"));
    if (status === Status.OK) return true;
    if (status === Status.NOT_READY) return false;
    throw nativeError(status, `Cannot query stream ${this.id}`);
  }

  /**
   * Resolves when all work queued so far is done. Never blocks the event
   * loop and holds no thread while waiting; an idle stream resolves at once.
   *
   * @throws {SchedulerError} (rejects) when the stream was destroyed
   */
  synchronize(): Promise<void> {
    try {
      if (this.query()) return Promise.resolve();
      const native = this.#native;
      const done = waitForCompletion(
        (token) => lib().sched_stream_notify(native, token),
        `Cannot wait for stream ${this.id}`,
      );
      return tracing.on ? traceStreamWait(this, done) : done;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Blocks the calling thread until all queued work is done. */
  synchronizeSync(): void {
    unwrap(
      lib().sched_stream_synchronize(this.nativeHandle("synchronize a stream")),
      `Cannot synchronize stream ${this.id}`,
    );
    drainCompletions();
  }

  /**
   * @internal What owns it (`context "llm"`, `pool "kv"`), when it is a
   * context's stream or the stream a pool made for itself: only that owner
   * may destroy it, since its buffers are freed in its order.
   */
  heldBy: string | undefined;

  /**
   * Destroys the stream; queued work still completes. Idempotent.
   *
   * @throws {SchedulerError} for a context's own stream (`getStream(ctx)`) or a pool's own
   * `pool.stream`: destroy the context or the pool instead
   */
  destroy(): void {
    if (this.#native === 0) return;
    if (this.heldBy !== undefined) {
      // Its owner frees buffers in this stream's order: without it, they could not be freed.
      throw new SchedulerError(
        `Cannot destroy stream ${this.id}: it is the stream of ${this.heldBy}, destroy that instead`,
      );
    }
    const native = this.#native;
    this.#native = 0;
    this.#owner.release(this);
    this.#ring?.destroy();
    unwrap(lib().sched_stream_destroy(native), `Cannot destroy stream ${this.id}`);
  }

  /** @internal Destroys a held stream on behalf of its holder (the `heldBy` it named). */
  destroyHeld(): void {
    this.heldBy = undefined;
    this.destroy();
  }

  /** Same as `destroy()`, for `using`. */
  [Symbol.dispose](): void {
    this.destroy();
  }

  /** @internal Called at scheduler shutdown. */
  invalidate(): void {
    this.#native = 0;
    this.#ring?.invalidate();
  }
}
