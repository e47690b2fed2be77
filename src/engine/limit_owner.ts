/**
 * The limit owner: the one account of a device's managed bytes. Every byte
 * the scheduler hands out on the device — context pools (their claims,
 * reservations included) and standalone `MemoryPool`s alike — is claimed
 * here first, so Σ claims ≤ limit holds by construction and no layer can
 * take bytes another was promised.
 *
 * `tryClaim` never runs user code: callers decide, call back into user code
 * (pressure handlers) if they must, and then try again from scratch, so no
 * decision made before a callback survives it.
 *
 * @module
 */

import type { Scheduler } from "../scheduler.ts";

/**
 * Frees claims of others (cached bytes, never live data) so `bytes` more can
 * be claimed; runs no user code. The context manager installs one.
 */
export type Reclaimer = (bytes: number) => void;

/**
 * The byte account of one device.
 *
 * @example
 * ```ts
 * import { LimitOwner } from "./limit_owner.ts";
 * import assert from "node:assert/strict";
 * const owner = new LimitOwner(100);
 * assert.ok(owner.tryClaim(60));
 * assert.ok(!owner.tryClaim(50)); // would pass the limit: refused, nothing claimed
 * owner.release(60);
 * assert.equal(owner.spare, 100);
 * ```
 */
export class LimitOwner {
  /** Bytes this account may hand out in all. */
  readonly limit: number;
  /**
   * The account this one is part of (a partition's within its device's),
   * or undefined: every claim here is a claim there too.
   */
  readonly parent: LimitOwner | undefined;
  #claimed = 0;
  #reclaimer: Reclaimer | undefined;

  /**
   * An account of `limit` bytes, none claimed; with `parent`, a part of
   * that account (a partition's memory limit within its device's).
   *
   * @example A partition's account within its device's
   * ```ts
   * import { LimitOwner } from "./limit_owner.ts";
   * import assert from "node:assert/strict";
   * const device = new LimitOwner(100);
   * const partition = new LimitOwner(40, device);
   * assert.ok(!partition.tryClaim(50)); // past the partition's limit
   * assert.ok(partition.tryClaim(30));
   * assert.equal(device.claimed, 30); // claimed from both
   * assert.equal(partition.spare, 10);
   * ```
   */
  constructor(limit: number, parent?: LimitOwner) {
    this.limit = limit;
    this.parent = parent;
  }

  /** Bytes claimed now. */
  get claimed(): number {
    return this.#claimed;
  }

  /** Bytes that could be claimed now: under this limit and every enclosing one. */
  get spare(): number {
    const own = this.limit - this.#claimed;
    return this.parent === undefined ? own : Math.min(own, this.parent.spare);
  }

  /**
   * Claims `bytes` if they fit under the limit (and the parent's); true
   * when claimed. Runs no user code.
   */
  tryClaim(bytes: number): boolean {
    if (bytes > this.limit - this.#claimed) return false;
    if (this.parent !== undefined && !this.parent.tryClaim(bytes)) return false;
    this.#claimed += bytes;
    return true;
  }

  /** Gives back `bytes` claimed earlier (here and in the parent). */
  release(bytes: number): void {
    this.#claimed -= bytes;
    this.parent?.release(bytes);
  }

  /** @internal Sets who frees others' caches for claimants without a reclaimer of their own. */
  setReclaimer(reclaimer: Reclaimer): void {
    this.#reclaimer = reclaimer;
  }

  /**
   * Claims `bytes`, first asking the reclaimer to release others' caches
   * when they do not fit; true when claimed. Runs no user code.
   */
  claimReclaiming(bytes: number): boolean {
    if (this.tryClaim(bytes)) return true;
    this.#reclaimer?.(bytes - this.spare);
    return this.tryClaim(bytes);
  }
}

/**
 * @internal The account of one device of `scheduler` (default: its
 * device): the one that device owns, `scheduler.deviceAt(device).limitOwner`.
 * Every allocation on that device, by a context or a standalone pool,
 * claims there.
 */
export function limitOwnerOf(
  scheduler: Scheduler,
  device: number = scheduler.device.id,
): LimitOwner {
  return scheduler.deviceAt(device).limitOwner;
}
