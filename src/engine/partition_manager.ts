/**
 * PartitionManager: named partitions of one device of the scheduler, each
 * with a memory limit (enforced on the allocations of its contexts) and a
 * share of the SMs (enforced on CUDA by green contexts).
 *
 * @module
 */

import { AdmissionError, SchedulerError } from "../errors.ts";
import type { Owned } from "../lifetime.ts";
import { getScheduler, type Scheduler, type StreamOptions } from "../scheduler.ts";
import type { Stream } from "../stream.ts";
import { requireNonEmptyString, requireOptions, show } from "../validate.ts";
import { ComputeLayout, type PartitionDirectory } from "./compute_layout.ts";
import { LimitOwner } from "./limit_owner.ts";
import { PartitionConfig, PartitionLimits } from "./partition.ts";
import { groupsForShares } from "./share_rounding.ts";
import { tracePartition, tracing } from "../trace/recorder.ts";

/** What `PartitionManager.getPartition()` reports. */
export interface PartitionInfo {
  /** Its id, unique within the manager. */
  readonly id: string;
  /** Its display name. */
  readonly name: string;
  /**
   * Most bytes of device memory its contexts may hold together (their
   * claims: live buffers, caches and reservations), set aside from the
   * manager's `totalMemory`; undefined when none.
   */
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
  /** Its contexts' claims, within the device's account; undefined without a memory limit. */
  readonly account: LimitOwner | undefined;
}

// Shares are decimal fractions: 0.1 + 0.2 + 0.7 must fit in 1.
const SHARE_EPSILON = 1e-9;
const CREATE = "Cannot create a partition manager";

