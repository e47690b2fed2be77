/**
 * PartitionManager: named partitions of the scheduler's device, each with a
 * memory reservation (accounted) and a share of the SMs (enforced on CUDA by
 * green contexts).
 *
 * @module
 */

import { useDevice } from "../device.ts";
import { AdmissionError, NativeError, SchedulerError } from "../errors.ts";
import type { Owned } from "../lifetime.ts";
import { lib } from "../native/loader.ts";
import { Status } from "../native/status_codes.ts";
import { unwrap } from "../native/unwrap.ts";
import {
  getScheduler,
  type PartitionBinding,
  type Scheduler,
  type StreamOptions,
} from "../scheduler.ts";
import type { Stream } from "../stream.ts";
import { requireNonEmptyString, requireOptions, show } from "../validate.ts";
import { PartitionConfig, PartitionLimits } from "./partition.ts";

/** What `PartitionManager.getPartition()` reports. */
export interface PartitionInfo {
  /** Its id, unique within the manager. */
  readonly id: string;
  /** Its display name. */
  readonly name: string;
  /** Bytes of device memory reserved for it; undefined when none. */
  readonly memoryLimit: number | undefined;
  /** Its share of the SMs, in (0, 1]; undefined when none. */
  readonly computeLimit: number | undefined;
  /**
   * SMs reserved for it alone, as the backend really gave them: 0 without a
   * compute limit (its streams then run on the shared SMs, see
   * `PartitionManager.sharedSmCount`) or where SMs cannot be partitioned.
   */
  readonly smCount: number;
  /** True when the device confines its streams' kernels to its SMs (CUDA green contexts). */
  readonly enforced: boolean;
}

/** Options of `PartitionManager.createStream()`. */
export type PartitionStreamOptions = Omit<StreamOptions, "partition" | "device">;

interface Partition {
  readonly id: string;
  readonly name: string;
  readonly memoryLimit: number | undefined;
  readonly computeLimit: number | undefined;
  /** SM groups it asks for; 0 without a compute limit or SM partitioning. */
  readonly groups: number;
}

/** One set of libsched partitions: the current SM layout. */
interface Layout {
  /** Partition id to libsched partition. */
  readonly native: ReadonlyMap<string, number>;
  /** Partition id to SMs given. */
  readonly smCounts: ReadonlyMap<string, number>;
  /** The libsched partition of the SMs nobody reserved; 0 when none remain. */
  readonly rest: number;
  readonly restSmCount: number;
  /** Every libsched partition of the set, for destroying it. */
  readonly all: readonly number[];
}

// Shares are decimal fractions: 0.1 + 0.2 + 0.7 must fit in 1.
const SHARE_EPSILON = 1e-9;
const CREATE = "Cannot create a partition manager";

