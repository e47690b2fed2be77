/**
 * Byte units. Binary multiples, as GPU memory is counted.
 *
 * @example
 * ```ts
 * import { GB, KB, MB } from "@gpusched/core";
 * import assert from "node:assert/strict";
 * assert.ok(KB === 1024 && MB === 1024 ** 2 && GB === 1024 ** 3);
 * ```
 *
 * @module
 */

/** 1024 bytes. */
export const KB = 1024;
/** 1024² bytes. */
export const MB = 1024 * KB;
/** 1024³ bytes. */
export const GB = 1024 * MB;
