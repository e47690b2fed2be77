/**
 * Live native objects, read from libsched in one call: for leak tests and
 * the soak task (`sched_debug_counts`).
 *
 * @module
 */

import { lib } from "./loader.ts";

/** What libsched holds right now (all zero when not initialized). */
export interface NativeCounts {
  streams: number;
  events: number;
  pools: number;
  partitions: number;
  deviceAllocations: number;
  pinnedAllocations: number;
  pinnedBytes: number;
  deviceBytes: number;
}

const out = new BigUint64Array(8);

/** Reads the live handle counts of every libsched table. */
export function nativeCounts(): NativeCounts {
  lib().sched_debug_counts(out, out.length);
  return {
    streams: Number(out[0]),
    events: Number(out[1]),
    pools: Number(out[2]),
    partitions: Number(out[3]),
    deviceAllocations: Number(out[4]),
    pinnedAllocations: Number(out[5]),
    pinnedBytes: Number(out[6]),
    deviceBytes: Number(out[7]),
  };
}