/**
 * Named partitions of the scheduler's device. Each reserves device memory
 * (`PartitionLimits.memory`, accounted: reservations never sum past
 * `totalMemory`) and a share of the streaming multiprocessors
 * (`PartitionLimits.compute`, enforced on CUDA).
 *
 * **Compute.** A partition with `compute(share)` gets `round(share * SMs)`
 * SMs in whole groups of `device.smGranularity` (8 on H100/H200, so 64 of
 * 132 for 0.5; at least one group), as its own CUDA green context: kernels
 * queued on its streams run only on its SMs, whatever floods the others.
 * Shares summing past 1, or groups past the `device.smGroups` the device
 * splits into, throw `AdmissionError`. A partition without a compute limit
 * reserves no SMs.
 *
 * **Everything else** (streams outside partitions, and those of partitions
 * without a compute limit) runs on the SMs no partition reserved, the
 * shared SMs (`sharedSmCount`), as soon as one partition reserves any:
 * green contexts do not keep other launches off their SMs, so the manager
 * moves the scheduler's streams there. Kernels launched on streams that
 * gpusched did not make (the legacy default stream, a library's own
 * streams) are not confined and may run on any SM.
 *
 * **Layout changes.** CUDA cannot merge SM groups of different splits, so
 * creating or deleting a partition with a compute limit rebuilds the whole
 * layout (partitions in creation order, then the shared rest) and moves
 * every stream of the scheduler to its new green context. A stream keeps
 * its id and order (work queued later runs after work queued before), but
 * on CUDA its `handle` changes: read it at each launch. Making green
 * contexts waits until every kernel already queued on the device has
 * finished (measured on an H200: 2 ms per context when idle, 300 ms behind
 * a 300 ms kernel), and this call blocks meanwhile: change the layout at
 * startup or between phases, and never while a stream waits for something
 * only this thread would do (a host callback into JavaScript).
 *
 * **Backends.** On the host backend the simulated device has 132 SMs in
 * groups of 8, so every figure is the same as on an H100 or H200, but
 * nothing is enforced (`enforced` is false): any worker runs on any CPU.
 * On a CUDA device without green contexts (compute capability below 9.0)
 * shares are only accounted and `smCount` is 0. Memory is accounted on
 * every backend; allocations are not checked against it here.
 *
 * One manager per scheduler; `close()` it (or shut the scheduler down) to
 * make another.
 *
 * @example Two halves of the device
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   AdmissionError, GB, initialize, PartitionConfig, PartitionLimits, PartitionManager, shutdown,
 * } from "@gpusched/core";
 * initialize({ backend: "host", hostMemory: 8 * GB });
 * const manager = new PartitionManager(new PartitionConfig({ totalMemory: 8 * GB }));
 * manager.createPartition("inference", "Inference Partition",
 *   new PartitionLimits().memory(4 * GB).compute(0.5));
 * manager.createPartition("training", "Training Partition",
 *   new PartitionLimits().memory(4 * GB).compute(0.5));
 * assert.equal(manager.getPartition("inference")?.smCount, 64); // of the host's simulated 132
 * assert.throws(
 *   () => manager.createPartition("more", "More", new PartitionLimits().compute(0.1)),
 *   AdmissionError,
 * );
 * const stream = manager.createStream("inference"); // its kernels run on the 64 SMs (CUDA)
 * stream.destroy();
 * manager.deletePartition("training");
 * assert.deepEqual(manager.listPartitions().map((p) => p.id), ["inference"]);
 * shutdown();
 * ```
 */
export class PartitionManager implements Owned {
  /** Bytes of device memory it hands out. */
  readonly totalMemory: number;
  /** Index of the device it partitions. */
  readonly device: number;
  readonly #sched: Scheduler;
  readonly #smCount: number;
  readonly #granularity: number;
  readonly #groupCapacity: number;
  readonly #partitions = new Map<string, Partition>();
  readonly #binding: PartitionBinding;
  #layout: Layout | undefined;
  #reservedMemory = 0;
  #reservedCompute = 0;
  #reservedGroups = 0;
  #open = true;

  /**
   * The partition manager of the initialized scheduler (one at a time).
   *
   * @param config `totalMemory` (default: the scheduler's `memoryLimit`)
   * @throws {SchedulerError} before `initialize()`, or while another manager is open
   * @throws {TypeError | RangeError} for a bad config, or `totalMemory` above the device's memory
   */
  constructor(config: PartitionConfig = new PartitionConfig()) {
    if (!(config instanceof PartitionConfig)) {
      throw new TypeError(`${CREATE}: config must be a PartitionConfig, got ${show(config)}`);
    }
    const sched = getScheduler();
    sched.assertActive("create a partition manager");
    const device = config.device === undefined
      ? sched.device.id
      : sched.requireDevice(config.device, CREATE);
    const info = sched.devices[device]!;
    const total = config.totalMemory ?? sched.memoryLimits[device]!;
    if (total > info.totalMemory) {
      throw new RangeError(
        `${CREATE}: totalMemory must not exceed the device's ${info.totalMemory} bytes, got ${total}`,
      );
    }
    this.totalMemory = total;
    this.device = device;
    this.#sched = sched;
    this.#smCount = info.smCount;
    this.#granularity = info.smGranularity;
    this.#groupCapacity = this.#granularity > 0 ? info.smGroups : 0;
    this.#binding = {
      nativePartition: (partition, doing) => this.#nativePartition(partition, doing),
    };
    sched.bindPartitions(this.#binding, CREATE, device);
    sched.adopt(this);
  }

