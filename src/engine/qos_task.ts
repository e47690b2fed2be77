/**
 * QosTaskMeta: what a task asks of the QoS policy evaluator (memory, an
 * optional compute share, a priority hint), validated once so evaluation
 * never has to.
 *
 * @module
 */

import {
  requireFraction,
  requireIntegerIn,
  requireNonEmptyString,
  requireNonNegativeInteger,
  requireObject,
  requireOneOf,
  requireOptions,
  requirePositiveInteger,
  show,
} from "../validate.ts";
import { QOS_POLICIES, QoSPolicy } from "./qos_policy.ts";

/** Everything that describes a task; see `QosTaskMeta`. */
export interface QosTaskInit {
  /** Unique key among the tasks admitted to one evaluator. */
  id: string;
  /** Human-readable name. */
  name: string;
  /** Its QoS class. */
  policy: QoSPolicy;
  /** Most bytes it may use. */
  memory: number;
  /** BURSTABLE only: bytes reserved on admission (default 0); at most `memory`. */
  base?: number;
  /** GUARANTEED and BURSTABLE only: compute share to reserve, in (0, 1]. Default: none. */
  bandwidth?: number;
  /**
   * A stream priority (device range; lower is more urgent) wished for. The
   * evaluator clamps it into the class's band, so it can reorder tasks of
   * one class but never lift a task above another class.
   */
  priority?: number;
}

/** Options of `QosTaskMeta.guaranteed()`. */
export interface GuaranteedTaskOptions {
  /** Compute share to reserve, in (0, 1]. Default: none reserved. */
  bandwidth?: number;
  /** Stream priority hint, clamped into the GUARANTEED band. */
  priority?: number;
}

/** Options of `QosTaskMeta.burstable()`. */
export interface BurstableTaskOptions {
  /** Bytes reserved on admission (default 0); at most `memory`. */
  base?: number;
  /** Compute share to reserve, in (0, 1]. Default: none reserved. */
  bandwidth?: number;
  /** Stream priority hint, clamped into the BURSTABLE band. */
  priority?: number;
}

/** Options of `QosTaskMeta.bestEffort()`. A best-effort task reserves nothing, bandwidth included. */
export interface BestEffortTaskOptions {
  /** Stream priority hint, clamped into the BEST_EFFORT band. */
  priority?: number;
}

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

/**
 * An immutable description of a task for `QosPolicyEvaluator`. Make one
 * with `QosTaskMeta.guaranteed()`, `.burstable()` or `.bestEffort()`, or
 * with `new QosTaskMeta({ ... })` when the class is only known at run time.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MB, QosTaskMeta, QoSPolicy } from "@gpusched/core";
 * const tts = QosTaskMeta.burstable("tts-1", "TTS", 512 * MB, { base: 128 * MB });
 * assert.equal(tts.policy, QoSPolicy.BURSTABLE);
 * assert.equal(tts.base, 128 * MB);
 * assert.equal(tts.bandwidth, 0); // no share asked, none reserved
 * ```
 */
export class QosTaskMeta {
  /** Unique key among the tasks admitted to one evaluator. */
  readonly id: string;
  /** Human-readable name. */
  readonly name: string;
  /** Its QoS class. */
  readonly policy: QoSPolicy;
  /** Most bytes it may use. */
  readonly memory: number;
  /**
   * Bytes reserved on admission: all of `memory` for GUARANTEED, the base
   * for BURSTABLE, 0 for BEST_EFFORT.
   */
  readonly base: number;
  /** Compute share reserved on admission; 0 when it asked for none. */
  readonly bandwidth: number;
  /** Stream priority hint, or undefined for the class's default level. */
  readonly priority: number | undefined;

