/**
 * Size classes: every request is rounded up to one of a few sizes, so a
 * freed block fits many later requests. Four classes per power of two cap
 * the rounding waste at 25%; above 64 MiB, classes are 2 MiB apart (the
 * granularity CUDA's pools map memory in), capping waste at 2 MiB.
 *
 * @module
 */

/** Smallest block: CUDA aligns allocations to 256 bytes anyway. */
export const MIN_BLOCK = 256;
const LARGE = 64 * 1024 * 1024;
const LARGE_STEP = 2 * 1024 * 1024;

/**
 * The class size a request of `bytes` is served from.
 *
 * @example
 * ```ts
 * import { sizeClassOf } from "./size_classes.ts";
 * import assert from "node:assert/strict";
 * assert.ok(sizeClassOf(1) === 256 && sizeClassOf(1000) === 1024 && sizeClassOf(1025) === 1280);
 * ```
 */
export function sizeClassOf(bytes: number): number {
  if (bytes <= MIN_BLOCK) return MIN_BLOCK;
  if (bytes > LARGE) return Math.ceil(bytes / LARGE_STEP) * LARGE_STEP;
  // bytes - 1 so exact powers of two stay in their own class.
  const octave = 31 - Math.clz32(bytes - 1);
  const step = 1 << (octave - 2);
  return Math.ceil(bytes / step) * step;
}
