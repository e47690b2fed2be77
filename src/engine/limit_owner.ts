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
  #claimed = 0;
  #reclaimer: Reclaimer | undefined;

  /** An account of `limit` bytes, none claimed. */
  constructor(limit: number) {
    this.limit = limit;
  }

  /** Bytes claimed now. */
  get claimed(): number {
    return this.#claimed;
  }

  /** Bytes nobody claims. */
  get spare(): number {
    return this.limit - this.#claimed;
  }

  /** Claims `bytes` if they fit under the limit; true when claimed. Runs no user code. */
  tryClaim(bytes: number): boolean {
    if (bytes > this.limit - this.#claimed) return false;
    this.#claimed += bytes;
    return true;
  }

  /** Gives back `bytes` claimed earlier. */
  release(bytes: number): void {
    this.#claimed -= bytes;
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

const owners = new WeakMap<Scheduler, Map<number, LimitOwner>>();

/**
 * @internal The account of one device of the scheduler (default: its
 * device), of that device's `memoryLimits` entry, made on first use. One per device: every
 * allocation on that device, by a context or a standalone pool, claims here.
 */
export function limitOwnerOf(
  scheduler: Scheduler,
  device: number = scheduler.device.id,
  limit: number = scheduler.memoryLimits[device]!,
): LimitOwner {
  let devices = owners.get(scheduler);
  if (!devices) {
    devices = new Map();
    owners.set(scheduler, devices);
  }
  let owner = devices.get(device);
  if (!owner) {
    owner = new LimitOwner(limit);
    devices.set(device, owner);
  }
  return owner;
}
