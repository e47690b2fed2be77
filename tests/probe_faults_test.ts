/**
 * Native failures in the middle of today's paths (copyFrom, sleep, wake,
 * restores, reservations that evict), injected in the host backend
 * (`sched_host_inject_fault`, an internal test hook): the failing call
 * reports a NativeError or a documented class, and nothing is lost —
 * "Nothing already allocated is lost or corrupted" (API.md), "the context
 * stays asleep with its data intact, and `wake()` may be retried" (API.md).
 */
import assert from "node:assert/strict";
import {
  AdmissionError,
  createContext,
  getAvailableVram,
  getContextUsage,
  MB,
  NativeError,
  QoSPolicy,
} from "../mod.ts";
import { lib } from "../src/native/loader.ts";
import { probe, rejected } from "./_probe.ts";

const FAULT = { ALLOC: 1, COPY: 2 } as const;
const LIMIT = { hostMemory: 64 * MB };

function inject(kind: number, count: number): void {
  assert.equal(lib().sched_host_inject_fault(kind, count), 0);
}

function pattern(n: number, seed: number): Uint8Array {
  return new Uint8Array(n).map((_, i) => (i * 11 + seed) & 0xff);
}

probe("a copyFrom that fails natively releases both buffers and loses nothing", async () => {
  const a = createContext("a", { maxVram: 32 * MB, device: 0 });
  const b = createContext("b", { maxVram: 32 * MB, device: 1 });
  const src = a.alloc(4 * MB), dst = b.alloc(4 * MB);
  await src.write(pattern(4 * MB, 1));
  await dst.write(pattern(4 * MB, 2));
  inject(FAULT.COPY, 1);
  const e = await rejected(() => dst.copyFrom(src));
  assert.ok(e instanceof NativeError, `got ${e}`);
  const out = new Uint8Array(4 * MB);
  await src.read(out);
  assert.deepEqual(out, pattern(4 * MB, 1));
  await dst.copyFrom(src); // works again
  await dst.read(out);
  assert.deepEqual(out, pattern(4 * MB, 1));
  src.free(); // not left pinned by the failed copy
  dst.free();
  assert.equal(getContextUsage(a).used + getContextUsage(b).used, 0);
}, { ...LIMIT, hostDevices: 2 });

probe("a sleep whose copy out fails leaves the context awake and intact", async () => {
  const ctx = createContext("c", { maxVram: 32 * MB, qos: QoSPolicy.GUARANTEED });
  const buf = ctx.alloc(8 * MB);
  await buf.write(pattern(8 * MB, 3));
  inject(FAULT.COPY, 1);
  const e = await rejected(() => ctx.sleep());
  assert.ok(e instanceof NativeError, `got ${e}`);
  assert.equal(ctx.sleeping, false);
  assert.equal(getContextUsage(ctx).reserved, 32 * MB);
  const out = new Uint8Array(8 * MB);
  await buf.read(out);
  assert.deepEqual(out, pattern(8 * MB, 3));
  await ctx.sleep();
  await ctx.wake();
  await buf.read(out);
  assert.deepEqual(out, pattern(8 * MB, 3));
}, LIMIT);

probe("a wake refused for lack of device memory stays asleep and may be retried", async () => {
  const ctx = createContext("c", { maxVram: 32 * MB, qos: QoSPolicy.GUARANTEED });
  const buf = ctx.alloc(4 * MB);
  await buf.write(pattern(4 * MB, 4));
  await ctx.sleep();
  inject(FAULT.ALLOC, 10);
  const e = await rejected(() => ctx.wake());
  assert.ok(e instanceof AdmissionError, `got ${e}`);
  inject(FAULT.ALLOC, 0);
  assert.equal(ctx.sleeping, true);
  assert.equal(getAvailableVram(), 64 * MB);
  await ctx.wake();
  const out = new Uint8Array(4 * MB);
  await buf.read(out);
  assert.deepEqual(out, pattern(4 * MB, 4));
}, LIMIT);

// Failed before MemoryPool's restore undid its recommit when the copy back failed to queue: a
// restore commits the block's device memory again and claims its bytes (RoomMaker.recommit), then
// queues the copy back (Evictor.copyBack); the failure left the range committed and the claim
// held, so every later wake() failed with "Block ... is already committed" (the data was lost)
// and getAvailableVram stayed 4 MiB short.
probe(
  "a wake whose copy back fails stays asleep, and a retry restores every byte",
  async () => {
    const ctx = createContext("c", { maxVram: 32 * MB });
    const buf = ctx.alloc(4 * MB);
    await buf.write(pattern(4 * MB, 5));
    await ctx.sleep();
    inject(FAULT.COPY, 1);
    const e = await rejected(() => ctx.wake());
    assert.ok(e instanceof NativeError || e instanceof AdmissionError, `got ${e}`);
    assert.equal(ctx.sleeping, true);
    assert.equal(getContextUsage(ctx).evicted, 4 * MB);
    assert.equal(getAvailableVram(), 64 * MB, "the failed wake holds no device memory");
    await ctx.wake();
    const out = new Uint8Array(4 * MB);
    await buf.read(out);
    assert.deepEqual(out, pattern(4 * MB, 5));
  },
  LIMIT,
);

// Failed for the same reason as the wake above: an evicted buffer whose restore copy failed could
// never be restored again ("already committed"), and the device kept its bytes claimed
// (getAvailableVram 32 MiB instead of 64).
probe(
  "a restore whose copy fails can be retried, and claims nothing meanwhile",
  async () => {
    const be = createContext("be", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT });
    const ev = be.alloc(32 * MB, { evictable: true });
    await ev.write(pattern(32 * MB, 6));
    const g = createContext("g", { maxVram: 48 * MB, qos: QoSPolicy.GUARANTEED });
    assert.equal(getContextUsage(be).evicted, 32 * MB);
    g.destroy();
    inject(FAULT.COPY, 1);
    const e = await rejected(() => ev.read(new Uint8Array(4)));
    assert.ok(e instanceof NativeError, `got ${e}`);
    assert.equal(getContextUsage(be).evicted, 32 * MB);
    assert.equal(getAvailableVram(), 64 * MB, "the failed restore holds no device memory");
    const out = new Uint8Array(32 * MB);
    await ev.read(out);
    assert.deepEqual(out, pattern(32 * MB, 6));
  },
  LIMIT,
);

probe("a reservation whose eviction fails natively creates nothing and loses nothing", async () => {
  const be = createContext("be", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT });
  const ev = be.alloc(32 * MB, { evictable: true });
  await ev.write(pattern(32 * MB, 7));
  inject(FAULT.COPY, 1);
  let error: unknown;
  try {
    createContext("g", { maxVram: 48 * MB, qos: QoSPolicy.GUARANTEED });
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof NativeError || error instanceof AdmissionError, `got ${error}`);
  assert.equal(getContextUsage(be).used, 32 * MB);
  const out = new Uint8Array(32 * MB);
  await ev.read(out);
  assert.deepEqual(out, pattern(32 * MB, 7));
  // The name was not taken; the reservation is admitted now.
  createContext("g", { maxVram: 48 * MB, qos: QoSPolicy.GUARANTEED });
  assert.equal(getContextUsage(be).evicted, 32 * MB);
}, LIMIT);
