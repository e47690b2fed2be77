/**
 * Per-context event counts that the context's MemoryPool does not keep
 * itself (it already counts allocations, evictions and restores).
 *
 * @module
 */

/**
 * @internal A plain object of numbers, incremented in place where the
 * event happens: no allocation, no lookup, nothing on the hot path but `++`.
 */
export interface ContextTallies {
  /** `VramBudgetExceededError`s thrown for allocations of the context. */
  allocationFailures: number;
  /** Pressure handlers called for allocations of the context. */
  pressureEvents: number;
}

/** @internal Fresh tallies for a new context: counters start at 0 with it. */
export function newContextTallies(): ContextTallies {
  return { allocationFailures: 0, pressureEvents: 0 };
}
