/**
 * QosPolicyEvaluator: admission control for QoS classes over one device's
 * memory and compute, and the class-to-stream-priority mapping.
 *
 * @module
 */

import { AdmissionError } from "../errors.ts";
import {
  requireFraction,
  requireIntegerIn,
  requireObject,
  requireOneOf,
  requireOptions,
  requirePositiveInteger,
  show,
} from "../validate.ts";
import { Cause, LOWER, type QosDecision, QosEvaluation, SHARE_UNITS } from "./qos_evaluation.ts";
import { QOS_POLICIES, QoSPolicy } from "./qos_policy.ts";
import {
  priorityBands,
  type PriorityRange,
  type QosPriorityBand,
  type QosPriorityBands,
} from "./qos_priority.ts";
import { QosTaskMeta } from "./qos_task.ts";

/** Options of `new QosPolicyEvaluator()`. */
export interface QosEvaluatorOptions {
  /** Bytes of device memory the evaluator hands out reservations from. */
  totalMemory: number;
  /** Compute share it hands out, in (0, 1] (default 1: the whole device). */
  totalBandwidth?: number;
  /**
   * The device's stream priority range (default `{ least: 0, greatest: -5 }`,
   * the six levels of H100/H200); pass `DeviceInfo.priorityRange`.
   */
  priorityRange?: PriorityRange;
}

/** An admitted task and what it holds. */
export interface QosReservation {
  /** The task. */
  readonly task: QosTaskMeta;
  /** Bytes reserved: all of its memory for GUARANTEED, its base for BURSTABLE, 0 for BEST_EFFORT. */
  readonly memory: number;
  /** Compute share reserved; 0 when it asked for none. */
  readonly bandwidth: number;
  /** Its stream priority. */
  readonly priority: number;
  /** `"throttle"` when a BURSTABLE task could not burst when it was admitted. */
  readonly decision: Extract<QosDecision, "admit" | "throttle">;
}

const CREATE = "Cannot create a QoS policy evaluator";
const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;
const DEFAULT_RANGE: PriorityRange = Object.freeze({ least: 0, greatest: -5 });

/**
 * Decides whether tasks of each QoS class may run, reserves what admitted
 * tasks were promised, and gives each a stream priority.
 *
 * Reservations are the memory and compute shares of admitted tasks: all of
 * a GUARANTEED task's memory, a BURSTABLE task's base, and the compute share
 * of either when it asked for one. A task that asks for no share reserves
 * none. **Spare memory** is `totalMemory` minus every reservation
 * (`availableMemory`); what BEST_EFFORT tasks and BURSTABLE bursts use is
 * not a reservation and does not lower it. Decisions, against the
 * reservations at that moment:
 *
 * - GUARANTEED: `"admit"` when its memory fits in spare memory and its share
 *   in the unreserved share, else `"reject"`.
 * - BURSTABLE: `"reject"` unless its base and its share fit; then
 *   `"throttle"` (runs, held to its base) when its whole memory does not fit
 *   in spare memory, else `"admit"`.
 * - BEST_EFFORT: `"admit"` when its memory fits in spare memory, else
 *   `"queue"` (spare memory returns as reservations are released), or
 *   `"reject"` when it exceeds `totalMemory` and could never run.
 *
 * Priorities: the device range is split into three bands (see
 * `priorityBand()`). Without a hint a GUARANTEED task gets the range's most
 * urgent level, a BEST_EFFORT task its least urgent, a BURSTABLE task a
 * middle level; a task's `priority` hint is clamped into its class's band.
 * With the default range (0 to -5): GUARANTEED -5..-4 (default -5),
 * BURSTABLE -3..-2 (default -3), BEST_EFFORT -1..0 (default 0).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AdmissionError, GB, QosPolicyEvaluator, QosTaskMeta } from "@gpusched/core";
 * const evaluator = new QosPolicyEvaluator({ totalMemory: 8 * GB, totalBandwidth: 1.0 });
 * const llm = QosTaskMeta.guaranteed("llm", "LLM", 6 * GB, { bandwidth: 0.5 });
 * assert.equal(evaluator.evaluate(llm).decision, "admit");
 * evaluator.admit(llm);
 * const tts = QosTaskMeta.burstable("tts", "TTS", 4 * GB, { base: 1 * GB, bandwidth: 0.5 });
 * const r = evaluator.admit(tts); // its base fits, its burst does not
 * assert.equal(r.decision, "throttle");
 * assert.equal(r.priority, -3);
 * assert.throws(
 *   () => evaluator.admit(QosTaskMeta.guaranteed("vision", "Vision", 2 * GB)),
 *   AdmissionError,
 * );
 * evaluator.release("llm");
 * assert.equal(evaluator.availableMemory, 7 * GB);
 * assert.equal(evaluator.availableBandwidth, 0.5);
 * ```
 */
