/**
 * The SM layout of a scheduler's device: which SM groups belong to static
 * partitions (`PartitionManager`), which to contexts' compute reservations
 * (`createContext(..., { compute })`), and which are shared; and the
 * libsched partitions (green contexts on CUDA) each stream runs on.
 *
 * **The rule.** The device's `smGroups` groups (of `smGranularity` SMs,
 * all from ONE split made at initialize) are each held by at most one
 * owner:
 * - a static partition's groups are exclusive: only streams of that
 *   partition run there, and they run nowhere else;
 * - a reservation's groups run its context's streams, which also run on
 *   every shared group (one green context over both: work-conserving);
 * - shared groups (plus the SMs the split leaves over) run every other
 *   stream: contexts without a reservation, BEST_EFFORT contexts, streams
 *   outside partitions, streams of partitions without a compute limit.
 *
 * Partitions take the lowest free groups, in creation order, and are laid
 * out again at each partition change (their shares are rounded together,
 * see `groupsForShares`); a reservation takes the highest free groups and
 * keeps them for its life, so other changes do not move it. While any
 * reservation exists at least one group stays shared, whatever asks.
 *
 * **Layout changes.** Each distinct set of groups is one libsched
 * partition, kept while the layout uses it: a change makes only the sets
 * that are new (on CUDA the driver also reuses the green contexts of the
 * last 8 sets it made), moves the streams whose set changed (each keeps
 * its order: its new native stream waits on an event recorded at the end
 * of the old one), then destroys the sets no longer used.
 *
 * @module
 */

import { useDevice } from "../native/devices.ts";
import { AdmissionError, NativeError, SchedulerError } from "../errors.ts";
import type { Owned } from "../lifetime.ts";
import { lib } from "../native/loader.ts";
import { Status } from "../native/status_codes.ts";
import { unwrap } from "../native/unwrap.ts";
import type { PartitionBinding, Scheduler } from "../scheduler.ts";
import type { Stream } from "../stream.ts";
import { show } from "../validate.ts";

/** @internal What the layout asks a `PartitionManager` about its partition ids. */
export interface PartitionDirectory {
  /** Whether a partition has this id. */
  has(id: string): boolean;
}

/** @internal A context's compute reservation: whole groups, kept for its life. */
export class ComputeReservation {
  /** The share asked for. */
  readonly share: number;
  /** Groups held. */
  readonly groups: number;
  /** SMs reserved for it (its groups). */
  readonly smCount: number;
  #layout: ComputeLayout | undefined;
  #stream: Stream | undefined;

  /** @internal Use `ComputeLayout.reserve()`. */
  constructor(layout: ComputeLayout, share: number, groups: number, smCount: number) {
    this.#layout = layout;
    this.share = share;
    this.groups = groups;
    this.smCount = smCount;
  }

  /** The stream of the context holding it, once made. */
  get stream(): Stream | undefined {
    return this.#stream;
  }

  /** @internal The context's stream, whose idleness lets others borrow its SMs. */
  attach(stream: Stream): void {
    this.#stream = stream;
  }

  /** Gives its groups back to the shared SMs. Idempotent. */
  release(): void {
    const layout = this.#layout;
    this.#layout = undefined;
    layout?.unreserve(this);
  }
}

/** One libsched partition of the layout: a set of groups (and maybe the remainder). */
interface NativeSet {
  readonly handle: number;
  readonly smCount: number;
}

/** Who holds a group: a partition (its id), a reservation, or nobody (shared). */
type Owner = string | ComputeReservation | undefined;

/** @internal The SM layout of one device of a scheduler. */
export class ComputeLayout implements Owned, PartitionBinding {
  readonly #sched: Scheduler;
  /** The device whose SMs it lays out. */
  readonly device: number;
  /** Groups that can be held. */
  readonly groupCapacity: number;
  readonly granularity: number;
  #owners: Owner[];
  #sets = new Map<string, NativeSet>();
  #directory: PartitionDirectory | undefined;
  #alive = true;

