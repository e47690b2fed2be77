/**
 * Compute reservations of contexts (`createContext(..., { compute })`):
 * the option's rules, and taking the SM groups from the scheduler's
 * `ComputeLayout`.
 *
 * @module
 */

import { QoSPolicy } from "./qos_policy.ts";
import type { Scheduler } from "../scheduler.ts";
import { show } from "../validate.ts";
import { ComputeLayout, type ComputeReservation } from "./compute_layout.ts";
import { groupsForShare } from "./share_rounding.ts";

/**
 * The `compute` option of `createContext()`: a share in (0, 1) on a
 * GUARANTEED or BURSTABLE context, or undefined when not given.
 *
 * @example
 * ```ts
 * import { QoSPolicy } from "@gpusched/core";
 * import { parseComputeOption } from "./compute_reservations.ts";
 * console.assert(parseComputeOption(0.25, QoSPolicy.GUARANTEED, "Cannot create") === 0.25);
 * console.assert(parseComputeOption(undefined, QoSPolicy.BEST_EFFORT, "Cannot create") === undefined);
 * ```
 * @throws {TypeError} when it is not a number
 * @throws {RangeError} when it is not in (0, 1) (NaN included), on BEST_EFFORT, or next to `partition`
 */
export function parseComputeOption(
  value: unknown,
  qos: QoSPolicy,
  doing: string,
  partition?: unknown,
): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number") {
    throw new TypeError(`${doing}: compute must be a number, got ${show(value)}`);
  }
  if (!(value > 0 && value < 1)) {
    throw new RangeError(`${doing}: compute must be a share in (0, 1), got ${show(value)}`);
  }
  if (qos === QoSPolicy.BEST_EFFORT) {
    throw new RangeError(
      `${doing}: compute is only for GUARANTEED and BURSTABLE contexts, got qos ${show(qos)}`,
    );
  }
  if (partition !== undefined) {
    throw new RangeError(
      `${doing}: compute and partition exclude each other (a partition's SMs are its own), ` +
        `got compute ${value} with partition ${show(partition)}`,
    );
  }
  return value;
}

/**
 * Reserves SM groups for a context: `round(share * device.smGroups)`, at
 * least one, taken from the highest free groups. Where SMs cannot be
 * partitioned (`smGranularity` 0) nothing is taken and `smCount` is 0.
 *
 * @throws {AdmissionError} when it would leave no group shared (nothing changes)
 */
export function reserveCompute(
  sched: Scheduler,
  share: number,
  doing: string,
  device: number = sched.device.id,
): ComputeReservation | undefined {
  const layout = ComputeLayout.of(sched, device);
  const groups = groupsForShare(share, layout.groupCapacity);
  if (groups === 0) return undefined;
  return layout.reserve(share, groups, doing);
}
