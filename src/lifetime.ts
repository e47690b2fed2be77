/**
 * Lifetimes of native objects. A Stream or GpuEvent belongs to the
 * scheduler that made it; when that scheduler shuts down, libsched has
 * destroyed the native object, and its handle number may be reused by the
 * next scheduler, so every wrapper must refuse use afterwards.
 *
 * @module
 */

import { SchedulerError } from "./errors.ts";

/** Something a scheduler must invalidate at shutdown. */
export interface Owned {
  /** Marks the object dead without calling native code (libsched already freed it). */
  invalidate(): void;
}

/**
 * Whether an owner is still active, readable without holding the owner:
 * what a FinalizationRegistry's held value keeps. (A WeakRef to the owner
 * would do, but V8 keeps every WeakRef's target alive until the current job
 * ends, so a loop of initialize/shutdown that never waits for the event
 * loop kept every scheduler it made.)
 *
 * @example
 * ```ts
 * import { initialize, shutdown } from "@gpusched/core";
 * import assert from "node:assert/strict";
 * const liveness = initialize({ backend: "host" }).liveness;
 * shutdown();
 * assert.equal(liveness.active, false);
 * ```
 */
export interface Liveness {
  /** False once its owner shut down. */
  readonly active: boolean;
}

/** What a native wrapper needs from its scheduler. */
export interface Owner {
  /** False once shut down. */
  readonly active: boolean;
  /** The same flag as an object of its own, which holds no reference to the owner. */
  readonly liveness: Liveness;
  /** Throws when the scheduler has shut down. */
  assertActive(doing: string): void;
  /** Registers an object to invalidate at shutdown. */
  adopt(object: Owned): void;
  /** Forgets an object destroyed by its owner's user. */
  release(object: Owned): void;
}

/** The error for using an object after it or its scheduler is gone. */
export function destroyedError(what: string, doing: string): SchedulerError {
  return new SchedulerError(`Cannot ${doing}: ${what} was destroyed`);
}
