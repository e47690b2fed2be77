/**
 * Error classes that callers are expected to catch. Argument mistakes use
 * the built-in `TypeError` and `RangeError` instead.
 *
 * @module
 */

import type { ExecutionContext } from "./context/execution_context.ts";
import { statusName } from "./native/status_codes.ts";

/**
 * Base class of every error gpusched raises on purpose.
 *
 * @example Catching any scheduler failure
 * ```ts
 * import { SchedulerError } from "@gpusched/core";
 * import assert from "node:assert/strict";
 * const err = new SchedulerError("Scheduler is not initialized: call initialize() first");
 * assert.ok(err instanceof Error && err.name === "SchedulerError");
 * ```
 */
export class SchedulerError extends Error {
  /** Always `"SchedulerError"`. */
  override name = "SchedulerError";
}

/**
 * A reservation (context, partition, QoS task) could not be admitted.
 *
 * @example
 * ```ts
 * import { AdmissionError, SchedulerError } from "@gpusched/core";
 * import assert from "node:assert/strict";
 * const err = new AdmissionError("Cannot reserve 4 GiB: 1 GiB unreserved");
 * assert.ok(err instanceof SchedulerError && err.name === "AdmissionError");
 * ```
 */
export class AdmissionError extends SchedulerError {
  /** Always `"AdmissionError"`. */
  override name = "AdmissionError";
}

/**
 * Who asked for an allocation that a standalone `MemoryPool` refused: the
 * pool, by its name (a pool belongs to no context).
 *
 * @example
 * ```ts
 * import { type PoolAsker, VramBudgetExceededError } from "@gpusched/core";
 * import assert from "node:assert/strict";
 * const asker: PoolAsker = { poolName: "kv" };
 * assert.match(new VramBudgetExceededError(asker, 2048, 1024).message, /^Pool "kv"/);
 * ```
 */
export interface PoolAsker {
  /** The pool's name (`MemoryPool.name`). */
  readonly poolName: string;
}

/**
 * An allocation would exceed its context's budget or what the device can give it.
 *
 * `context` is the ExecutionContext that asked. A standalone `MemoryPool`
 * belongs to no context: its refusals have `context` undefined, the pool's
 * name in `contextName`, and a message naming it as a pool (`Pool "kv"
 * cannot allocate ...`) where a context's says `Context "llm" ...`.
 * `available < requested` always. A memory-pressure handler that threw, or
 * returned something other than a boolean (a `TypeError`), is the `cause`.
 *
 * @example
 * ```ts
 * import { VramBudgetExceededError } from "@gpusched/core";
 * import assert from "node:assert/strict";
 * const err = new VramBudgetExceededError("llm", 2048, 1024);
 * assert.ok(err.requested === 2048 && err.available === 1024 && err.contextName === "llm");
 * assert.match(err.message, /^Context "llm"/);
 * ```
 */
export class VramBudgetExceededError extends SchedulerError {
  /** Always `"VramBudgetExceededError"`. */
  override name = "VramBudgetExceededError";
  /**
   * The context that asked; undefined when a standalone `MemoryPool` asked
   * (it belongs to no context: its name is in `contextName`).
   */
  readonly context: ExecutionContext | undefined;
  /** Name of the context, or of the standalone pool, that asked. */
  readonly contextName: string;
  /** Bytes asked for. */
  readonly requested: number;
  /** Bytes that could have been given: always below `requested`. */
  readonly available: number;

  /**
   * An error for `context` asking `requested` bytes when `available` could be given.
   *
   * @param context the context that asked (or its name), or `{ poolName: name }` for a standalone pool
   * @param requested bytes asked for
   * @param available bytes that could have been given (kept below `requested`)
   * @param options standard error options (`cause`)
   */
  constructor(
    context: ExecutionContext | string | PoolAsker,
    requested: number,
    available: number,
    options?: ErrorOptions,
  ) {
    const pool = typeof context === "object" && "poolName" in context;
    const name = typeof context === "string" ? context : pool ? context.poolName : context.name;
    // Refused means fewer than `requested` bytes could be given, whatever a layer estimated.
    const shown = Math.max(0, Math.min(available, requested - 1));
    super(
      `${
        pool ? "Pool" : "Context"
      } "${name}" cannot allocate ${requested} bytes: ${shown} bytes available`,
      options,
    );
    this.context = typeof context === "string" || pool ? undefined : context;
    this.contextName = name;
    this.requested = requested;
    this.available = shown;
  }
}

/**
 * `alloc()` (or another session-scoped call) ran outside any context session.
 *
 * @example
 * ```ts
 * import { NoActiveSessionError } from "@gpusched/core";
 * import assert from "node:assert/strict";
 * assert.ok(new NoActiveSessionError("No active session").name === "NoActiveSessionError");
 * ```
 */
export class NoActiveSessionError extends SchedulerError {
  /** Always `"NoActiveSessionError"`. */
  override name = "NoActiveSessionError";
}

/**
 * A failure reported by libsched: the CUDA runtime's or the host backend's
 * message, with libsched's status code.
 *
 * @example
 * ```ts
 * import { NativeError } from "@gpusched/core";
 * import assert from "node:assert/strict";
 * const err = new NativeError(3, "cudaMallocAsync of 64 bytes failed: out of memory");
 * assert.ok(err.code === 3 && err.codeName === "OUT_OF_MEMORY");
 * ```
 */
export class NativeError extends SchedulerError {
  /** Always `"NativeError"`. */
  override name = "NativeError";
  /** libsched status code (`sched_status` in sched.h). */
  readonly code: number;

  /**
   * A failure of libsched, with its status code and message.
   *
   * @param code libsched status code
   * @param message the backend's message
   * @param options standard error options (`cause`)
   */
  constructor(code: number, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }

  /** The status code's name, e.g. `"OUT_OF_MEMORY"`. */
  get codeName(): string {
    return statusName(this.code);
  }
}
