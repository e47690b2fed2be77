import assert from "node:assert/strict";
import { formatBytes } from "../src/units.ts";
import { GB, KB, MB } from "../mod.ts";

Deno.test("formatBytes() gives the unit that reads best and the exact count", () => {
  assert.equal(formatBytes(64 * MB), "64 MiB (67108864 bytes)");
  assert.equal(formatBytes(33548288), "31.99 MiB (33548288 bytes)");
  assert.equal(formatBytes(1.5 * KB), "1.5 KiB (1536 bytes)");
  assert.equal(formatBytes(141 * GB), "141 GiB (151397597184 bytes)");
  assert.equal(formatBytes(2048 * GB), "2 TiB (2199023255552 bytes)");
  assert.equal(formatBytes(0), "0 bytes");
  assert.equal(formatBytes(1023), "1023 bytes");
  assert.equal(formatBytes(KB), "1 KiB (1024 bytes)");
  // Cut, not rounded: 1 MiB less one byte never reads as 1024 KiB.
  assert.equal(formatBytes(MB - 1), "1023.99 KiB (1048575 bytes)");
  assert.equal(formatBytes(-2 * MB), "-2 MiB (-2097152 bytes)");
});
