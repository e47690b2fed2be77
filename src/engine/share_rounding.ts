/**
 * Rounding compute shares to whole SM groups: one rule for partitions, so
 * that every set of shares summing to at most 1 fits in the groups a
 * device can partition.
 *
 * @module
 */

// Shares are decimal fractions: 0.1 + 0.2 + 0.7 must count as 1.
const QUOTA_EPSILON = 1e-9;

/**
 * SM groups for each share, by the largest-remainder method over `groups`
 * groups: share i's quota is `share * groups`; each gets the whole part of
 * its quota (at least one group), and the groups the quotas sum to, rounded,
 * go one by one to the largest fractional parts (ties: the earlier share).
 * The result is deterministic, sums to at most `groups` whenever the shares
 * sum to at most 1 and there are no more shares than groups, and gives a
 * share alone `round(share * groups)` groups.
 *
 * @example
 * ```ts
 * import { groupsForShares } from "./share_rounding.ts";
 * console.assert(groupsForShares([0.1, 0.2, 0.7], 16).join() === "2,3,11");
 * console.assert(groupsForShares([1 / 3, 1 / 3, 1 / 3], 16).join() === "6,5,5");
 * console.assert(groupsForShares([0.5], 16).join() === "8");
 * ```
 * @param shares fractions in (0, 1], in creation order
 * @param groups groups that can be given out (0: none, every answer is 0)
 * @returns groups per share, in the same order
 */
export function groupsForShares(shares: readonly number[], groups: number): number[] {
  if (groups <= 0 || shares.length === 0) return shares.map(() => 0);
  const quotas = shares.map((share) => share * groups);
  const total = quotas.reduce((a, b) => a + b, 0);
  const seats = Math.min(groups, Math.max(shares.length, Math.round(total - QUOTA_EPSILON)));
  const given = quotas.map((q) => Math.max(1, Math.floor(q + QUOTA_EPSILON)));
  let left = seats - given.reduce((a, b) => a + b, 0);
  if (left > 0) {
    const order = quotas
      .map((q, i) => ({ i, fraction: q - Math.floor(q + QUOTA_EPSILON) }))
      .sort((a, b) => b.fraction - a.fraction || a.i - b.i);
    for (const { i } of order) {
      if (left === 0) break;
      given[i]!++;
      left--;
    }
  }
  // Minimums of one group may overshoot: take back from the largest (the later on ties).
  while (left < 0) {
    let largest = -1;
    for (let i = 0; i < given.length; i++) {
      if (given[i]! > 1 && (largest < 0 || given[i]! >= given[largest]!)) largest = i;
    }
    if (largest < 0) break;
    given[largest]!--;
    left++;
  }
  return given;
}

/**
 * Groups a single compute reservation of `share` gets: `round(share *
 * groups)`, at least one.
 *
 * @example
 * ```ts
 * import { groupsForShare } from "./share_rounding.ts";
 * console.assert(groupsForShare(0.25, 16) === 4 && groupsForShare(0.01, 16) === 1);
 * ```
 */
export function groupsForShare(share: number, groups: number): number {
  if (groups <= 0) return 0;
  return Math.min(groups, Math.max(1, Math.round(share * groups)));
}
