/**
 * How QoS classes map onto a device's stream priority range. CUDA counts
 * priorities downwards: `greatest` (e.g. -5) is the most urgent level,
 * `least` (e.g. 0) the least urgent.
 *
 * @module
 */

import { QoSPolicy } from "./qos_policy.ts";

/** A device's stream priority range, as `DeviceInfo.priorityRange` gives it. */
export interface PriorityRange {
  /** Least urgent level (numerically largest), 0 on H100/H200. */
  readonly least: number;
  /** Most urgent level (numerically smallest), -5 on H100/H200. */
  readonly greatest: number;
}

/** The stream priority levels one QoS class may use. */
export interface QosPriorityBand {
  /** Its most urgent level. */
  readonly greatest: number;
  /** Its least urgent level. */
  readonly least: number;
  /** The level a task of the class gets without a priority hint. */
  readonly default: number;
}

/** A band per class. */
export type QosPriorityBands = Readonly<Record<QoSPolicy, QosPriorityBand>>;

/**
 * Splits `range` into three bands that never overlap while the range has at
 * least three levels: a third at the urgent end for GUARANTEED, a third at
 * the other end for BEST_EFFORT, the rest (the middle) for BURSTABLE. With
 * two levels GUARANTEED keeps the urgent one alone and the others share the
 * second, so latency-critical work never waits behind burstable work; with
 * one level every class shares it.
 */
export function priorityBands(range: PriorityRange): QosPriorityBands {
  const { least, greatest } = range;
  const levels = least - greatest + 1;
  if (levels === 1) {
    const only = band(greatest, greatest, greatest);
    return bands(only, only, only);
  }
  if (levels === 2) {
    const rest = band(least, least, least);
    return bands(band(greatest, greatest, greatest), rest, rest);
  }
  const third = Math.floor(levels / 3);
  const middleGreatest = greatest + third;
  const middleLeast = least - third;
  return bands(
    band(greatest, greatest + third - 1, greatest),
    band(
      middleGreatest,
      middleLeast,
      middleGreatest + Math.floor((middleLeast - middleGreatest) / 2),
    ),
    band(least - third + 1, least, least),
  );
}

function band(greatest: number, least: number, defaultLevel: number): QosPriorityBand {
  return Object.freeze({ greatest, least, default: defaultLevel });
}

function bands(
  guaranteed: QosPriorityBand,
  burstable: QosPriorityBand,
  bestEffort: QosPriorityBand,
): QosPriorityBands {
  return Object.freeze({
    [QoSPolicy.GUARANTEED]: guaranteed,
    [QoSPolicy.BURSTABLE]: burstable,
    [QoSPolicy.BEST_EFFORT]: bestEffort,
  });
}
