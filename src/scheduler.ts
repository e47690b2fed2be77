/**
 * Scheduler lifecycle: one initialized scheduler per process, bound to one
 * backend (CUDA or host) and managing every device of it (CUDA: every
 * visible device; host: `hostDevices` simulated ones), owning every native
 * object made through it.
 *
 * @module
 */

import { ContextDirectory } from "./context/context_manager.ts";
import { Device } from "./device.ts";
import type { DeviceInfo, MemoryInfo } from "./device_info.ts";
import {
  forgetCurrentDevice,
  readDeviceCount,
  readDeviceInfo,
  readMemoryInfo,
  useDevice,
} from "./native/devices.ts";
import { SchedulerError } from "./errors.ts";
import { GpuEvent } from "./event.ts";
import type { Liveness, Owned, Owner } from "./lifetime.ts";
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
  /** The default device's index (default 0): `sched.device`, where contexts go unless told. */
  deviceId?: number;
  /** Size of each of the host backend's simulated devices in bytes (default 8 GiB). */
  hostMemory?: number;
  /** How many devices the host backend simulates (default 1, at most 64). CUDA: ignored. */
  hostDevices?: number;
  /**
   * Cap on the device memory the scheduler manages on each device: one
   * number for every device, or an array by device index. Default: the
   * device's free memory at start, less a margin (CUDA: 2% of total, at
   * least 256 MiB, for the CUDA context and other processes; host: none).
   */
  memoryLimit?: number | readonly number[];
}

/** Options of `Scheduler.createStream()`. */
export interface StreamOptions {
  /** CUDA stream priority within `device.priorityRange` (default: least urgent). */
  priority?: number;
  /**
   * Id of a partition of the `PartitionManager` of the stream's device: the
   * stream's kernels run on that partition's SMs (on the shared SMs when it
   * has no compute limit). Default: outside partitions, on the SMs no
   * partition reserved.
   */
  partition?: string;
  /** Index of the device it runs on (default: the scheduler's `device`). */
  device?: number;
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
  /**
   * Device it is created on (default: the scheduler's `device`). Recording
   * it on a stream of another device moves it there.
   */
  device?: number;
}

