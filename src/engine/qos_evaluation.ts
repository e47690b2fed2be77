/**
 * QosEvaluation: the answer of `QosPolicyEvaluator.evaluate()`, with its
 * reason written only when someone reads it.
 *
 * @module
 */

import { QoSPolicy } from "./qos_policy.ts";
import type { QosTaskMeta } from "./qos_task.ts";

/**
 * What the evaluator decided: `"admit"` (runs with all it asked for),
 * `"throttle"` (BURSTABLE: runs, held to its base), `"queue"` (BEST_EFFORT:
 * wait for spare memory) or `"reject"` (cannot be honoured now).
 */
export type QosDecision = "admit" | "throttle" | "queue" | "reject";

/** Why a decision was made; picks the sentence `reason` writes. */
export const Cause = {
  FITS: 0,
  MEMORY: 1,
  BASE: 2,
  BANDWIDTH: 3,
  BURST: 4,
  SPARE: 5,
  TOO_LARGE: 6,
} as const;

/** One of the `Cause` values. */
export type Cause = (typeof Cause)[keyof typeof Cause];

/** Compute shares are counted in billionths, so decimal shares add up exactly. */
export const SHARE_UNITS = 1e9;

/**
 * The answer for one task at one moment. `admitted` is true for `"admit"`
 * and `"throttle"`. `priority` is the stream priority the task gets (or
 * would get) on this evaluator's device range.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GB, QosPolicyEvaluator, QosTaskMeta } from "@gpusched/core";
 * const evaluator = new QosPolicyEvaluator({ totalMemory: 1 * GB });
 * const r = evaluator.evaluate(QosTaskMeta.guaranteed("big", "Big", 2 * GB));
 * assert.equal(r.admitted, false);
 * assert.equal(r.decision, "reject");
 * assert.equal(
 *   r.reason,
 *   `Guaranteed task "big" is rejected: it needs ${2 * GB} bytes reserved, ${GB} bytes are unreserved`,
 * );
 * ```
 */
export class QosEvaluation {
  /** True when the task may run now (`"admit"` or `"throttle"`). */
  readonly admitted: boolean;
  /** The decision. */
  readonly decision: QosDecision;
  /** Stream priority within the device range (lower is more urgent). */
  readonly priority: number;
  /** The task evaluated. */
  readonly task: QosTaskMeta;
  readonly #cause: Cause;
  // What the request was measured against when it was decided, kept as
  // numbers so evaluate() formats nothing.
  readonly #memory: number;
  readonly #shareUnits: number;

  /** @internal Use `QosPolicyEvaluator.evaluate()`. */
  constructor(
    task: QosTaskMeta,
    decision: QosDecision,
    cause: Cause,
    priority: number,
    memory: number,
    shareUnits: number,
  ) {
    this.admitted = decision === "admit" || decision === "throttle";
    this.decision = decision;
    this.priority = priority;
    this.task = task;
    this.#cause = cause;
    this.#memory = memory;
    this.#shareUnits = shareUnits;
  }

  /**
   * A sentence saying what was decided and why, with the numbers compared:
   * e.g. `Best-effort task "bg" is queued: it needs 1073741824 bytes of
   * spare memory, 0 bytes are spare`. Written when read.
   */
  get reason(): string {
    const task = this.task;
    const verb = this.decision === "admit"
      ? "admitted"
      : this.decision === "throttle"
      ? `throttled to its base of ${task.base} bytes`
      : this.decision === "queue"
      ? "queued"
      : "rejected";
    return `${CAPITALIZED[task.policy]} task ${JSON.stringify(task.id)} is ${verb}: ${this.detail}`;
  }

  /** @internal The part of `reason` after the colon, shared with AdmissionError messages. */
  get detail(): string {
    const task = this.task;
    const memory = this.#memory;
    switch (this.#cause) {
      case Cause.FITS:
        if (task.policy === QoSPolicy.BEST_EFFORT) {
          return `its ${task.memory} bytes fit in spare memory`;
        }
        if (task.policy === QoSPolicy.BURSTABLE) {
          return `its base of ${task.base} bytes${
            shareText(task)
          } fits, and so does its burst to ${task.memory} bytes`;
        }
        return `its ${task.memory} bytes${shareText(task)} fit beside every reservation`;
      case Cause.MEMORY:
        return `it needs ${task.memory} bytes reserved, ${memory} bytes are unreserved`;
      case Cause.BASE:
        return `it needs its base of ${task.base} bytes reserved, ${memory} bytes are unreserved`;
      case Cause.BANDWIDTH:
        return `it needs a bandwidth share of ${task.bandwidth} reserved, ${
          this.#shareUnits / SHARE_UNITS
        } is unreserved`;
      case Cause.BURST:
        return `bursting to ${task.memory} bytes needs that much spare memory, ${memory} bytes are spare`;
      case Cause.SPARE:
        return `it needs ${task.memory} bytes of spare memory, ${memory} bytes are spare`;
      default: // Cause.TOO_LARGE
        return `it needs ${task.memory} bytes, more than the ${memory} bytes in all`;
    }
  }

  /** The plain `{ admitted, decision, priority, reason }` shape, for logs and JSON. */
  toJSON(): { admitted: boolean; decision: QosDecision; priority: number; reason: string } {
    return {
      admitted: this.admitted,
      decision: this.decision,
      priority: this.priority,
      reason: this.reason,
    };
  }
}

/** How a class is named inside a message, e.g. `"best-effort"`. */
export const LOWER: Readonly<Record<QoSPolicy, string>> = Object.freeze({
  [QoSPolicy.GUARANTEED]: "guaranteed",
  [QoSPolicy.BURSTABLE]: "burstable",
  [QoSPolicy.BEST_EFFORT]: "best-effort",
});

const CAPITALIZED: Readonly<Record<QoSPolicy, string>> = Object.freeze({
  [QoSPolicy.GUARANTEED]: "Guaranteed",
  [QoSPolicy.BURSTABLE]: "Burstable",
  [QoSPolicy.BEST_EFFORT]: "Best-effort",
});

function shareText(task: QosTaskMeta): string {
  return task.bandwidth === 0 ? "" : ` and bandwidth share of ${task.bandwidth}`;
}
