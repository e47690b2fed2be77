/**
 * Arguments of another device, where a call needs them on one device, are a
 * `RangeError` naming the argument and both devices, thrown before anything
 * is queued or changed: a GEMM's buffers against its context's device, a
 * stream of another device given to a pool, a block of another pool on
 * another device given to `pool.free`. Cross-device calls the API allows
 * (`copyFrom`, `waitEvent`, recording an event on any device's stream) stay
 * allowed.
 */
import assert from "node:assert/strict";
import {
  createContext,
  initialize,
  MB,
  MemoryPool,
  QoSPolicy,
  recordEvent,
  type Scheduler,
  shutdown,
  waitEvent,
} from "../mod.ts";
import { Cublas } from "../src/cublas/mod.ts";
import { parseGemm } from "../src/cublas/gemm_args.ts";
import { cudaSkipReason } from "./_helpers.ts";

/** Runs `fn` on a host scheduler of two simulated devices. */
function twoDevices(name: string, fn: (sched: Scheduler) => void | Promise<void>): void {
  Deno.test(`[host, 2 devices] ${name}`, async () => {
    const sched = initialize({ backend: "host", hostDevices: 2, hostMemory: 256 * MB });
    try {
      await fn(sched);
    } finally {
      shutdown();
    }
  });
}

const wrongDevice = (operand: string, on: number, wanted: number) => (e: unknown) => {
  assert.ok(e instanceof RangeError, `expected RangeError, got ${e}`);
  assert.match(e.message, new RegExp(`\\b${operand}\\b`));
  assert.match(e.message, new RegExp(`device ${on}\\b`));
  assert.match(e.message, new RegExp(`device ${wanted}\\b`));
  return true;
};

twoDevices("a GEMM's buffer on another device than its context is a RangeError naming it", () => {
  const near = createContext("near", { maxVram: 16 * MB });
  const far = createContext("far", { maxVram: 16 * MB, device: 1 });
  const here = { a: near.alloc(MB), b: near.alloc(MB), c: near.alloc(MB) };
  const shape = { m: 16, n: 16, k: 16, type: "fp32" as const };
  // All on the context's device: accepted.
  assert.equal(parseGemm({ ...shape, ...here }, "gemm", near.device).m, 16);
  for (const operand of ["a", "b", "c"] as const) {
    const args = { ...shape, ...here, [operand]: far.alloc(MB) };
    assert.throws(() => parseGemm(args, "gemm", near.device), wrongDevice(operand, 1, 0));
  }
  // A standalone pool's block on device 1 too.
  const pool = new MemoryPool({ quota: 4 * MB, device: 1 });
  assert.throws(
    () => parseGemm({ ...shape, ...here, b: pool.allocate(MB) }, "gemm", 0),
    wrongDevice("b", 1, 0),
  );
});

twoDevices("a pool refuses a stream of another device in allocate, allocating nothing", (sched) => {
  const pool = new MemoryPool({ quota: 4 * MB });
  const other = sched.createStream({ device: 1 });
  const before = pool.stats();
  assert.throws(() => pool.allocate(MB, { stream: other }), wrongDevice("stream", 1, 0));
  assert.deepEqual(pool.stats(), before, "nothing was allocated or counted");
  const far = new MemoryPool({ quota: 4 * MB, device: 1 });
  assert.throws(
    () => far.allocate(MB, { stream: sched.createStream() }),
    wrongDevice("stream", 0, 1),
  );
  // A context's pool, reached through ctx.pool, the same.
  const ctx = createContext("c", { maxVram: 4 * MB });
  assert.throws(() => ctx.pool.allocate(MB, { stream: other }), wrongDevice("stream", 1, 0));
  assert.equal(ctx.usage().used, 0);
  // Its own device's streams are accepted.
  pool.allocate(MB, { stream: sched.createStream() }).free();
  far.allocate(MB, { stream: other }).free();
});

twoDevices(
  "pool.free of a block of a pool on another device is a RangeError, freeing nothing",
  () => {
    const near = new MemoryPool({ quota: 4 * MB });
    const far = new MemoryPool({ quota: 4 * MB, device: 1 });
    const block = far.allocate(MB);
    assert.throws(() => near.free(block), (e: unknown) => {
      assert.ok(e instanceof RangeError);
      assert.match(e.message, /another pool/);
      return true;
    });
    assert.equal(block.freed, false);
    assert.equal(far.stats().activeBlocks, 1);
    far.free(block);
  },
);

twoDevices("the cross-device calls the API allows stay allowed", async (sched) => {
  const a = createContext("a", { maxVram: 8 * MB, device: 1 });
  const b = createContext("b", { maxVram: 8 * MB });
  waitEvent(a, recordEvent(b));
  const ev = sched.createEvent().record(b.stream).record(a.stream);
  await ev.synchronize();
  const src = b.alloc(MB), dst = a.alloc(MB);
  await src.write(new Uint8Array(MB).fill(7));
  await dst.copyFrom(src);
  const out = new Uint8Array(MB);
  await dst.read(out);
  assert.equal(out[MB - 1], 7);
});

Deno.test({
  name: "[cuda] gemm and gemmAsync refuse a buffer of another device before queueing anything" +
    (cudaSkipReason ? ` (skipped: ${cudaSkipReason})` : ""),
  ignore: cudaSkipReason !== undefined,
  async fn() {
    const sched = initialize({ backend: "cuda", memoryLimit: 1024 * MB });
    try {
      if (sched.devices.length < 2) return; // one GPU: nothing of another device to pass
      const ctx = createContext("near", { maxVram: 256 * MB, qos: QoSPolicy.GUARANTEED });
      const far = createContext("far", { maxVram: 64 * MB, device: 1 });
      const blas = Cublas.for(ctx);
      const shape = { m: 64, n: 64, k: 64, type: "fp32" as const };
      const here = {
        a: ctx.alloc(64 * 64 * 4),
        b: ctx.alloc(64 * 64 * 4),
        c: ctx.alloc(64 * 64 * 4),
      };
      const pieces = blas.pieces;
      for (const operand of ["a", "b", "c"] as const) {
        const args = { ...shape, ...here, [operand]: far.alloc(64 * 64 * 4) };
        assert.throws(() => blas.gemm(args), wrongDevice(operand, 1, 0));
        await assert.rejects(blas.gemmAsync(args), wrongDevice(operand, 1, 0));
      }
      assert.equal(blas.pieces, pieces, "nothing was launched");
      blas.gemm({ ...shape, ...here });
      await ctx.stream.synchronize();
    } finally {
      shutdown();
    }
  },
});