/** Most simulated devices of the host backend (SCHED_MAX_DEVICES). */
const MAX_DEVICES = 64;

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
  /** Every device it manages, by index. */
  readonly devices: readonly DeviceInfo[];
  /** The default device (`initialize({ deviceId })`): `devices[deviceId]`. */
  readonly device: DeviceInfo;
  /** Bytes of device memory this scheduler manages on its default device. */
  readonly memoryLimit: number;
  /** Bytes of device memory it manages on each device, by index. */
  readonly memoryLimits: readonly number[];
  #live = new Set<Owned>();
  /** What it keeps per device (memory account, contexts, staging, layout), by index. */
  readonly #units: readonly Device[];
  /** Streams of contexts with a compute reservation, to their reservation. */
  #reservations = new WeakMap<Stream, object>();
  #nextStreamId = 1;
  #active = true;
  /** `active`, as an object that events' finalizers may hold without holding the scheduler. */
  #liveness = { active: true };

  /** @internal Use `initialize()`. */
  constructor(
    backend: BackendName,
    devices: readonly DeviceInfo[],
    deviceId: number,
    memoryLimits: readonly number[],
  ) {
    this.backend = backend;
    this.devices = Object.freeze([...devices]);
    this.device = this.devices[deviceId]!;
    this.memoryLimits = Object.freeze([...memoryLimits]);
    this.memoryLimit = this.memoryLimits[deviceId]!;
    const directory = new ContextDirectory();
    this.#units = Object.freeze(
      this.devices.map((_, i) => new Device(this, i, this.memoryLimits[i]!, directory)),
    );
  }

  /**
   * @internal Device `index` (a checked index; default: the default device)
   * and the services it owns: limit owner, contexts, staging, address
   * space, compute layout, partitions.
   */
  deviceAt(index: number = this.device.id): Device {
    return this.#units[index]!;
  }

  /** @internal Every device, by index. */
  get units(): readonly Device[] {
    return this.#units;
  }

  /**
   * @internal A device index option: a number naming one of `devices`.
   *
   * @throws {TypeError} when not a number
   * @throws {RangeError} when not an index of `devices`
   */
  requireDevice(value: unknown, doing: string, option = "device"): number {
    if (typeof value !== "number") {
      throw new TypeError(
        `${doing}: ${option} must be a device index (a number), got ${show(value)}`,
      );
    }
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(
        `${doing}: ${option} must be a non-negative integer, got ${show(value)}`,
      );
    }
    if (value >= this.devices.length) {
      throw new RangeError(
        `${doing}: ${option} must be a device index from 0 to ${this.devices.length - 1}, got ${
          show(value)
        }`,
      );
    }
    return value;
  }

  /** False once shut down. */
  get active(): boolean {
    return this.#active;
  }

  /** `active` as an object of its own, which holds no reference to the scheduler (see `Liveness`). */
  get liveness(): Liveness {
    return this.#liveness;
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
    if (object instanceof Stream) this.#units[object.device]?.streams.delete(object);
  }

  /**
   * @internal Live streams of one device (undefined: of every device, by
   * device), in creation order.
   */
  *liveStreams(device?: number): IterableIterator<Stream> {
    if (device !== undefined) {
      yield* this.#units[device]!.streams;
      return;
    }
    for (const unit of this.#units) yield* unit.streams;
  }

  /**
   * @internal Moves every live stream to where the partition binding now
   * says it runs (after a layout change). Order on each stream is kept.
   */
  rebindStreams(device = this.device.id): void {
    for (const stream of this.#units[device]!.streams) {
      stream.rebind(
        this.#nativePartition(
          stream.partition,
          "move a stream to its partition",
          device,
          this.#reservations.get(stream),
        ),
      );
    }
  }

  #nativePartition(
    partition: string | undefined,
    doing: string,
    device: number,
    reservation?: object,
  ): number {
    // Where the device's streams run: its compute layout, once one was made.
    const binding: PartitionBinding | undefined = this.#units[device]!.layoutIfMade;
    if (binding) return binding.nativePartition(partition, doing, reservation);
    if (partition === undefined) return 0;
    throw new RangeError(
      `${doing}: partition must name a partition of the PartitionManager of device ${device}, got ${
        show(partition)
      } (there is no PartitionManager)`,
    );
  }

  /**
   * Free and total bytes of a device right now (default: `device`).
   *
   * @throws {TypeError | RangeError} for a bad device index
   */
  memoryInfo(device?: number): MemoryInfo {
    this.assertActive("read device memory");
    const index = device === undefined
      ? this.device.id
      : this.requireDevice(device, "Cannot read device memory");
    const info = readMemoryInfo(index);
    useDevice(this.device.id);
    return info;
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
    const device = opts.device === undefined
      ? this.device.id
      : this.requireDevice(opts.device, doing);
    const priority = opts.priority === undefined
      ? this.devices[device]!.priorityRange.least
      : requireIntegerIn(opts.priority, -(2 ** 31), 2 ** 31 - 1, "priority", doing);
    const partition = opts.partition === undefined
      ? undefined
      : requireNonEmptyString(opts.partition, "partition", doing);
    const native = this.#nativePartition(partition, doing, device, reservation);
    const stream = new Stream(this, this.#nextStreamId++, priority, partition, native, device);
    this.#units[device]!.streams.add(stream);
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
    const device = opts.device === undefined
      ? this.device.id
      : this.requireDevice(opts.device, doing);
    return new GpuEvent(this, timing, undefined, device);
  }

  /** Shuts this scheduler down (see `shutdown()`). Idempotent. */
  shutdown(): void {
    if (!this.#active) return;
    this.#active = false;
    this.#liveness.active = false;
    for (const object of this.#live) object.invalidate();
    this.#live.clear();
    for (const unit of this.#units) unit.forget();
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
  const hostDevices = opts.hostDevices === undefined
    ? 1
    : requireIntegerIn(opts.hostDevices, 1, MAX_DEVICES, "hostDevices", INIT);
  const memoryLimit = requireMemoryLimit(opts.memoryLimit);
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
  // Also where "auto" fell back to the host backend: a bad index is a RangeError, not a NativeError.
  if (backend === "host" && deviceId >= hostDevices) {
    throw new RangeError(
      `${INIT}: deviceId must be below hostDevices (${hostDevices}) on the host backend, got ${deviceId}`,
    );
  }
  const backendId = backend === "cuda" ? BackendId.CUDA : BackendId.HOST;
  forgetCurrentDevice();
  const status = lib().sched_init_devices(backendId, deviceId, hostDevices, BigInt(hostMemory));
  if (status === Status.ALREADY_INITIALIZED) {
    throw new SchedulerError(
      `${INIT}: another thread of this process (the main thread or a Worker) holds the scheduler and is still running: ${lastError()}`,
    );
  }
  unwrap(status, `${INIT} (${backend} backend)`);

  try {
    const count = Math.min(readDeviceCount(backendId), MAX_DEVICES);
    if (Array.isArray(memoryLimit) && memoryLimit.length !== count) {
      throw new RangeError(
        `${INIT}: memoryLimit must have one entry per device (${count}), got ${memoryLimit.length}`,
      );
    }
    const devices: DeviceInfo[] = [];
    const limits: number[] = [];
    for (let i = 0; i < count; i++) {
      devices.push(readDeviceInfo(i));
      const memory = readMemoryInfo(i);
      const margin = backend === "cuda" ? Math.max(256 * MB, Math.floor(memory.total * 0.02)) : 0;
      const available = Math.max(0, memory.free - margin);
      const limit = Array.isArray(memoryLimit) ? memoryLimit[i] : memoryLimit;
      if (limit !== undefined && limit > memory.total) {
        const option = Array.isArray(memoryLimit) ? `memoryLimit[${i}]` : "memoryLimit";
        throw new RangeError(
          `${INIT}: ${option} must not exceed ${
            count === 1 ? "the device's" : `device ${i}'s`
          } ${memory.total} bytes, got ${limit}`,
        );
      }
      limits.push(limit ?? available);
    }
    useDevice(deviceId);
    active = new Scheduler(backend, devices, deviceId, limits);
    shutDownOnUnload();
    return active;
  } catch (error) {
    lib().sched_shutdown();
    throw error;
  }
}

/** One positive byte count, or a non-empty array of them (checked against the device count later). */
function requireMemoryLimit(value: unknown): number | readonly number[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) {
    if (typeof value !== "number") {
      throw new TypeError(
        `${INIT}: memoryLimit must be a number or an array of numbers, got ${show(value)}`,
      );
    }
    return requirePositiveInteger(value, "memoryLimit", INIT);
  }
  if (value.length === 0) {
    throw new RangeError(`${INIT}: memoryLimit must not be an empty array`);
  }
  // Array.from visits holes (`[GB, , GB]`) as undefined, so each one is refused; map skips them.
  return Object.freeze(
    Array.from(value, (limit, i) => requirePositiveInteger(limit, `memoryLimit[${i}]`, INIT)),
  );
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