  /**
   * The layout of device `device` (default: the scheduler's device) of
   * `sched`: the one that device owns, made (and bound as that device's
   * partition binding) on first use.
   */
  static of(sched: Scheduler, device: number = sched.device.id): ComputeLayout {
    return sched.deviceAt(device).computeLayout;
  }

  /** @internal Use `ComputeLayout.of()`: each device owns one (`Device.computeLayout`). */
  constructor(sched: Scheduler, device: number) {
    this.#sched = sched;
    this.device = device;
    const info = sched.devices[device]!;
    this.granularity = info.smGranularity;
    this.groupCapacity = this.granularity > 0 ? Math.min(64, info.smGroups) : 0;
    this.#owners = new Array(this.groupCapacity).fill(undefined);
    sched.adopt(this);
  }

  /**
   * @internal A manager's partition ids; one manager at a time.
   *
   * @throws {SchedulerError} when another manager is attached
   */
  attachDirectory(directory: PartitionDirectory, doing: string): void {
    if (this.#directory !== undefined && this.#directory !== directory) {
      throw new SchedulerError(
        this.#sched.devices.length === 1
          ? `${doing}: the scheduler already has a PartitionManager, close() it first`
          : `${doing}: device ${this.device} already has a PartitionManager, close() it first`,
      );
    }
    this.#directory = directory;
  }

