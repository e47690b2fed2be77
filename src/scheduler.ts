/**
 * Scheduler lifecycle: one initialized scheduler per process, bound to one
 * backend (CUDA or host) and device, owning every native object made
 * through it.
 *
 * @module
 */

import { type DeviceInfo, type MemoryInfo, readDeviceInfo, readMemoryInfo } from "./device.ts";
import { SchedulerError } from "./errors.ts";
import { GpuEvent } from "./event.ts";
import type { Owned, Owner } from "./lifetime.ts";
import { missingDriverReason } from "./native/cuda_driver.ts";
import { lib } from "./native/loader.ts";
import { BackendId, Status } from "./native/status_codes.ts";
import { lastError, unwrap } from "./native/unwrap.ts";
import { Stream } from "./stream.ts";
import { GB, MB } from "./units.ts";
import {
  requireBoolean,
  requireIntegerIn,
  requireNonEmptyString,
  requireNonNegativeInteger,
  requireOneOf,
  requireOptions,
  requirePositiveInteger,
  show,
} from "./validate.ts";

/** Which implementation of libsched runs the work. */
export type BackendName = "cuda" | "host";

/** Options of `initialize()`. */
export interface InitializeOptions {
  /** `"auto"` (default) picks CUDA when a device is usable, else `"host"`. */
  backend?: "auto" | BackendName;
  /** Device index (default 0). */
  deviceId?: number;
  /** Size of the host backend's simulated device in bytes (default 8 GiB). */
  hostMemory?: number;
  /**
   * Cap on the device memory the scheduler manages. Default: the device's
   * free memory at start, less a margin (CUDA: 2% of total, at least
   * 256 MiB, for the CUDA context and other processes; host: none).
   */
  memoryLimit?: number;
}

/** Options of `Scheduler.createStream()`. */
export interface StreamOptions {
  /** CUDA stream priority within `device.priorityRange` (default: least urgent). */
  priority?: number;
  /**
   * Id of a partition of the scheduler's `PartitionManager`: the stream's
   * kernels run on that partition's SMs (on the shared SMs when it has no
   * compute limit). Default: outside partitions, on the SMs no partition
   * reserved.
   */
  partition?: string;
}

/**
 * @internal What a `PartitionManager` tells its scheduler: where streams
 * run. The scheduler owns the streams; the manager owns the layout.
 */
export interface PartitionBinding {
  /**
   * The libsched partition (0: the whole device) that streams of
   * `partition` (undefined: outside partitions) run on now.
   *
   * @throws {RangeError} when no partition has that id
   */
  nativePartition(partition: string | undefined, doing: string, reservation?: object): number;
}

/** Options of `Scheduler.createEvent()`. */
export interface EventOptions {
  /** Record timestamps so `elapsedMs` works (default false; costs a little per record). */
  timing?: boolean;
}

const DEFAULT_HOST_MEMORY = 8 * GB;
const INIT = "Cannot initialize the scheduler";

let active: Scheduler | undefined;

/**
 * An initialized scheduler. Get one from `initialize()`.
 *
 * @example
 * ```ts
 * import { initialize, shutdown } from "@gpusched/core";
 * const sched = initialize({ backend: "host", hostMemory: 1024 ** 3 });
 * console.log(sched.backend, sched.device.name, sched.memoryLimit);
 * shutdown();
 * ```
 */
export class Scheduler implements Owner {
  /** The backend in use. */
  readonly backend: BackendName;
  /** The device it runs on. */
  readonly device: DeviceInfo;
  /** Bytes of device memory this scheduler manages. */
  readonly memoryLimit: number;
  #live = new Set<Owned>();
  #streams = new Set<Stream>();
  #partitions: PartitionBinding | undefined;
  /** Streams of contexts with a compute reservation, to their reservation. */
  #reservations = new WeakMap<Stream, object>();
  #nextStreamId = 1;
  #active = true;

  /** @internal Use `initialize()`. */
  constructor(backend: BackendName, device: DeviceInfo, memoryLimit: number) {
    this.backend = backend;
    this.device = device;
    this.memoryLimit = memoryLimit;
  }

  /** False once shut down. */
  get active(): boolean {
    return this.#active;
  }

  /** @internal */
  assertActive(doing: string): void {
    if (!this.#active) {
      throw new SchedulerError(`Cannot ${doing}: the scheduler was shut down`);
    }
  }

  /** @internal */
  adopt(object: Owned): void {
    this.#live.add(object);
  }

  /** @internal */
  release(object: Owned): void {
    this.#live.delete(object);
    if (object instanceof Stream) this.#streams.delete(object);
  }

  /**
   * @internal Lets a partition manager place streams; one at a time.
   *
   * @throws {SchedulerError} when another manager is bound
   */
  bindPartitions(binding: PartitionBinding, doing: string): void {
    if (this.#partitions !== undefined && this.#partitions !== binding) {
      throw new SchedulerError(
        `${doing}: the scheduler already has a PartitionManager, close() it first`,
      );
    }
    this.#partitions = binding;
  }