  /** Whether the device confines partitions' kernels to their SMs (CUDA with green contexts). */
  get enforced(): boolean {
    return this.#sched.backend === "cuda" && this.#granularity > 0;
  }

  /** Bytes of `totalMemory` not reserved by a partition. */
  get availableMemory(): number {
    return this.totalMemory - this.#reservedMemory;
  }

  /** Share of the SMs not reserved by a partition, in [0, 1]. */
  get availableCompute(): number {
    return Math.max(0, 1 - this.#reservedCompute);
  }

  /**
   * SMs that work outside compute partitions runs on: streams without a
   * partition, and those of partitions without a compute limit. The whole
   * device while no partition reserves SMs, and also in the rare layout
   * that leaves no SM over (then such work overlaps the partitions).
   */
  get sharedSmCount(): number {
    const layout = this.#layout;
    return layout === undefined || layout.rest === 0 ? this.#smCount : layout.restSmCount;
  }

  /**
   * Creates a partition and, when it has a compute limit, gives it its SMs
   * (rebuilding the layout; see the class description).
   *
   * @example
   * ```ts
   * import { GB, initialize, PartitionLimits, PartitionManager, shutdown } from "@gpusched/core";
   * initialize({ backend: "host" });
   * const manager = new PartitionManager();
   * const info = manager.createPartition("tts", "Speech", new PartitionLimits().memory(1 * GB));
   * console.assert(info.smCount === 0 && info.memoryLimit === 1 * GB); // memory only
   * shutdown();
   * ```
   * @param id unique id (streams and contexts name their partition by it)
   * @param name display name
   * @param limits what it reserves
   * @returns its description
   * @throws {AdmissionError} when its memory or compute does not fit in what is unreserved
   * @throws {TypeError | RangeError} for a bad argument, or an id in use
   */
  createPartition(id: string, name: string, limits: PartitionLimits): PartitionInfo {
    this.#assertOpen("create a partition");
    requireNonEmptyString(id, "id", "Cannot create a partition");
    const doing = `Cannot create partition ${show(id)}`;
    requireNonEmptyString(name, "name", doing);
    if (!(limits instanceof PartitionLimits)) {
      throw new TypeError(`${doing}: limits must be a PartitionLimits, got ${show(limits)}`);
    }
    if (this.#partitions.has(id)) {
      throw new RangeError(`${doing}: id must be unused, got ${show(id)}, which names a partition`);
    }
    const { memoryLimit, computeLimit } = limits;
    if (memoryLimit !== undefined && memoryLimit > this.availableMemory) {
      throw new AdmissionError(
        `${doing}: its memory of ${memoryLimit} bytes exceeds the ${this.availableMemory} bytes unreserved`,
      );
    }
    let groups = 0;
    if (computeLimit !== undefined) {
      if (this.#reservedCompute + computeLimit > 1 + SHARE_EPSILON) {
        throw new AdmissionError(
          `${doing}: its compute share of ${computeLimit} exceeds the ${
            round(this.availableCompute)
          } unreserved`,
        );
      }
      groups = this.#groupsFor(computeLimit);
      if (this.#reservedGroups + groups > this.#groupCapacity) {
        const g = this.#granularity;
        const free = (this.#groupCapacity - this.#reservedGroups) * g;
        const all = this.#groupCapacity * g;
        throw new AdmissionError(
          `${doing}: its compute share of ${computeLimit} needs ${groups * g} SMs ` +
            `(groups of ${g}), ${free} of the ${all} it can partition are unreserved`,
        );
      }
    }
    const partition: Partition = { id, name, memoryLimit, computeLimit, groups };
    if (groups > 0) this.#relayout([...this.#partitions.values(), partition], doing);
    this.#partitions.set(id, partition);
    this.#reservedMemory += memoryLimit ?? 0;
    this.#reservedCompute += computeLimit ?? 0;
    this.#reservedGroups += groups;
    return this.#info(partition);
  }

  /**
   * The partition with this id, or undefined.
   *
   * @example
   * ```ts
   * import { initialize, PartitionManager, shutdown } from "@gpusched/core";
   * initialize({ backend: "host" });
   * console.assert(new PartitionManager().getPartition("nope") === undefined);
   * shutdown();
   * ```
   */
  getPartition(id: string): PartitionInfo | undefined {
    const partition = this.#partitions.get(id);
    return partition === undefined ? undefined : this.#info(partition);
  }

  /**
   * Every partition, in creation order.
   *
   * @example
   * ```ts
   * import { initialize, PartitionLimits, PartitionManager, shutdown } from "@gpusched/core";
   * initialize({ backend: "host" });
   * const manager = new PartitionManager();
   * manager.createPartition("a", "A", new PartitionLimits().compute(0.25));
   * manager.createPartition("b", "B", new PartitionLimits().compute(0.25));
   * console.assert(manager.listPartitions().map((p) => p.smCount).join() === "32,32");
   * shutdown();
   * ```
   */
  listPartitions(): PartitionInfo[] {
    return [...this.#partitions.values()].map((p) => this.#info(p));
  }

  /**
   * Deletes a partition, returning what it reserved. Its SMs go back to the
   * shared SMs (the layout is rebuilt when it had a compute limit).
   *
   * @example
   * ```ts
   * import { initialize, PartitionLimits, PartitionManager, shutdown } from "@gpusched/core";
   * initialize({ backend: "host" });
   * const manager = new PartitionManager();
   * manager.createPartition("a", "A", new PartitionLimits().compute(1));
   * manager.deletePartition("a");
   * console.assert(manager.availableCompute === 1 && manager.sharedSmCount === 132);
   * shutdown();
   * ```
   * @throws {RangeError} when no partition has this id
   * @throws {SchedulerError} while streams run in it (destroy them first)
   */
  deletePartition(id: string): void {
    this.#assertOpen("delete a partition");
    const doing = `Cannot delete partition ${show(id)}`;
    const partition = this.#partitions.get(id);
    if (partition === undefined) {
      throw new RangeError(`${doing}: id must name a partition, got ${show(id)}`);
    }
    const streams = this.#streamsIn(id);
    if (streams > 0) {
      throw new SchedulerError(
        `${doing}: ${streams} stream(s) still run in it, destroy them first`,
      );
    }
    if (partition.groups > 0) {
      this.#relayout([...this.#partitions.values()].filter((p) => p !== partition), doing);
    }
    this.#partitions.delete(id);
    this.#reservedMemory -= partition.memoryLimit ?? 0;
    this.#reservedCompute = this.#partitions.size === 0
      ? 0
      : this.#reservedCompute - (partition.computeLimit ?? 0);
    this.#reservedGroups -= partition.groups;
  }

  /**
   * A new stream in a partition: the same as
   * `scheduler.createStream({ ...options, partition: id })`.
   *
   * @example
   * ```ts
   * import { initialize, PartitionLimits, PartitionManager, shutdown } from "@gpusched/core";
   * const sched = initialize({ backend: "host" });
   * const manager = new PartitionManager();
   * manager.createPartition("llm", "LLM", new PartitionLimits().compute(0.5));
   * const stream = manager.createStream("llm", { priority: sched.device.priorityRange.greatest });
   * console.assert(stream.partition === "llm" && stream.priority === -5);
   * shutdown();
   * ```
   * @throws {RangeError} when no partition has this id
   */
  createStream(id: string, options?: PartitionStreamOptions): Stream {
    this.#assertOpen("create a stream");
    const opts = requireOptions<PartitionStreamOptions>(options, "Cannot create a stream");
    return this.#sched.createStream({ ...opts, partition: id, device: this.device });
  }

  /**
   * Deletes every partition and lets the scheduler's streams use the whole
   * device again; another manager may then be made. Idempotent.
   *
   * @example
   * ```ts
   * import { initialize, PartitionLimits, PartitionManager, shutdown } from "@gpusched/core";
   * initialize({ backend: "host" });
   * {
   *   using manager = new PartitionManager();
   *   manager.createPartition("a", "A", new PartitionLimits().compute(0.5));
   * } // closed here
   * new PartitionManager(); // allowed again
   * shutdown();
   * ```
   * @throws {SchedulerError} while streams run in its partitions (destroy them first)
   */
  close(): void {
    if (!this.#open) return;
    let streams = 0;
    for (const id of this.#partitions.keys()) streams += this.#streamsIn(id);
    if (streams > 0) {
      throw new SchedulerError(
        `Cannot close the partition manager: ${streams} stream(s) still run in its partitions, destroy them first`,
      );
    }
    if (this.#layout !== undefined) this.#relayout([], "Cannot close the partition manager");
    this.#open = false;
    this.#partitions.clear();
    this.#sched.unbindPartitions(this.#binding);
    this.#sched.release(this);
  }

  /** Same as `close()`, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** @internal Called at scheduler shutdown, which destroyed every native partition. */
  invalidate(): void {
    this.#open = false;
    this.#layout = undefined;
  }

  #assertOpen(doing: string): void {
    if (!this.#open) {
      throw new SchedulerError(
        `Cannot ${doing}: the partition manager was closed or its scheduler shut down`,
      );
    }
  }

  #groupsFor(share: number): number {
    if (this.#granularity === 0) return 0;
    const groups = Math.round((share * this.#smCount) / this.#granularity);
    return Math.min(Math.max(1, groups), this.#groupCapacity);
  }

  #streamsIn(id: string): number {
    let n = 0;
    for (const stream of this.#sched.liveStreams()) {
      if (stream.device === this.device && stream.partition === id) n++;
    }
    return n;
  }

  #nativePartition(partition: string | undefined, doing: string): number {
    const layout = this.#layout;
    if (partition === undefined) return layout?.rest ?? 0;
    if (!this.#partitions.has(partition)) {
      throw new RangeError(`${doing}: partition must name a partition, got ${show(partition)}`);
    }
    return layout?.native.get(partition) ?? layout?.rest ?? 0;
  }

  #info(p: Partition): PartitionInfo {
    return {
      id: p.id,
      name: p.name,
      memoryLimit: p.memoryLimit,
      computeLimit: p.computeLimit,
      smCount: this.#layout?.smCounts.get(p.id) ?? 0,
      enforced: this.enforced && p.groups > 0,
    };
  }

  /**
   * Makes the layout for `partitions` (none with a compute limit: the whole
   * device again), moves every stream into it, then destroys the old one.
   * On failure the old layout stays, with every stream in it.
   */
  #relayout(partitions: readonly Partition[], doing: string): void {
    const next = this.#makeLayout(partitions.filter((p) => p.groups > 0), doing);
    const previous = this.#layout;
    this.#layout = next;
    try {
      this.#sched.rebindStreams(this.device);
    } catch (error) {
      this.#layout = previous;
      try {
        this.#sched.rebindStreams(this.device);
        if (next !== undefined) destroyLayout(next);
      } catch {
        // Best effort: the first error is the one that says what went wrong.
      }
      throw error;
    }
    if (previous !== undefined) destroyLayout(previous);
  }

  #makeLayout(partitions: readonly Partition[], doing: string): Layout | undefined {
    if (partitions.length === 0) return undefined;
    const n = partitions.length;
    const counts = Uint32Array.from(partitions, (p) => p.groups * this.#granularity);
    const handles = new Uint32Array(n + 1);
    const given = new Uint32Array(n + 1);
    useDevice(this.device);
    const status = lib().sched_partition_create(counts, n, handles, given);
    try {
      unwrap(status, `${doing}: the device refused the SM layout`);
    } catch (error) {
      // The device splits into fewer groups than its SM count promised.
      if (status === Status.INVALID_ARGUMENT && error instanceof NativeError) {
        throw new AdmissionError(error.message, { cause: error });
      }
      throw error;
    }
    return {
      native: new Map(partitions.map((p, i) => [p.id, handles[i]!])),
      smCounts: new Map(partitions.map((p, i) => [p.id, given[i]!])),
      rest: handles[n]!,
      restSmCount: given[n]!,
      all: [...handles].filter((h) => h !== 0),
    };
  }
}

function destroyLayout(layout: Layout): void {
  for (const handle of layout.all) {
    unwrap(lib().sched_partition_destroy(handle), "Cannot destroy a replaced SM partition");
  }
}

/** A share for a message: no floating-point noise. */
function round(share: number): number {
  return Math.round(share * 1e6) / 1e6;
}