  /** @internal The manager closed. */
  detachDirectory(directory: PartitionDirectory): void {
    if (this.#directory === directory) this.#directory = undefined;
  }

  /** Groups held by reservations. */
  get reservedGroups(): number {
    return this.#owners.filter((o) => o instanceof ComputeReservation).length;
  }

  /** Groups held by static partitions. */
  get partitionGroups(): number {
    return this.#owners.filter((o) => typeof o === "string").length;
  }

  /** Whether any reservation exists. */
  get hasReservations(): boolean {
    return this.reservedGroups > 0;
  }

  /** The live reservations. */
  reservations(): ComputeReservation[] {
    const all = new Set<ComputeReservation>();
    for (const o of this.#owners) if (o instanceof ComputeReservation) all.add(o);
    return [...all];
  }

  /** @internal The layout of a device of `sched` if one was made (no side effects). */
  static peek(sched: Scheduler, device: number = sched.device.id): ComputeLayout | undefined {
    const layout = sched.deviceAt(device).layoutIfMade;
    return layout !== undefined && layout.#alive ? layout : undefined;
  }

  /** Groups partitions may hold at most now: all not reserved, one kept shared while reservations exist. */
  get groupsForPartitions(): number {
    const reserved = this.reservedGroups;
    return this.groupCapacity - reserved - (reserved > 0 ? 1 : 0);
  }

  /** SMs of partition `id` (0 without groups). */
  partitionSmCount(id: string): number {
    return this.#owners.filter((o) => o === id).length * this.granularity;
  }

  /**
   * SMs that streams without a reservation or partition run on: the whole
   * device while nothing holds groups (and when only a remainder too small
   * to run on is left).
   */
  get sharedSmCount(): number {
    const set = this.#sets.get(this.#sharedKey(this.#owners));
    return set === undefined ? this.#sched.devices[this.device]!.smCount : set.smCount;
  }

  /**
   * Reserves `groups` groups (the highest free ones) for a context.
   *
   * @throws {AdmissionError} when that would leave no group shared, changing nothing
   */
  reserve(share: number, groups: number, doing: string): ComputeReservation {
    const free = this.#owners.filter((o) => o === undefined).length;
    if (groups >= free) {
      const g = this.granularity;
      throw new AdmissionError(
        `${doing}: compute ${share} needs ${groups * g} SMs (${groups} group(s) of ${g}), ` +
          `which would leave no group shared: ${free} of the device's ${this.groupCapacity} groups are unreserved`,
      );
    }
    const reservation = new ComputeReservation(this, share, groups, groups * this.granularity);
    const owners = [...this.#owners];
    for (let g = owners.length - 1, left = groups; g >= 0 && left > 0; g--) {
      if (owners[g] === undefined) {
        owners[g] = reservation;
        left--;
      }
    }
    this.#apply(owners, doing);
    return reservation;
  }

  /** @internal Called by `ComputeReservation.release()`. */
  unreserve(reservation: ComputeReservation): void {
    if (!this.#alive) return;
    const owners: Owner[] = this.#owners.map((o) => (o === reservation ? undefined : o));
    this.#apply(owners, "Cannot release a compute reservation");
  }

  /**
   * Lays the partitions out again: `groups[i]` groups for partition
   * `ids[i]`, the lowest groups not reserved, in order.
   *
   * @throws {AdmissionError} when they do not fit next to the reservations, changing nothing
   */
  setPartitions(partitions: readonly { id: string; groups: number }[], doing: string): void {
    const needed = partitions.reduce((sum, p) => sum + p.groups, 0);
    if (needed > this.groupsForPartitions) {
      const g = this.granularity;
      throw new AdmissionError(
        `${doing}: the partitions need ${needed * g} SMs (groups of ${g}), ` +
          `${this.groupsForPartitions * g} of the ${
            this.groupCapacity * g
          } that can be partitioned are ` +
          `free of compute reservations${this.hasReservations ? " (one group stays shared)" : ""}`,
      );
    }
    const owners: Owner[] = this.#owners.map((o) => (typeof o === "string" ? undefined : o));
    let g = 0;
    for (const p of partitions) {
      for (let left = p.groups; left > 0; g++) {
        if (owners[g] === undefined) {
          owners[g] = p.id;
          left--;
        }
      }
    }
    this.#apply(owners, doing);
  }

  /** PartitionBinding: the libsched partition a stream runs on now. */
  nativePartition(partition: string | undefined, doing: string, reservation?: object): number {
    if (partition !== undefined) {
      if (this.#directory === undefined) {
        throw new RangeError(
          `${doing}: partition must name a partition of the scheduler's PartitionManager, got ${
            show(partition)
          } (there is no PartitionManager)`,
        );
      }
      if (!this.#directory.has(partition)) {
        throw new RangeError(`${doing}: partition must name a partition, got ${show(partition)}`);
      }
      const own = this.#sets.get(partitionKey(this.#owners, partition));
      if (own !== undefined) return own.handle;
    } else if (reservation instanceof ComputeReservation) {
      const own = this.#sets.get(this.#reservationKey(this.#owners, reservation));
      if (own !== undefined) return own.handle;
    }
    return this.#sets.get(this.#sharedKey(this.#owners))?.handle ?? 0;
  }

  /** @internal The scheduler shut down: libsched destroyed every partition. */
  invalidate(): void {
    this.#alive = false;
    this.#sets.clear();
  }

  /**
   * Makes the sets `owners` needs, moves every stream, then destroys the
   * sets no longer used. On failure nothing changes.
   */
  #apply(owners: Owner[], doing: string): void {
    const wanted = this.#wantedSets(owners);
    const fresh = [...wanted.entries()].filter(([key]) => !this.#sets.has(key));
    const made = this.#makeSets(fresh, doing);
    const previousOwners = this.#owners;
    const previousSets = this.#sets;
    const next = new Map<string, NativeSet>();
    for (const key of wanted.keys()) next.set(key, previousSets.get(key) ?? made.get(key)!);
    // The remainder alone may be too small to run on: then shared work uses the whole device.
    for (const [key, set] of made) if (!next.has(key)) destroySet(set);
    this.#owners = owners;
    this.#sets = next;
    try {
      this.#sched.rebindStreams(this.device);
    } catch (error) {
      this.#owners = previousOwners;
      this.#sets = previousSets;
      try {
        this.#sched.rebindStreams(this.device);
        for (const [key, set] of made) if (next.has(key)) destroySet(set);
      } catch {
        // Best effort: the first error is the one that says what went wrong.
      }
      throw error;
    }
    for (const [key, set] of previousSets) if (!next.has(key)) destroySet(set);
  }

  /** Key to [group mask, with remainder] of every set `owners` needs. */
  #wantedSets(owners: readonly Owner[]): Map<string, Mask> {
    const sets = new Map<string, Mask>();
    if (owners.every((o) => o === undefined)) return sets;
    const shared = maskOf(owners, (o) => o === undefined);
    sets.set(this.#sharedKey(owners), { mask: shared, remainder: true });
    for (const owner of new Set(owners)) {
      if (owner === undefined) continue;
      if (typeof owner === "string") {
        sets.set(partitionKey(owners, owner), {
          mask: maskOf(owners, (o) => o === owner),
          remainder: false,
        });
      } else {
        sets.set(this.#reservationKey(owners, owner), {
          mask: maskOf(owners, (o) => o === owner || o === undefined),
          remainder: true,
        });
      }
    }
    return sets;
  }

  #sharedKey(owners: readonly Owner[]): string {
    return setKey(maskOf(owners, (o) => o === undefined), true);
  }

  #reservationKey(
    owners: readonly Owner[],
    reservation: ComputeReservation,
  ): string {
    return setKey(maskOf(owners, (o) => o === reservation || o === undefined), true);
  }

  /** One native call for every new set; the remainder alone may be refused (then left out). */
  #makeSets(fresh: [string, Mask][], doing: string): Map<string, NativeSet> {
    const made = new Map<string, NativeSet>();
    const runnable = fresh.filter(([, m]) => m.mask !== 0n);
    const remainderOnly = fresh.filter(([, m]) => m.mask === 0n);
    useDevice(this.device); // sets are made on the current device
    if (runnable.length > 0) {
      const n = runnable.length;
      const masks = BigUint64Array.from(runnable, ([, m]) => m.mask);
      const remainders = Uint8Array.from(runnable, ([, m]) => (m.remainder ? 1 : 0));
      const handles = new Uint32Array(n);
      const given = new Uint32Array(n);
      const status = lib().sched_partition_create_sets(masks, remainders, n, handles, given);
      try {
        unwrap(status, `${doing}: the device refused the SM layout`);
      } catch (error) {
        if (status === Status.INVALID_ARGUMENT && error instanceof NativeError) {
          throw new AdmissionError(error.message, { cause: error });
        }
        throw error;
      }
      runnable.forEach(([key], i) => made.set(key, { handle: handles[i]!, smCount: given[i]! }));
    }
    for (const [key] of remainderOnly) {
      const handles = new Uint32Array(1);
      const given = new Uint32Array(1);
      const status = lib().sched_partition_create_sets(
        BigUint64Array.of(0n),
        Uint8Array.of(1),
        1,
        handles,
        given,
      );
      if (status === Status.OK) made.set(key, { handle: handles[0]!, smCount: given[0]! });
    }
    return made;
  }
}

interface Mask {
  readonly mask: bigint;
  readonly remainder: boolean;
}

function maskOf(
  owners: readonly Owner[],
  take: (owner: Owner) => boolean,
): bigint {
  let mask = 0n;
  owners.forEach((o, g) => {
    if (take(o)) mask |= 1n << BigInt(g);
  });
  return mask;
}

function setKey(mask: bigint, remainder: boolean): string {
  return `${mask.toString(16)}${remainder ? "+r" : ""}`;
}

function partitionKey(owners: readonly Owner[], id: string) {
  return setKey(maskOf(owners, (o) => o === id), false);
}

function destroySet(set: NativeSet): void {
  unwrap(lib().sched_partition_destroy(set.handle), "Cannot destroy a replaced SM partition");
}