  /** @internal */
  unbindPartitions(binding: PartitionBinding): void {
    if (this.#partitions === binding) this.#partitions = undefined;
  }

  /** @internal Live streams, in creation order. */
  liveStreams(): IterableIterator<Stream> {
    return this.#streams.values();
  }

  /**
   * @internal Moves every live stream to where the partition binding now
   * says it runs (after a layout change). Order on each stream is kept.
   */
  rebindStreams(): void {
    for (const stream of this.#streams) {
      stream.rebind(
        this.#nativePartition(
          stream.partition,
          "move a stream to its partition",
          this.#reservations.get(stream),
        ),
      );
    }
  }

  #nativePartition(partition: string | undefined, doing: string, reservation?: object): number {
    if (this.#partitions) return this.#partitions.nativePartition(partition, doing, reservation);
    if (partition === undefined) return 0;
    throw new RangeError(
      `${doing}: partition must name a partition of the scheduler's PartitionManager, got ${
        show(partition)
      } (there is no PartitionManager)`,
    );
  }

  /** Free and total bytes of the device right now. */
  memoryInfo(): MemoryInfo {
    this.assertActive("read device memory");
    return readMemoryInfo();
  }

  /**
   * A new stream. Priorities outside the device range are clamped, as CUDA
   * does. With `partition`, its kernels run only on that partition's SMs
   * (see `PartitionManager`); without it, once any partition reserves SMs,
   * on the SMs no partition reserved.
   *
   * @example
   * ```ts
   * import { initialize, shutdown } from "@gpusched/core";
   * const sched = initialize({ backend: "host" });
   * using urgent = sched.createStream({ priority: sched.device.priorityRange.greatest });
   * console.assert(urgent.priority === -5);
   * shutdown();
   * ```
   *
   * @example In a partition
   * ```ts
   * import { initialize, PartitionLimits, PartitionManager, shutdown } from "@gpusched/core";
   * const sched = initialize({ backend: "host" });
   * const manager = new PartitionManager();
   * manager.createPartition("inference", "Inference", new PartitionLimits().compute(0.5));
   * const stream = sched.createStream({ partition: "inference" });
   * console.assert(stream.partition === "inference");
   * shutdown();
   * ```
   * @param reservation @internal a context's compute reservation: the stream runs on its SMs and the shared ones
   * @throws {RangeError} for a priority that is not an integer, or an unknown partition
   */
  createStream(options?: StreamOptions, reservation?: object): Stream {
    const doing = "Cannot create a stream";
    this.assertActive("create a stream");
    const opts = requireOptions<StreamOptions>(options, doing);
    const priority = opts.priority === undefined
      ? this.device.priorityRange.least
      : requireIntegerIn(opts.priority, -(2 ** 31), 2 ** 31 - 1, "priority", doing);
    const partition = opts.partition === undefined
      ? undefined
      : requireNonEmptyString(opts.partition, "partition", doing);
    const native = this.#nativePartition(partition, doing, reservation);
    const stream = new Stream(this, this.#nextStreamId++, priority, partition, native);
    this.#streams.add(stream);
    if (reservation !== undefined) this.#reservations.set(stream, reservation);
    return stream;
  }

  /**
   * A new event.
   *
   * @example
   * ```ts
   * import { initialize, shutdown } from "@gpusched/core";
   * const sched = initialize({ backend: "host" });
   * const s = sched.createStream();
   * const start = sched.createEvent({ timing: true }).record(s);
   * const end = sched.createEvent({ timing: true }).record(s);
   * await end.synchronize();
   * console.assert(start.elapsedMs(end)! >= 0);
   * shutdown();
   * ```
   */
  createEvent(options?: EventOptions): GpuEvent {
    const doing = "Cannot create an event";
    const opts = requireOptions<EventOptions>(options, doing);
    const timing = opts.timing === undefined ? false : requireBoolean(opts.timing, "timing", doing);
    return new GpuEvent(this, timing);
  }

  /** Shuts this scheduler down (see `shutdown()`). Idempotent. */
  shutdown(): void {
    if (!this.#active) return;
    this.#active = false;
    for (const object of this.#live) object.invalidate();
    this.#live.clear();
    this.#streams.clear();
    this.#partitions = undefined;
    if (active === this) active = undefined;
    unwrap(lib().sched_shutdown(), "Cannot shut down libsched");
  }

  /** Same as `shutdown()`, for `using`. */
  [Symbol.dispose](): void {
    this.shutdown();
  }
}

const countOut = new Int32Array(1);

/**
 * Why CUDA is not usable here, or undefined when it is (device `deviceId`
 * exists): "no CUDA driver (...)" when there is no driver at all, else
 * CUDA's own reason.
 *
 * @example Choosing a backend
 * ```ts
 * import { cudaUnavailableReason, initialize, shutdown } from "@gpusched/core";
 * const reason = cudaUnavailableReason();
 * const sched = initialize({ backend: reason === undefined ? "cuda" : "host" });
 * if (reason !== undefined) console.log(`running on the host backend: ${reason}`);
 * console.assert(sched.backend === (reason === undefined ? "cuda" : "host"));
 * shutdown();
 * ```
 */
export function cudaUnavailableReason(deviceId = 0): string | undefined {
  const status = lib().sched_device_count(BackendId.CUDA, countOut);
  if (status !== Status.OK) {
    const reason = lastError();
    return missingDriverReason() ?? reason;
  }
  if (countOut[0]! <= deviceId) {
    return `CUDA device ${deviceId} does not exist: ${countOut[0]} device(s) present`;
  }
  return undefined;
}

/**
 * Starts the scheduler. Synchronous. Throws when one is already running.
 *
 * @example Forcing the CPU backend
 * ```ts
 * import { GB, initialize, shutdown } from "@gpusched/core";
 * const sched = initialize({ backend: "host", hostMemory: 8 * GB });
 * console.assert(sched.backend === "host" && sched.device.totalMemory === 8 * GB);
 * shutdown();
 * ```
 * @throws {SchedulerError} when already initialized, or `backend: "cuda"` has no usable device
 * @throws {TypeError | RangeError} for bad options
 */
export function initialize(options?: InitializeOptions): Scheduler {
  const opts = requireOptions<InitializeOptions>(options, INIT);
  const backendChoice = opts.backend === undefined
    ? "auto"
    : requireOneOf(opts.backend, ["auto", "cuda", "host"] as const, "backend", INIT);
  const deviceId = opts.deviceId === undefined
    ? 0
    : requireNonNegativeInteger(opts.deviceId, "deviceId", INIT);
  const hostMemory = opts.hostMemory === undefined
    ? DEFAULT_HOST_MEMORY
    : requirePositiveInteger(opts.hostMemory, "hostMemory", INIT);
  const memoryLimit = opts.memoryLimit === undefined
    ? undefined
    : requirePositiveInteger(opts.memoryLimit, "memoryLimit", INIT);
  if (active) {
    throw new SchedulerError(`${INIT}: it is already initialized, call shutdown() first`);
  }

  let backend: BackendName;
  if (backendChoice === "host") {
    backend = "host";
  } else {
    const reason = cudaUnavailableReason(deviceId);
    if (reason === undefined) backend = "cuda";
    else if (backendChoice === "auto") backend = "host";
    else throw new SchedulerError(`${INIT}: no usable CUDA device: ${reason}`);
  }
  const status = lib().sched_init(
    backend === "cuda" ? BackendId.CUDA : BackendId.HOST,
    backend === "host" ? 0 : deviceId,
    BigInt(hostMemory),
  );
  if (status === Status.ALREADY_INITIALIZED) {
    throw new SchedulerError(
      `${INIT}: another thread of this process (a Worker) holds the scheduler and is still running: ${lastError()}`,
    );
  }
  unwrap(status, `${INIT} (${backend} backend)`);

  try {
    const device = readDeviceInfo(backend === "host" ? 0 : deviceId);
    const memory = readMemoryInfo();
    const margin = backend === "cuda" ? Math.max(256 * MB, Math.floor(memory.total * 0.02)) : 0;
    const available = Math.max(0, memory.free - margin);
    if (memoryLimit !== undefined && memoryLimit > memory.total) {
      throw new RangeError(
        `${INIT}: memoryLimit must not exceed the device's ${memory.total} bytes, got ${memoryLimit}`,
      );
    }
    active = new Scheduler(backend, device, memoryLimit ?? available);
    shutDownOnUnload();
    return active;
  } catch (error) {
    lib().sched_shutdown();
    throw error;
  }
}

let unloadHooked = false;

/**
 * A program that ends without shutdown() must not leave libsched's threads
 * running queued copies while the process tears down (that crashed).
 */
function shutDownOnUnload(): void {
  if (unloadHooked) return;
  unloadHooked = true;
  globalThis.addEventListener("unload", () => active?.shutdown());
}

/**
 * Destroys every stream, event and allocation of the initialized scheduler
 * and frees its device memory. `initialize()` may follow. Does nothing when
 * none is running.
 *
 * @example
 * ```ts
 * import { initialize, shutdown } from "@gpusched/core";
 * initialize({ backend: "host" });
 * shutdown();
 * initialize({ backend: "host" }); // allowed again
 * shutdown();
 * ```
 */
export function shutdown(): void {
  active?.shutdown();
}

/**
 * The initialized scheduler.
 *
 * @example
 * ```ts
 * import { getScheduler, initialize, shutdown } from "@gpusched/core";
 * import assert from "node:assert/strict";
 * const sched = initialize({ backend: "host" });
 * assert.equal(getScheduler(), sched);
 * shutdown();
 * assert.throws(() => getScheduler(), /not initialized/);
 * ```
 * @throws {SchedulerError} when `initialize()` has not been called
 */
export function getScheduler(): Scheduler {
  if (!active) {
    throw new SchedulerError("Scheduler is not initialized: call initialize() first");
  }
  return active;
}