/**
 * Named partitions of one device of the scheduler. Each may have a memory
 * limit (`PartitionLimits.memory`: limits never sum past `totalMemory`, and
 * the contexts created in the partition never hold more together: their
 * allocations are refused with `VramBudgetExceededError`, their
 * reservations with `AdmissionError`, as past a context's own budget) and a
 * share of the streaming multiprocessors (`PartitionLimits.compute`,
 * enforced on CUDA).
 *
 * **Compute.** A partition with `compute(share)` gets whole groups of
 * `device.smGranularity` SMs (8 on H100/H200) of the `device.smGroups`
 * groups that can be partitioned (16 there, so 64 of 132 SMs for 0.5; at
 * least one group), as its own CUDA green context: kernels queued on its
 * streams run only on its SMs, whatever floods the others. The shares of
 * all partitions are rounded together by the largest-remainder method
 * (each gets the whole part of `share * smGroups`, the groups left go to
 * the largest fractions, earlier partitions first on ties), so any set of
 * shares summing to at most 1 is admitted (0.6 + 0.4 gets 10 + 6 groups,
 * three thirds 6 + 5 + 5, 0.1 + 0.2 + 0.7 gets 2 + 3 + 11), and creating or
 * deleting one may move a group between the others. Shares summing past 1,
 * more partitions than groups, or groups that compute reservations of
 * contexts hold (`createContext(..., { compute })`, see `ComputeLayout`:
 * while one exists, one group always stays shared) throw `AdmissionError`.
 * A partition without a compute limit reserves no SMs.
 *
 * **Everything else** (streams outside partitions, and those of partitions
 * without a compute limit) runs on the SMs no partition reserved, the
 * shared SMs (`sharedSmCount`), as soon as one partition reserves any:
 * green contexts do not keep other launches off their SMs, so the manager
 * moves the scheduler's streams there. Kernels launched on streams that
 * gpusched did not make (the legacy default stream, a library's own
 * streams) are not confined and may run on any SM.
 *
 * **Layout changes.** Every layout comes from one split of the device made
 * at initialize. Creating or deleting a partition with a compute limit lays
 * the partitions out again (lowest free groups, in creation order) and
 * moves the streams whose SMs changed to their new green context. A stream
 * keeps its id and order (work queued later runs after work queued
 * before), but on CUDA its `handle` changes: read it at each launch. Making
 * a green context waits until every kernel already queued on the device
 * has finished (measured on an H200: 2 ms per context when idle, 300 ms
 * behind a 300 ms kernel); sets of SMs seen before reuse theirs. This call
 * blocks meanwhile: change the layout at startup or between phases, and
 * never while a stream waits for something only this thread would do (a
 * host callback into JavaScript).
 *
 * **Backends.** On the host backend the simulated device has 132 SMs in
 * groups of 8, so every figure is the same as on an H100 or H200, but
 * nothing is enforced (`enforced` is false): any worker runs on any CPU.
 * On a CUDA device without green contexts (compute capability below 9.0)
 * shares are only accounted and `smCount` is 0. Memory limits are
 * enforced on every backend.
 *
 * One manager per device; `close()` it (or shut the scheduler down) to
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
  readonly #layout: ComputeLayout;
  readonly #partitions = new Map<string, Partition>();
  readonly #directory: PartitionDirectory;
  #reservedMemory = 0;
  #reservedCompute = 0;
  #open = true;

  /**
   * The partition manager of a device of the scheduler (one per device at a
   * time).
   *
   * @param config `totalMemory` (default: the device's `memoryLimit`) and `device`
   * @param scheduler the scheduler whose device it partitions (default: the initialized one)
   * @throws {SchedulerError} before `initialize()`, or while another manager is open on the device
   * @throws {TypeError | RangeError} for a bad config, or `totalMemory` above the memory the
   *   scheduler manages on the device (its `memoryLimit`)
   */
  constructor(
    config: PartitionConfig = new PartitionConfig(),
    scheduler: Scheduler = getScheduler(),
  ) {
    if (!(config instanceof PartitionConfig)) {
      throw new TypeError(`${CREATE}: config must be a PartitionConfig, got ${show(config)}`);
    }
    const sched = scheduler;
    sched.assertActive("create a partition manager");
    const device = config.device === undefined
      ? sched.device.id
      : sched.requireDevice(config.device, CREATE);
    const unit = sched.deviceAt(device);
    const total = config.totalMemory ?? unit.memoryLimit;
    // Partitions hand out memory the scheduler manages: no more than the device's memoryLimit.
    if (total > unit.memoryLimit) {
      throw new RangeError(
        `${CREATE}: totalMemory must not exceed ${
          sched.devices.length === 1 ? "the" : `device ${device}'s`
        } memoryLimit of ${unit.memoryLimit} bytes, got ${total}`,
      );
    }
    this.totalMemory = total;
    this.device = device;
    this.#sched = sched;
    this.#layout = ComputeLayout.of(sched, device);
    this.#directory = { has: (id) => this.#partitions.has(id) };
    this.#layout.attachDirectory(this.#directory, CREATE);
    unit.openPartitions(this);
    sched.adopt(this);
  }

  /** Whether the device confines partitions' kernels to their SMs (CUDA with green contexts). */
  get enforced(): boolean {
    return this.#sched.backend === "cuda" && this.#layout.granularity > 0;
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
    return this.#layout.sharedSmCount;
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
    const account = memoryLimit === undefined
      ? undefined
      : new LimitOwner(memoryLimit, this.#sched.deviceAt(this.device).limitOwner);
    const partition: Partition = { id, name, memoryLimit, computeLimit, account };
    if (computeLimit !== undefined) {
      if (this.#reservedCompute + computeLimit > 1 + SHARE_EPSILON) {
        throw new AdmissionError(
          `${doing}: its compute share of ${computeLimit} exceeds the ${
            round(this.availableCompute)
          } unreserved`,
        );
      }
      this.#layOut([...this.#partitions.values(), partition], doing, computeLimit);
    }
    this.#partitions.set(id, partition);
    this.#reservedMemory += memoryLimit ?? 0;
    this.#reservedCompute += computeLimit ?? 0;
    if (tracing.on) tracePartition("create", this.#info(partition));
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
   * @internal The account that contexts in partition `id` claim through
   * (within the device's), or undefined when it has no memory limit.
   */
  memoryAccount(id: string): LimitOwner | undefined {
    return this.#partitions.get(id)?.account;
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
    if (partition.computeLimit !== undefined) {
      this.#layOut([...this.#partitions.values()].filter((p) => p !== partition), doing);
    }
    this.#partitions.delete(id);
    this.#reservedMemory -= partition.memoryLimit ?? 0;
    this.#reservedCompute = this.#partitions.size === 0
      ? 0
      : this.#reservedCompute - (partition.computeLimit ?? 0);
    if (tracing.on) tracePartition("delete", { id });
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
    this.#layout.setPartitions([], "Cannot close the partition manager");
    this.#open = false;
    this.#partitions.clear();
    this.#layout.detachDirectory(this.#directory);
    this.#sched.deviceAt(this.device).closePartitions(this);
    this.#sched.release(this);
  }

  /** Same as `close()`, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** @internal Called at scheduler shutdown, which destroyed every native partition. */
  invalidate(): void {
    this.#open = false;
    // As close() does: a shut-down manager lists nothing, not partitions that no longer exist.
    this.#partitions.clear();
    this.#sched.deviceAt(this.device).closePartitions(this);
  }

  #assertOpen(doing: string): void {
    if (!this.#open) {
      throw new SchedulerError(
        `Cannot ${doing}: the partition manager was closed or its scheduler shut down`,
      );
    }
  }

  #streamsIn(id: string): number {
    let n = 0;
    for (const stream of this.#sched.liveStreams(this.device)) {
      if (stream.partition === id) n++;
    }
    return n;
  }

  #info(p: Partition): PartitionInfo {
    return {
      id: p.id,
      name: p.name,
      memoryLimit: p.memoryLimit,
      computeLimit: p.computeLimit,
      smCount: this.#layout.partitionSmCount(p.id),
      enforced: this.enforced && this.#layout.partitionSmCount(p.id) > 0,
    };
  }

  /**
   * Lays out `partitions` (rounding their shares together) and moves the
   * streams. On failure nothing changes. `asking`: the new partition's share.
   */
  #layOut(partitions: readonly Partition[], doing: string, asking?: number): void {
    const computing = partitions.filter((p) => p.computeLimit !== undefined);
    const groups = groupsForShares(
      computing.map((p) => p.computeLimit!),
      this.#layout.groupCapacity,
    );
    const needed = groups.reduce((a, b) => a + b, 0);
    const free = this.#layout.groupsForPartitions;
    if (needed > free) {
      const g = this.#layout.granularity;
      const all = this.#layout.groupCapacity * g;
      const what = asking === undefined ? "the partitions" : `its compute share of ${asking}`;
      throw new AdmissionError(
        `${doing}: ${what} needs ${needed * g} SMs in all (groups of ${g}), ` +
          `${free * g} of the ${all} it can partition are free of compute reservations`,
      );
    }
    this.#layout.setPartitions(
      computing.map((p, i) => ({ id: p.id, groups: groups[i]! })),
      doing,
    );
  }
}

/** A share for a message: no floating-point noise. */
function round(share: number): number {
  return Math.round(share * 1e6) / 1e6;
}