  /**
   * Validates and freezes a task description.
   *
   * @param init the task; see `QosTaskInit`
   * @throws {TypeError | RangeError} naming the bad field and its value
   *
   * @example Choosing the class at run time
   * ```ts
   * import assert from "node:assert/strict";
   * import { GB, QosTaskMeta, QoSPolicy } from "@gpusched/core";
   * const task = new QosTaskMeta({
   *   id: "llm", name: "LLM", policy: QoSPolicy.GUARANTEED, memory: 4 * GB, bandwidth: 0.5,
   * });
   * assert.equal(task.base, 4 * GB); // a guaranteed task reserves all of it
   * ```
   */
  constructor(init: QosTaskInit) {
    const fields = requireObject(init, "init", "Cannot create a QoS task") as Partial<QosTaskInit>;
    const id = requireNonEmptyString(fields.id, "id", "Cannot create a QoS task");
    const doing = `Cannot create QoS task ${show(id)}`;
    const name = requireNonEmptyString(fields.name, "name", doing);
    const policy = requireOneOf(fields.policy, QOS_POLICIES, "policy", doing);
    const memory = requirePositiveInteger(fields.memory, "memory", doing);

    let base: number;
    if (policy === QoSPolicy.BURSTABLE) {
      base = fields.base === undefined ? 0 : requireNonNegativeInteger(fields.base, "base", doing);
      if (base > memory) {
        throw new RangeError(`${doing}: base must be at most memory (${memory}), got ${base}`);
      }
    } else if (fields.base !== undefined) {
      throw new RangeError(
        `${doing}: base must be left out unless the task is burstable, got ${show(fields.base)}`,
      );
    } else {
      base = policy === QoSPolicy.GUARANTEED ? memory : 0;
    }

    let bandwidth = 0;
    if (fields.bandwidth !== undefined) {
      // A best-effort task runs on what is spare; reserving a share for it
      // would take that share from the classes that were promised one.
      if (policy === QoSPolicy.BEST_EFFORT) {
        throw new RangeError(
          `${doing}: bandwidth must be left out for a best-effort task, got ${
            show(fields.bandwidth)
          }`,
        );
      }
      bandwidth = requireFraction(fields.bandwidth, "bandwidth", doing);
    }

    this.id = id;
    this.name = name;
    this.policy = policy;
    this.memory = memory;
    this.base = base;
    this.bandwidth = bandwidth;
    this.priority = fields.priority === undefined
      ? undefined
      : requireIntegerIn(fields.priority, INT32_MIN, INT32_MAX, "priority", doing);
    Object.freeze(this);
  }

  /**
   * A GUARANTEED task: all of `memory`, and the compute share if one is
   * asked for, is reserved on admission.
   *
   * @param id unique key among admitted tasks
   * @param name human-readable name
   * @param memory most bytes it may use, all reserved
   * @param options `bandwidth` share, `priority` hint
   * @returns the task
   * @throws {TypeError | RangeError} for bad arguments
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { MB, QosTaskMeta } from "@gpusched/core";
   * const task = QosTaskMeta.guaranteed("inference-1", "LLM Inference", 256 * MB, {
   *   bandwidth: 0.5,
   * });
   * assert.equal(task.base, 256 * MB);
   * assert.equal(task.bandwidth, 0.5);
   * ```
   */
  static guaranteed(
    id: string,
    name: string,
    memory: number,
    options?: GuaranteedTaskOptions,
  ): QosTaskMeta {
    return make(id, name, QoSPolicy.GUARANTEED, memory, options);
  }

  /**
   * A BURSTABLE task: `base` bytes (default 0) and the compute share, if
   * asked for, are reserved on admission; it may grow to `memory` out of
   * spare memory.
   *
   * @param id unique key among admitted tasks
   * @param name human-readable name
   * @param memory most bytes it may use
   * @param options `base` bytes to reserve, `bandwidth` share, `priority` hint
   * @returns the task
   * @throws {TypeError | RangeError} for bad arguments, `base > memory` included
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { GB, QosTaskMeta } from "@gpusched/core";
   * const task = QosTaskMeta.burstable("tts", "TTS", 2 * GB, { base: 1 * GB });
   * assert.equal(task.memory, 2 * GB);
   * assert.equal(task.base, 1 * GB);
   * ```
   */
  static burstable(
    id: string,
    name: string,
    memory: number,
    options?: BurstableTaskOptions,
  ): QosTaskMeta {
    return make(id, name, QoSPolicy.BURSTABLE, memory, options);
  }

  /**
   * A BEST_EFFORT task: reserves nothing and runs on spare memory only.
   *
   * @param id unique key among admitted tasks
   * @param name human-readable name
   * @param memory most bytes it may use, none reserved
   * @param options `priority` hint
   * @returns the task
   * @throws {TypeError | RangeError} for bad arguments
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { GB, QosTaskMeta } from "@gpusched/core";
   * const task = QosTaskMeta.bestEffort("bg", "Background", 1 * GB);
   * assert.equal(task.base, 0);
   * assert.equal(task.bandwidth, 0);
   * ```
   */
  static bestEffort(
    id: string,
    name: string,
    memory: number,
    options?: BestEffortTaskOptions,
  ): QosTaskMeta {
    return make(id, name, QoSPolicy.BEST_EFFORT, memory, options);
  }
}

function make(
  id: string,
  name: string,
  policy: QoSPolicy,
  memory: number,
  options: object | undefined,
): QosTaskMeta {
  const doing = typeof id === "string" && id.length > 0
    ? `Cannot create QoS task ${show(id)}`
    : "Cannot create a QoS task";
  // The spread keeps fields a factory does not take (bandwidth on a
  // best-effort task, base on a guaranteed one) so the constructor refuses
  // them instead of dropping them silently.
  return new QosTaskMeta({
    ...requireOptions<QosTaskInit>(options, doing),
    id,
    name,
    policy,
    memory,
  });
}
