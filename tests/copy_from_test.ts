/**
 * `dst.copyFrom(src)` (API.md "Several devices"): within a device and across
 * devices, ordering against both streams, evicted buffers and pool blocks,
 * bad input, teardown while a copy is in flight.
 */
import assert from "node:assert/strict";
import {
  createContext,
  getAvailableVram,
  initialize,
  MB,
  MemoryPool,
  SchedulerError,
} from "../mod.ts";
import { multiDeviceTest } from "./_devices.ts";
import { backendTest, randomBytes, spin } from "./_helpers.ts";

multiDeviceTest(
  "copyFrom copies within a device and across devices, with offsets and defaults",
  async () => {
    const a = createContext("a", { maxVram: 16 * MB, device: 0 });
    const a2 = createContext("a2", { maxVram: 16 * MB, device: 0 });
    const b = createContext("b", { maxVram: 16 * MB, device: 1 });
    const n = 256 * 1024 + 3; // not a size class
    const data = randomBytes(n, 5);
    const src = a.alloc(n);
    await src.write(data);
    for (const dst of [a.alloc(n), a2.alloc(n), b.alloc(n)]) {
      await dst.copyFrom(src);
      const out = new Uint8Array(n);
      await dst.read(out);
      assert.deepEqual(out, data);
    }
    // Offsets and an explicit length, across devices.
    const dst = b.alloc(1000);
    await dst.write(new Uint8Array(1000));
    await dst.copyFrom(src, { srcOffset: 10, offset: 100, bytes: 500 });
    const out = new Uint8Array(1000);
    await dst.read(out);
    assert.deepEqual(out.subarray(100, 600), data.subarray(10, 510));
    assert.ok(
      out.subarray(0, 100).every((v) => v === 0) && out.subarray(600).every((v) => v === 0),
    );
    // bytes defaults to what is left of the source after srcOffset.
    const tail = b.alloc(100);
    await tail.copyFrom(src, { srcOffset: n - 100 });
    const t = new Uint8Array(100);
    await tail.read(t);
    assert.deepEqual(t, data.subarray(n - 100));
    // Zero bytes is a no-op, also at the very end.
    await tail.copyFrom(src, { srcOffset: n, bytes: 0 });
    // Non-overlapping ranges of one buffer.
    await src.copyFrom(src, { srcOffset: 0, offset: 1000, bytes: 1000 });
    const self = new Uint8Array(1000);
    await src.read(self, { offset: 1000 });
    assert.deepEqual(self, data.subarray(0, 1000));
  },
);

multiDeviceTest(
  "copyFrom waits for both streams' queued work, and later work waits for it",
  async (_s, backend) => {
    const a = createContext("a", { maxVram: 8 * MB, device: 0 });
    const b = createContext("b", { maxVram: 8 * MB, device: 1 });
    const n = 4096;
    const src = a.alloc(n);
    const dst = b.alloc(n);
    const first = randomBytes(n, 1);
    const second = randomBytes(n, 2);
    // A write still queued behind slow work on the source's stream is in the copy.
    spin(backend, a.stream.handle, 100);
    const written = src.write(first);
    await dst.copyFrom(src);
    await written;
    const out = new Uint8Array(n);
    await dst.read(out);
    assert.deepEqual(out, first, "the copy ran before the source's queued write");
    // The destination's stream is slow now: a write to the source queued
    // after copyFrom was called must not overtake the copy's read.
    spin(backend, b.stream.handle, 100);
    const copied = dst.copyFrom(src);
    const overwritten = src.write(second);
    await Promise.all([copied, overwritten]);
    await dst.read(out);
    assert.deepEqual(out, first, "a later write to the source overtook the copy");
  },
);

multiDeviceTest(
  "copyFrom restores evicted buffers and works on PoolBlocks of standalone pools",
  async () => {
    const a = createContext("a", { maxVram: 8 * MB, device: 0 });
    const b = createContext("b", { maxVram: 8 * MB, device: 1 });
    const n = MB;
    const data = randomBytes(n, 9);
    const src = a.alloc(n, { evictable: true });
    await src.write(data);
    const dst = b.alloc(n, { evictable: true });
    a.pool.evict(n);
    b.pool.evict(n);
    assert.equal(src.state, "evicted");
    assert.equal(dst.state, "evicted");
    await dst.copyFrom(src);
    const out = new Uint8Array(n);
    await dst.read(out);
    assert.deepEqual(out, data);
    // Standalone pool blocks and context buffers mix.
    const pool = new MemoryPool({ quota: 4 * MB, enableEviction: true });
    const block = pool.allocate(n);
    await block.copyFrom(dst);
    const fromBlock = new Uint8Array(n);
    await block.read(fromBlock);
    assert.deepEqual(fromBlock, data);
    const back = b.alloc(n);
    await back.copyFrom(block);
    await back.read(out);
    assert.deepEqual(out, data);
    pool.destroy();
  },
);

