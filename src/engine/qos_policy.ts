/**
 * QoS classes: what a context or task is promised when memory and compute
 * run short.
 *
 * @module
 */

/**
 * The three QoS classes, as string constants (the values are what
 * `QosTaskMeta.policy` and context options hold).
 *
 * - `GUARANTEED`: all of its memory (and any compute share it asks for) is
 *   reserved on admission; most urgent stream priority.
 * - `BURSTABLE`: its base is reserved; it may grow to its maximum out of
 *   spare memory; middle stream priority.
 * - `BEST_EFFORT`: nothing reserved; it runs on spare memory only; least
 *   urgent stream priority.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { QoSPolicy } from "@gpusched/core";
 * const policy: QoSPolicy = QoSPolicy.BURSTABLE;
 * assert.equal(policy, "burstable");
 * ```
 */
export const QoSPolicy: {
  readonly GUARANTEED: "guaranteed";
  readonly BURSTABLE: "burstable";
  readonly BEST_EFFORT: "best_effort";
} = Object.freeze(
  {
    GUARANTEED: "guaranteed",
    BURSTABLE: "burstable",
    BEST_EFFORT: "best_effort",
  } as const,
);

/** One of the `QoSPolicy` values: `"guaranteed" | "burstable" | "best_effort"`. */
export type QoSPolicy = (typeof QoSPolicy)[keyof typeof QoSPolicy];

/** Every QoS class, most urgent first. */
export const QOS_POLICIES: readonly QoSPolicy[] = Object.freeze([
  QoSPolicy.GUARANTEED,
  QoSPolicy.BURSTABLE,
  QoSPolicy.BEST_EFFORT,
]);
