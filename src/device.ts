/**
 * One managed device and everything the scheduler keeps for it.
 *
 * A `Scheduler` owns one `Device` per GPU it manages (CUDA: every visible
 * device; host backend: `hostDevices` simulated ones), and each device owns
 * its services: the limit owner (the one byte account every allocation on
 * the device claims from), the context manager (the memory rules between
 * its contexts), the pinned staging area of its transfers, the address
 * space its pools' blocks live at, its streams, its compute layout (which
 * SMs belong to whom) and the partition manager open on it. Nothing of a device hangs
 * off a module-level registry: whoever needs one of them asks the
 * scheduler for the device (`sched.deviceAt(i)`), and everything goes when
 * the scheduler shuts down.
 *
 * @module
 */

import { type ContextDirectory, ContextManager } from "./context/context_manager.ts";
import { ComputeLayout } from "./engine/compute_layout.ts";
import { LimitOwner } from "./engine/limit_owner.ts";
import type { PartitionManager } from "./engine/partition_manager.ts";
import { StagingArea } from "./engine/staging.ts";
import { AddressSpace } from "./engine/virtual_memory.ts";
import type { DeviceInfo } from "./device_info.ts";
import type { Scheduler } from "./scheduler.ts";
import type { Stream } from "./stream.ts";

export type { DeviceInfo, MemoryInfo } from "./device_info.ts";
// Where other modules have always found them.
export { makeDeviceCurrent, useDevice } from "./native/devices.ts";

/**
 * @internal One device of a scheduler and the services it owns.
 *
 * @example
 * ```ts
 * import { initialize, shutdown } from "@gpusched/core";
 * import assert from "node:assert/strict";
 * const sched = initialize({ backend: "host", hostDevices: 2, memoryLimit: [1024, 2048] });
 * const device = sched.deviceAt(1);
 * assert.equal(device.limitOwner.limit, 2048);
 * assert.equal(device.contexts.device, 1);
 * shutdown();
 * ```
 */
export class Device {
  /** Its index in `sched.devices`. */
  readonly index: number;
  /** Its description, `sched.devices[index]`. */
  readonly info: DeviceInfo;
  /** Bytes the scheduler manages on it. */
  readonly memoryLimit: number;
  /** The account of every byte handed out on it (contexts, standalone pools, partitions). */
  readonly limitOwner: LimitOwner;
  /** Pinned memory that `write`/`read` of buffers on this device stage through. */
  readonly staging: StagingArea;
  /** Its contexts and the memory rules between them. */
  readonly contexts: ContextManager;
  /** Its live streams, in creation order (the scheduler adds and removes them). */
  readonly streams: Set<Stream> = new Set();
  readonly #scheduler: Scheduler;
  #addressSpace: AddressSpace | undefined;
  #layout: ComputeLayout | undefined;
  #partitions: PartitionManager | undefined;

  /**
   * @param directory context names and pressure handlers, shared by every device of `scheduler`
   */
  constructor(
    scheduler: Scheduler,
    index: number,
    memoryLimit: number,
    directory: ContextDirectory,
  ) {
    this.#scheduler = scheduler;
    this.index = index;
    this.info = scheduler.devices[index]!;
    this.memoryLimit = memoryLimit;
    this.limitOwner = new LimitOwner(memoryLimit);
    this.staging = new StagingArea(scheduler);
    this.contexts = new ContextManager(scheduler, this, directory);
  }

  /** The address space its pools take block addresses from, reserved on first use. */
  get addressSpace(): AddressSpace {
    return this.#addressSpace ??= new AddressSpace(this.index, this.memoryLimit);
  }

  /** Its SM layout, made (and bound as where its streams run) on first use. */
  get computeLayout(): ComputeLayout {
    return this.#layout ??= new ComputeLayout(this.#scheduler, this.index);
  }

  /** Its SM layout if one was made (no side effects). */
  get layoutIfMade(): ComputeLayout | undefined {
    return this.#layout;
  }

  /** The partition manager open on it, if any. */
  get partitions(): PartitionManager | undefined {
    return this.#partitions;
  }

  /**
   * Records `manager` as the partition manager open on this device (its
   * compute layout already refused a second one: `attachDirectory`).
   */
  openPartitions(manager: PartitionManager): void {
    this.#partitions = manager;
  }

  /** `manager` closed (or its scheduler shut down). */
  closePartitions(manager: PartitionManager): void {
    if (this.#partitions === manager) this.#partitions = undefined;
  }

  /**
   * The scheduler shut down: libsched freed every native object, so the
   * services made on first use are made afresh if ever asked again.
   */
  forget(): void {
    this.streams.clear();
    this.#layout = undefined;
    this.#partitions = undefined;
    this.#addressSpace = undefined;
  }
}