export class QosPolicyEvaluator {
  /** Bytes it hands out reservations from. */
  readonly totalMemory: number;
  /** Compute share it hands out, in (0, 1]. */
  readonly totalBandwidth: number;
  /** The stream priority range its priorities fall in. */
  readonly priorityRange: PriorityRange;
  readonly #totalUnits: number;
  readonly #bands: QosPriorityBands;
  #reservedMemory = 0;
  #reservedUnits = 0;
  readonly #admitted = new Map<string, QosReservation>();
  // The bands again as plain fields: evaluate() reads these on every call.
  readonly #guaranteedGreatest: number;
  readonly #guaranteedLeast: number;
  readonly #guaranteedDefault: number;
  readonly #burstableGreatest: number;
  readonly #burstableLeast: number;
  readonly #burstableDefault: number;
  readonly #bestEffortGreatest: number;
  readonly #bestEffortLeast: number;
  readonly #bestEffortDefault: number;

  /**
   * An evaluator with nothing reserved yet.
   *
   * @param options `totalMemory` (required), `totalBandwidth`, `priorityRange`
   * @throws {TypeError | RangeError} naming the bad option and its value
   *
   * @example Using the device's real priority range
   * ```ts
   * import assert from "node:assert/strict";
   * import { GB, QosPolicyEvaluator } from "@gpusched/core";
   * const evaluator = new QosPolicyEvaluator({
   *   totalMemory: 80 * GB,
   *   priorityRange: { least: 0, greatest: -2 },
   * });
   * assert.equal(evaluator.priorityBand("guaranteed").default, -2);
   * ```
   */
  constructor(options: QosEvaluatorOptions) {
    const opts = requireOptions<QosEvaluatorOptions>(options, CREATE);
    this.totalMemory = requirePositiveInteger(opts.totalMemory, "totalMemory", CREATE);
    this.totalBandwidth = opts.totalBandwidth === undefined
      ? 1
      : requireFraction(opts.totalBandwidth, "totalBandwidth", CREATE);
    this.#totalUnits = Math.round(this.totalBandwidth * SHARE_UNITS);
    this.priorityRange = opts.priorityRange === undefined
      ? DEFAULT_RANGE
      : requireRange(opts.priorityRange);

    const bands = priorityBands(this.priorityRange);
    this.#bands = bands;
    this.#guaranteedGreatest = bands.guaranteed.greatest;
    this.#guaranteedLeast = bands.guaranteed.least;
    this.#guaranteedDefault = bands.guaranteed.default;
    this.#burstableGreatest = bands.burstable.greatest;
    this.#burstableLeast = bands.burstable.least;
    this.#burstableDefault = bands.burstable.default;
    this.#bestEffortGreatest = bands.best_effort.greatest;
    this.#bestEffortLeast = bands.best_effort.least;
    this.#bestEffortDefault = bands.best_effort.default;
  }

  /** Bytes reserved by admitted tasks. */
  get reservedMemory(): number {
    return this.#reservedMemory;
  }

  /** Spare memory: `totalMemory` minus every reservation. */
  get availableMemory(): number {
    return this.totalMemory - this.#reservedMemory;
  }

  /** Compute share reserved by admitted tasks. */
  get reservedBandwidth(): number {
    return this.#reservedUnits / SHARE_UNITS;
  }