multiDeviceTest("copyFrom refuses bad sources, options and ranges, changing nothing", async () => {
  const a = createContext("a", { maxVram: 8 * MB, device: 0 });
  const b = createContext("b", { maxVram: 8 * MB, device: 1 });
  const src = a.alloc(1000);
  const dst = b.alloc(500);
  const data = randomBytes(500, 3);
  await dst.write(data);
  const cases: [unknown, unknown, ErrorConstructor, RegExp][] = [
    [src, undefined, RangeError, /offset 0 \+ bytes 1000 exceeds the destination's 500 bytes/],
    [
      src,
      { srcOffset: 1001 },
      RangeError,
      /srcOffset 1001 is past the end of the source's 1000 bytes/,
    ],
    [
      src,
      { srcOffset: 900, bytes: 101 },
      RangeError,
      /srcOffset 900 \+ bytes 101 exceeds the source's 1000 bytes/,
    ],
    [
      src,
      { bytes: 10, offset: 491 },
      RangeError,
      /offset 491 \+ bytes 10 exceeds the destination's 500 bytes/,
    ],
    [src, { bytes: -1 }, RangeError, /bytes must be a non-negative integer/],
    [src, { bytes: 1.5 }, RangeError, /bytes/],
    [src, { srcOffset: "1" }, TypeError, /srcOffset must be a number/],
    [src, { offset: null }, TypeError, /offset/],
    [src, 5, TypeError, /options/],
    [new Uint8Array(10), { bytes: 1 }, TypeError, /src must be a device buffer/],
    [null, undefined, TypeError, /src must be a device buffer/],
    [dst, { srcOffset: 0, offset: 100, bytes: 200 }, RangeError, /overlap/],
  ];
  for (const [from, options, kind, message] of cases) {
    await assert.rejects(
      () => dst.copyFrom(from as never, options as never),
      (e: Error) => {
        assert.ok(e instanceof kind, `${Deno.inspect(options)}: got ${e.name}: ${e.message}`);
        assert.match(e.message, message);
        return true;
      },
    );
  }
  const out = new Uint8Array(500);
  await dst.read(out);
  assert.deepEqual(out, data, "nothing was copied");
  // Freed buffers on either side.
  const gone = a.alloc(100);
  gone.free();
  await assert.rejects(() => dst.copyFrom(gone, { bytes: 10 }), SchedulerError);
  const goneDst = b.alloc(100);
  goneDst.free();
  await assert.rejects(() => goneDst.copyFrom(src, { bytes: 10 }), SchedulerError);
  // A free() while the copy is in flight is stream-ordered: unusable at once, given back when
  // the copy completes (the copy still finishes).
  const ok = dst.copyFrom(src, { bytes: 500 });
  src.free();
  assert.equal(src.freed, true);
  await ok;
  src.free();
  dst.free();
});

backendTest(
  "copyFrom on one device: contexts, offsets, ordering and bad ranges",
  async (_sched) => {
    const a = createContext("a", { maxVram: 16 * MB });
    const b = createContext("b", { maxVram: 16 * MB });
    const n = 3 * MB + 5;
    const data = randomBytes(n, 21);
    const src = a.alloc(n, { evictable: true });
    const written = src.write(data); // still queued when the copy is called
    const same = a.alloc(n);
    const other = b.alloc(n);
    await Promise.all([same.copyFrom(src), other.copyFrom(src), written]);
    for (const dst of [same, other]) {
      const out = new Uint8Array(n);
      await dst.read(out);
      assert.deepEqual(out, data);
    }
    const part = b.alloc(MB);
    await part.copyFrom(src, { srcOffset: 7, offset: 3, bytes: MB - 3 });
    const out = new Uint8Array(MB - 3);
    await part.read(out, { offset: 3 });
    assert.deepEqual(out, data.subarray(7, 7 + MB - 3));
    await assert.rejects(() => part.copyFrom(src), RangeError);
    await assert.rejects(() => part.copyFrom(src, { srcOffset: n + 1, bytes: 0 }), RangeError);
    await assert.rejects(() => part.copyFrom({} as never), TypeError);
  },
  { hostMemory: 64 * MB },
);

multiDeviceTest(
  "teardown while copyFrom is in flight: destroying either context or shutting down loses nothing",
  async (sched, backend) => {
    const a = createContext("a", { maxVram: 8 * MB, device: 0 });
    const b = createContext("b", { maxVram: 8 * MB, device: 1 });
    const src = a.alloc(MB), dst = b.alloc(MB);
    spin(backend, b.stream.handle, 50);
    const intoDestroyed = dst.copyFrom(src);
    b.destroy(); // the destination's context, mid-copy
    await intoDestroyed;
    const c = createContext("c", { maxVram: 8 * MB, device: 1 });
    const into = c.alloc(MB);
    spin(backend, c.stream.handle, 50);
    const fromDestroyed = into.copyFrom(src);
    a.destroy(); // the source's context, mid-copy
    await fromDestroyed;
    assert.equal(getAvailableVram(0), 64 * MB, "device 0 got everything back");
    const d = createContext("d", { maxVram: 8 * MB, device: 0 });
    const last = d.alloc(MB);
    spin(backend, c.stream.handle, 50);
    const pending = into.copyFrom(last);
    sched.shutdown();
    await pending;
    // A scheduler can start again on both devices.
    initialize({ backend, hostDevices: 2, hostMemory: 64 * MB, memoryLimit: 64 * MB });
  },
);
