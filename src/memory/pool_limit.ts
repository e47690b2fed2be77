/**
 * The pool's limit: every byte the pool holds on the device (live blocks
 * and cache) is claimed here, under the pool's `quota` and from its budget,
 * before the device source commits it, and given back when the source
 * decommits it. The budget is a context's account (its manager's rules; a
 * context in a partition with a memory limit claims through the partition's
 * LimitOwner, a part of the device's) or, for a standalone pool, the
 * device's LimitOwner itself (`limitOwnerBudget`): either way the bytes end
 * up claimed in the one LimitOwner of the device, the single place bytes
 * are claimed.
 *
 * Claims run no user code; only `PoolBudget.pressure` may, and the pool
 * re-validates everything after it (RoomMaker).
 *
 * @module
 */

import type { LimitOwner } from "../engine/limit_owner.ts";

/**
 * The account a pool claims device bytes from: a context's share of the
 * device (its manager's rules), or, for a standalone pool, the device's
 * limit owner directly. Only `pressure` may run user code; the pool
 * re-validates everything after it, so no decision survives a callback.
 * @internal
 */
export interface PoolBudget {
  /** Claims `bytes` more for the pool if they fit now; true when claimed. Runs no user code. */
  tryRequest(bytes: number): boolean;
  /** Called after the pool gave `bytes` of device memory back. */
  returned(bytes: number): void;
  /**
   * The pool cannot fit `bytes` without evicting or reclaiming: asks the
   * memory-pressure handlers (user code: anything may change meanwhile);
   * throws to refuse. Nothing is evicted unless it returns.
   */
  pressure(bytes: number, available: number): void;
  /** After `pressure` allowed it: frees others' claims so `bytes` more may be claimed. No user code. */
  reclaim(bytes: number): void;
  /** Bytes the pool could claim now without evicting anything (others' caches count). */
  available(): number;
}

/**
 * The quota and the claims of one pool.
 *
 * @example
 * ```ts
 * import { LimitOwner } from "../engine/limit_owner.ts";
 * import { limitOwnerBudget, PoolLimit } from "./pool_limit.ts";
 * import assert from "node:assert/strict";
 * const owner = new LimitOwner(1000);
 * const limit = new PoolLimit(600, limitOwnerBudget(owner, () => {}));
 * assert.ok(limit.fits(600) && !limit.fits(601)); // the quota
 * assert.ok(limit.tryClaim(500));
 * assert.equal(owner.claimed, 500); // claimed in the device's account
 * limit.release(500);
 * assert.equal(owner.claimed, 0);
 * ```
 */
export class PoolLimit {
  /** Most bytes the pool may hold. */
  readonly quota: number;
  /** Where the claims go. */
  readonly budget: PoolBudget;
  #held = 0;

  /** A limit of `quota` bytes, claimed from `budget`. */
  constructor(quota: number, budget: PoolBudget) {
    this.quota = quota;
    this.budget = budget;
  }

  /** Bytes claimed and held by the pool now (live resident blocks plus cache). */
  get held(): number {
    return this.#held;
  }

  /** Whether `bytes` more stay under the quota. */
  fits(bytes: number): boolean {
    return this.#held + bytes <= this.quota;
  }

  /** Claims `bytes` if they fit under the quota and in the budget; true when claimed. No user code. */
  tryClaim(bytes: number): boolean {
    if (!this.fits(bytes) || !this.budget.tryRequest(bytes)) return false;
    this.#held += bytes;
    return true;
  }

  /** Gives back `bytes` claimed earlier (the device source released them). */
  release(bytes: number): void {
    this.#held -= bytes;
    this.budget.returned(bytes);
  }

  /** Forgets every claim without returning it (the scheduler shut down: its accounts are gone). */
  forget(): void {
    this.#held = 0;
  }
}

/**
 * A standalone pool's budget: the device's limit owner itself. It takes
 * only bytes nobody claims (others' caches are released for it), so it can
 * never take what a context reserved; it has no reservation of its own.
 * `evictOwn` evicts the pool's own blocks when the owner is short.
 *
 * @example
 * ```ts
 * import { LimitOwner } from "../engine/limit_owner.ts";
 * import { limitOwnerBudget } from "./pool_limit.ts";
 * import assert from "node:assert/strict";
 * const owner = new LimitOwner(100);
 * const budget = limitOwnerBudget(owner, () => {});
 * assert.ok(budget.tryRequest(80) && !budget.tryRequest(30));
 * assert.equal(budget.available(), 20);
 * ```
 */
export function limitOwnerBudget(owner: LimitOwner, evictOwn: (bytes: number) => void): PoolBudget {
  return {
    tryRequest: (bytes) => owner.claimReclaiming(bytes),
    returned: (bytes) => owner.release(bytes),
    pressure: () => {},
    reclaim: (bytes) => {
      if (bytes > owner.spare) evictOwn(bytes - owner.spare);
    },
    available: () => Math.max(0, owner.spare),
  };
}
