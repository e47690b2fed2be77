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

const UNITS = ["KiB", "MiB", "GiB", "TiB"] as const;

/**
 * A byte count for messages: the binary unit that reads best, then the
 * exact count, e.g. "64 MiB (67108864 bytes)"; below 1 KiB just "512 bytes".
 *
 * @example
 * ```ts
 * import { formatBytes } from "./units.ts";
 * import assert from "node:assert/strict";
 * assert.equal(formatBytes(64 * 1024 ** 2), "64 MiB (67108864 bytes)");
 * assert.equal(formatBytes(33548288), "31.99 MiB (33548288 bytes)");
 * assert.equal(formatBytes(512), "512 bytes");
 * ```
 */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || Math.abs(bytes) < KB) return `${bytes} bytes`;
  let value = bytes / KB;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  // Two decimals at most, trailing zeros dropped (1.5 MiB, 64 MiB), cut
  // rather than rounded: a size just short of a limit never reads as the limit.
  const shown = String(Math.trunc(value * 100) / 100);
  return `${shown} ${UNITS[unit]} (${bytes} bytes)`;
}
