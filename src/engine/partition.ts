/**
 * What a `PartitionManager` is configured with, and what each partition
 * asks for: the `PartitionConfig` and `PartitionLimits` values.
 *
 * @module
 */

import {
  requireFraction,
  requireNonNegativeInteger,
  requireOptions,
  requirePositiveInteger,
} from "../validate.ts";

/** Options of `new PartitionConfig()`. */
export interface PartitionConfigOptions {
  /**
   * Bytes of device memory the manager hands out to partitions. Default:
   * the scheduler's `memoryLimit` (the memory it manages: on CUDA the
   * device's free memory at start, less a margin).
   */
  totalMemory?: number;
  /**
   * Index of the device whose SMs and memory it partitions (default: the
   * scheduler's `device`). One manager per device at a time.
   */
  device?: number;
}

const CONFIG = "Cannot create a partition config";
const LIMITS = "Cannot set partition limits";

/**
 * Settings of a `PartitionManager`.
 *
 * @example
 * ```ts
 * import { GB, PartitionConfig } from "@gpusched/core";
 * const config = new PartitionConfig({ totalMemory: 8 * GB });
 * console.assert(config.totalMemory === 8 * GB);
 * console.assert(new PartitionConfig().totalMemory === undefined); // the scheduler's memoryLimit
 * console.assert(new PartitionConfig({ device: 1 }).device === 1); // a manager for device 1
 * ```
 */
export class PartitionConfig {
  /** Bytes to hand out; undefined for the device's `memoryLimit`. */
  readonly totalMemory: number | undefined;
  /** Device index; undefined for the scheduler's `device`. */
  readonly device: number | undefined;

  /**
   * A configuration; `totalMemory` defaults to the device's memory.
   *
   * @param options `totalMemory` and `device` (optional)
   * @throws {TypeError | RangeError} when `totalMemory` is not a positive
   *   integer or `device` not a non-negative integer (the manager checks
   *   that the device exists)
   */
  constructor(options?: PartitionConfigOptions) {
    const opts = requireOptions<PartitionConfigOptions>(options, CONFIG);
    this.totalMemory = opts.totalMemory === undefined
      ? undefined
      : requirePositiveInteger(opts.totalMemory, "totalMemory", CONFIG);
    this.device = opts.device === undefined
      ? undefined
      : requireNonNegativeInteger(opts.device, "device", CONFIG);
  }
}

/** Options of `new PartitionLimits()`: the same as its builder methods. */
export interface PartitionLimitsInit {
  /** Bytes of device memory reserved for the partition. */
  memory?: number;
  /** Share of the device's SMs, in (0, 1]. */
  compute?: number;
}

/**
 * What a partition reserves: device memory (a limit on what the contexts
 * created in it hold together, enforced on every backend) and a share of
 * the device's SMs (enforced on CUDA with green contexts). Immutable: each
 * builder method returns a new value. Leave a limit out to reserve none.
 *
 * @example
 * ```ts
 * import { GB, PartitionLimits } from "@gpusched/core";
 * const limits = new PartitionLimits().memory(4 * GB).compute(0.5);
 * console.assert(limits.memoryLimit === 4 * GB && limits.computeLimit === 0.5);
 * console.assert(new PartitionLimits().computeLimit === undefined);
 * ```
 */
export class PartitionLimits {
  /** Bytes of device memory reserved; undefined when none. */
  readonly memoryLimit: number | undefined;
  /** Share of the SMs reserved, in (0, 1]; undefined when none. */
  readonly computeLimit: number | undefined;

  /**
   * Limits, empty unless `init` gives some.
   *
   * @param init limits to start from (default: none)
   * @throws {TypeError | RangeError} as `memory()` and `compute()` do
   */
  constructor(init?: PartitionLimitsInit) {
    const opts = requireOptions<PartitionLimitsInit>(init, LIMITS);
    this.memoryLimit = opts.memory === undefined
      ? undefined
      : requirePositiveInteger(opts.memory, "memory", LIMITS);
    this.computeLimit = opts.compute === undefined
      ? undefined
      : requireFraction(opts.compute, "compute", LIMITS);
  }

  /**
   * The same limits with `bytes` of device memory: the most that the
   * contexts created in the partition may hold together.
   *
   * @example
   * ```ts
   * import { MB, PartitionLimits } from "@gpusched/core";
   * console.assert(new PartitionLimits().memory(512 * MB).memoryLimit === 512 * MB);
   * ```
   * @param bytes a positive integer
   * @returns a new PartitionLimits
   * @throws {TypeError | RangeError} when `bytes` is not a positive integer
   */
  memory(bytes: number): PartitionLimits {
    return new PartitionLimits({ ...this.#init(), memory: bytes });
  }

  /**
   * The same limits with a share of the device's SMs.
   *
   * @example
   * ```ts
   * import { PartitionLimits } from "@gpusched/core";
   * console.assert(new PartitionLimits().compute(0.25).computeLimit === 0.25);
   * ```
   * @param share a number in (0, 1]: 0.5 is half the SMs
   * @returns a new PartitionLimits
   * @throws {TypeError | RangeError} when `share` is not in (0, 1]
   */
  compute(share: number): PartitionLimits {
    return new PartitionLimits({ ...this.#init(), compute: share });
  }

  #init(): PartitionLimitsInit {
    const init: PartitionLimitsInit = {};
    if (this.memoryLimit !== undefined) init.memory = this.memoryLimit;
    if (this.computeLimit !== undefined) init.compute = this.computeLimit;
    return init;
  }
}