  /** Compute share not reserved: `totalBandwidth` minus every reserved share. */
  get availableBandwidth(): number {
    return (this.#totalUnits - this.#reservedUnits) / SHARE_UNITS;
  }

  /**
   * Decides what would happen to `task` now, changing nothing.
   *
   * @param task the task
   * @returns `{ admitted, decision, priority, reason }`
   * @throws {TypeError} when `task` is not a `QosTaskMeta`
   * @throws {RangeError} when its bandwidth exceeds `totalBandwidth`
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { MB, QosPolicyEvaluator, QosTaskMeta } from "@gpusched/core";
   * const evaluator = new QosPolicyEvaluator({ totalMemory: 256 * MB });
   * const r = evaluator.evaluate(QosTaskMeta.bestEffort("bg", "Background", 512 * MB));
   * assert.equal(r.decision, "reject");
   * assert.equal(r.priority, 0);
   * assert.equal(evaluator.reservedMemory, 0);
   * ```
   */
  evaluate(task: QosTaskMeta): QosEvaluation {
    return this.#evaluate(task, "Cannot evaluate");
  }

  /**
   * Admits `task` and reserves what its class is promised (see the class
   * documentation). A throttled BURSTABLE task is admitted too.
   *
   * @param task the task
   * @returns the evaluation it was admitted on (`"admit"` or `"throttle"`)
   * @throws {AdmissionError} when the decision is `"reject"` or `"queue"`; the message gives the reason
   * @throws {RangeError} when a task with the same id is admitted already, or its bandwidth exceeds `totalBandwidth`
   * @throws {TypeError} when `task` is not a `QosTaskMeta`
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { GB, QosPolicyEvaluator, QosTaskMeta } from "@gpusched/core";
   * const evaluator = new QosPolicyEvaluator({ totalMemory: 8 * GB });
   * evaluator.admit(QosTaskMeta.guaranteed("a", "A", 2 * GB, { bandwidth: 0.5 }));
   * evaluator.admit(QosTaskMeta.guaranteed("b", "B", 2 * GB, { bandwidth: 0.5 }));
   * assert.equal(evaluator.availableMemory, 4 * GB);
   * assert.equal(evaluator.availableBandwidth, 0);
   * ```
   */
  admit(task: QosTaskMeta): QosEvaluation {
    const result = this.#evaluate(task, "Cannot admit");
    if (this.#admitted.has(task.id)) {
      throw new RangeError(
        `Cannot admit QoS task ${show(task.id)}: id must not belong to an admitted task, got ${
          show(task.id)
        }`,
      );
    }
    if (!result.admitted) {
      throw new AdmissionError(
        `Cannot admit ${LOWER[task.policy]} task ${show(task.id)}: ${result.detail}`,
      );
    }
    this.#reservedMemory += task.base;
    this.#reservedUnits += Math.round(task.bandwidth * SHARE_UNITS);
    // Not frozen (that would double the cost of admission): release() reads
    // the frozen task, so a caller writing to this record cannot skew the
    // accounting.
    this.#admitted.set(task.id, {
      task,
      memory: task.base,
      bandwidth: task.bandwidth,
      priority: result.priority,
      decision: result.decision as QosReservation["decision"],
    });
    return result;
  }

  /**
   * Releases an admitted task, returning its memory and compute share.
   *
   * @param id the task's id
   * @returns what it held
   * @throws {RangeError} when no admitted task has that id (a second release
   * of one task included: a release the caller did not mean is a bug worth
   * hearing about; check `has(id)` first where that is expected)
   * @throws {TypeError} when `id` is not a string
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { GB, QosPolicyEvaluator, QosTaskMeta } from "@gpusched/core";
   * const evaluator = new QosPolicyEvaluator({ totalMemory: 8 * GB });
   * evaluator.admit(QosTaskMeta.burstable("tts", "TTS", 2 * GB, { base: 1 * GB }));
   * const held = evaluator.release("tts");
   * assert.equal(held.memory, 1 * GB);
   * assert.equal(evaluator.availableMemory, 8 * GB);
   * ```
   */
  release(id: string): QosReservation {
    const doing = "Cannot release a QoS task";
    const held = this.#admitted.get(requireString(id, doing));
    if (held === undefined) {
      throw new RangeError(`${doing}: id must belong to an admitted task, got ${show(id)}`);
    }
    this.#admitted.delete(id);
    this.#reservedMemory -= held.task.base;
    this.#reservedUnits -= Math.round(held.task.bandwidth * SHARE_UNITS);
    return held;
  }

  /**
   * Whether a task with this id is admitted.
   *
   * @param id the task's id
   * @throws {TypeError} when `id` is not a string
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { MB, QosPolicyEvaluator, QosTaskMeta } from "@gpusched/core";
   * const evaluator = new QosPolicyEvaluator({ totalMemory: 64 * MB });
   * evaluator.admit(QosTaskMeta.bestEffort("bg", "Background", 32 * MB));
   * assert.equal(evaluator.has("bg"), true);
   * assert.equal(evaluator.has("llm"), false);
   * ```
   */
  has(id: string): boolean {
    return this.#admitted.has(requireString(id, "Cannot look up a QoS task"));
  }

  /**
   * What an admitted task holds, or undefined when none has this id.
   *
   * @param id the task's id
   * @throws {TypeError} when `id` is not a string
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { MB, QosPolicyEvaluator, QosTaskMeta } from "@gpusched/core";
   * const evaluator = new QosPolicyEvaluator({ totalMemory: 64 * MB });
   * evaluator.admit(QosTaskMeta.guaranteed("llm", "LLM", 32 * MB, { priority: -4 }));
   * assert.equal(evaluator.reservation("llm")?.priority, -4);
   * ```
   */
  reservation(id: string): QosReservation | undefined {
    return this.#admitted.get(requireString(id, "Cannot look up a QoS task"));
  }

  /**
   * Every admitted task with what it holds, in admission order.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { MB, QosPolicyEvaluator, QosTaskMeta } from "@gpusched/core";
   * const evaluator = new QosPolicyEvaluator({ totalMemory: 64 * MB });
   * evaluator.admit(QosTaskMeta.guaranteed("llm", "LLM", 32 * MB));
   * evaluator.admit(QosTaskMeta.bestEffort("bg", "Background", 16 * MB));
   * assert.deepEqual(evaluator.reservations().map((r) => r.memory), [32 * MB, 0]);
   * ```
   */
  reservations(): QosReservation[] {
    return [...this.#admitted.values()];
  }

  /**
   * The stream priority levels tasks of `policy` get on this evaluator's
   * range, and the level they get without a hint.
   *
   * @param policy a `QoSPolicy` value
   * @throws {TypeError | RangeError} when `policy` is not one
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { MB, QoSPolicy, QosPolicyEvaluator } from "@gpusched/core";
   * const evaluator = new QosPolicyEvaluator({ totalMemory: 64 * MB });
   * const band = evaluator.priorityBand(QoSPolicy.BURSTABLE);
   * assert.deepEqual(band, { greatest: -3, least: -2, default: -3 });
   * ```
   */
  priorityBand(policy: QoSPolicy): QosPriorityBand {
    return this.#bands[requireOneOf(policy, QOS_POLICIES, "policy", "Cannot read a priority band")];
  }

  #evaluate(task: QosTaskMeta, doing: string): QosEvaluation {
    if (!(task instanceof QosTaskMeta)) {
      throw new TypeError(`${doing} a QoS task: task must be a QosTaskMeta, got ${show(task)}`);
    }
    const units = Math.round(task.bandwidth * SHARE_UNITS);
    if (units > this.#totalUnits) {
      throw new RangeError(
        `${doing} QoS task ${
          show(task.id)
        }: bandwidth must be at most totalBandwidth (${this.totalBandwidth}), got ${task.bandwidth}`,
      );
    }
    const spare = this.totalMemory - this.#reservedMemory;
    const spareUnits = this.#totalUnits - this.#reservedUnits;
    const hint = task.priority;
    let greatest: number, least: number, priority: number;
    let decision: QosDecision = "admit";
    let cause: Cause = Cause.FITS;
    let measured = spare;

    switch (task.policy) {
      case QoSPolicy.GUARANTEED:
        greatest = this.#guaranteedGreatest;
        least = this.#guaranteedLeast;
        priority = this.#guaranteedDefault;
        if (task.memory > spare) {
          decision = "reject";
          cause = Cause.MEMORY;
        } else if (units > spareUnits) {
          decision = "reject";
          cause = Cause.BANDWIDTH;
        }
        break;
      case QoSPolicy.BURSTABLE:
        greatest = this.#burstableGreatest;
        least = this.#burstableLeast;
        priority = this.#burstableDefault;
        if (task.base > spare) {
          decision = "reject";
          cause = Cause.BASE;
        } else if (units > spareUnits) {
          decision = "reject";
          cause = Cause.BANDWIDTH;
        } else if (task.memory > spare) {
          decision = "throttle";
          cause = Cause.BURST;
        }
        break;
      default:
        greatest = this.#bestEffortGreatest;
        least = this.#bestEffortLeast;
        priority = this.#bestEffortDefault;
        if (task.memory > this.totalMemory) {
          decision = "reject";
          cause = Cause.TOO_LARGE;
          measured = this.totalMemory;
        } else if (task.memory > spare) {
          decision = "queue";
          cause = Cause.SPARE;
        }
    }
    return new QosEvaluation(
      task,
      decision,
      cause,
      clamp(hint, greatest, least, priority),
      measured,
      spareUnits,
    );
  }
}

function clamp(
  hint: number | undefined,
  greatest: number,
  least: number,
  fallback: number,
): number {
  if (hint === undefined) return fallback;
  return hint < greatest ? greatest : hint > least ? least : hint;
}

function requireString(id: unknown, doing: string): string {
  if (typeof id !== "string") {
    throw new TypeError(`${doing}: id must be a string, got ${show(id)}`);
  }
  return id;
}

function requireRange(value: unknown): PriorityRange {
  const range = requireObject(value, "priorityRange", CREATE) as Partial<PriorityRange>;
  const least = requireIntegerIn(range.least, INT32_MIN, INT32_MAX, "priorityRange.least", CREATE);
  const greatest = requireIntegerIn(
    range.greatest,
    INT32_MIN,
    INT32_MAX,
    "priorityRange.greatest",
    CREATE,
  );
  // CUDA counts urgency downwards, so the most urgent level is the smallest.
  if (greatest > least) {
    throw new RangeError(
      `${CREATE}: priorityRange.greatest must be at most priorityRange.least (${least}), got ${greatest}`,
    );
  }
  return Object.freeze({ least, greatest });
}
