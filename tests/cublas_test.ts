import assert from "node:assert/strict";
import { createContext, type DeviceBuffer, MB, QoSPolicy, SchedulerError } from "../mod.ts";
import { Cublas, cublasCandidates, setGemmQos } from "../src/cublas/mod.ts";
import { backendTest } from "./_helpers.ts";

backendTest("cuBLAS on the host backend is a clear error naming the backend", (sched) => {
  if (sched.backend !== "host") return;
  const ctx = createContext("llm", { maxVram: 64 * MB, qos: QoSPolicy.GUARANTEED });
  assert.throws(
    () => Cublas.for(ctx),
    (e: unknown) => e instanceof SchedulerError && /host backend/.test(e.message),
  );
  assert.equal(ctx.usage().used, 0, "no workspace was taken from the budget");
  for (const bad of [undefined, null, {}, 5, "llm"]) {
    assert.throws(
      () => Cublas.for(bad as unknown as typeof ctx),
      (e: unknown) => e instanceof TypeError && /ctx must be an ExecutionContext/.test(e.message),
    );
  }
  ctx.destroy();
  assert.throws(() => Cublas.for(ctx), SchedulerError);
});

Deno.test("libcublas is looked for in the toolkit, then by the loader", () => {
  const places = cublasCandidates();
  assert.ok(places.some((p) => p.startsWith("/usr/local/cuda")));
  assert.equal(places.at(-1), "libcublas.so");
});

Deno.test("setGemmQos checks its options and keeps the others", () => {
  const before = setGemmQos({});
  assert.throws(() => setGemmQos({ maxPieceFlops: -1 }), RangeError);
  assert.throws(() => setGemmQos({ borrow: "yes" as unknown as boolean }), TypeError);
  assert.throws(() => setGemmQos({ maxBorrowedQueued: 0 }), RangeError);
  assert.deepEqual(setGemmQos({}), before, "a refused change changes nothing");
  assert.equal(setGemmQos({ borrow: false }).borrow, false);
  setGemmQos(before);
});

Deno.test("setGemmQos checks the launch gate's and piece sizing's options, naming them", () => {
  const before = setGemmQos({});
  const bad: [Record<string, unknown>, RegExp, ErrorConstructor][] = [
    [{ pieceUs: -1 }, /pieceUs must be a finite number >= 0, got -1/, RangeError],
    [{ pieceUs: Infinity }, /pieceUs/, RangeError],
    [{ activeInFlight: -1 }, /activeInFlight/, RangeError],
    [{ activeInFlight: 0.5 }, /activeInFlight/, RangeError],
    [{ idleInFlight: 0 }, /idleInFlight/, RangeError],
    [{ maxHoldMs: -2 }, /maxHoldMs must be a number >= 0/, RangeError],
    [{ maxHoldMs: "1" }, /maxHoldMs must be a number, got "1"/, TypeError], // the wrong type
  ];
  for (const [change, message, type] of bad) {
    assert.throws(
      () => setGemmQos(change),
      (e: unknown) => e instanceof type && message.test((e as Error).message),
      JSON.stringify(change),
    );
    assert.deepEqual(setGemmQos({}), before, "a refused change changes nothing");
  }
  const set = setGemmQos({
    activeInFlight: 0,
    maxHoldMs: Infinity,
    pieceUs: 150,
  });
  assert.equal(set.activeInFlight, 0);
  assert.equal(set.pieceUs, 150);
  assert.equal(set.idleInFlight, before.idleInFlight, "the others are kept");
  setGemmQos(before);
  assert.deepEqual(setGemmQos({}), before);
});

/** Column-major fp32 reference. */
function reference(m: number, n: number, k: number, a: Float32Array, b: Float32Array) {
  const c = new Float32Array(m * n);
  for (let j = 0; j < n; j++) {
    for (let i = 0; i < m; i++) {
      let sum = 0;
      for (let p = 0; p < k; p++) sum += a[i + p * m]! * b[p + j * k]!;
      c[i + j * m] = sum;
    }
  }
  return c;
}

/**
 * The CUDA GEMM tests' setup: a BEST_EFFORT context with fp32 operands A
 * (m x k, filled from `step` and `period`) and B (k x n) written, C
 * allocated, the CPU reference product, and a GUARANTEED owner holding a
 * compute reservation.
 */
async function gemmFixture(step: number, period: number) {
  const ctx = createContext("be", { maxVram: 256 * MB, qos: QoSPolicy.BEST_EFFORT });
  const owner = createContext("owner", {
    maxVram: 64 * MB,
    qos: QoSPolicy.GUARANTEED,
    compute: 0.25,
  });
  const [m, n, k] = [64, 512, 96];
  const a = Float32Array.from({ length: m * k }, (_, i) => ((i * step) % period) / period - 0.5);
  const b = Float32Array.from({ length: k * n }, (_, i) => ((i * 5) % 11) / 11 - 0.5);
  const want = reference(m, n, k, a, b);
  const da = ctx.alloc(a.byteLength), db = ctx.alloc(b.byteLength), dc = ctx.alloc(m * n * 4);
  await da.write(a);
  await db.write(b);
  return { ctx, owner, m, n, k, a, want, da, db, dc };
}

/** Largest |C - scale * want| over C read back from `dc`. */
async function maxError(dc: DeviceBuffer, want: Float32Array, scale = 1): Promise<number> {
  const got = new Float32Array(want.length);
  await dc.read(got);
  let worst = 0;
  for (let i = 0; i < got.length; i++) {
    worst = Math.max(worst, Math.abs(got[i]! - scale * want[i]!));
  }
  return worst;
}

backendTest(
  "on CUDA, gemm matches a CPU reference, sliced or not, and checks its arguments",
  async (sched) => {
    if (sched.backend !== "cuda") return;
    const { ctx, owner, m, n, k, want, da, db, dc } = await gemmFixture(7, 13);
    const blas = Cublas.for(ctx);
    assert.equal(Cublas.for(ctx), blas, "one handle per context");
    // Whole, in pieces of 128 columns (the owner idle, but no borrowing), and borrowed.
    for (const [pieceFlops, borrow] of [[0, false], [2 * m * k * 128, false], [0, true]] as const) {
      const before = setGemmQos({ maxPieceFlops: pieceFlops, borrow, idleMs: 0 });
      const [pieces, borrowed] = [blas.pieces, blas.borrowedPieces];
      await dc.write(new Float32Array(m * n)); // no stale result passes
      blas.gemm({ m, n, k, a: da, b: db, c: dc, type: "fp32" });
      setGemmQos(before);
      assert.equal(blas.pieces - pieces, pieceFlops === 0 ? 1 : n / 128);
      assert.equal(blas.borrowedPieces - borrowed, borrow ? 1 : 0);
      const worst = await maxError(dc, want);
      assert.ok(worst < 1e-3, `max error ${worst} (pieces of ${pieceFlops} FLOPs)`);
    }
    assert.throws(
      () => blas.gemm({ m, n, k: k + 1, a: da, b: db, c: dc, type: "fp32" }),
      RangeError,
    );
    assert.throws(
      () => blas.gemm({ m, n, k, a: da, b: db, c: dc, type: "fp64" as "fp32" }),
      RangeError,
    );
    assert.throws(() => blas.gemm({ m: 0, n, k, a: da, b: db, c: dc }), RangeError);
    assert.throws(() => blas.gemm({ m, n, k, a: {} as typeof da, b: db, c: dc }), TypeError);
    owner.destroy();
    // The handle follows its stream through layout changes (new handle on CUDA).
    const again = createContext("again", {
      maxVram: 64 * MB,
      qos: QoSPolicy.BURSTABLE,
      compute: 0.5,
    });
    blas.gemm({ m, n, k, a: da, b: db, c: dc, type: "fp32", beta: 0 });
    const got = new Float32Array(m * n);
    await dc.read(got);
    assert.ok(Math.abs(got[5]! - want[5]!) < 1e-3);
    again.destroy();
    blas.destroy();
    assert.throws(() => blas.gemm({ m, n, k, a: da, b: db, c: dc, type: "fp32" }), SchedulerError);
  },
);

backendTest(
  "on CUDA, gemmAsync through the launch gate keeps stream order with gemm, and destroy rejects held pieces",
  async (sched) => {
    if (sched.backend !== "cuda") return;
    const { ctx, owner, m, n, k, a, want, da, db, dc } = await gemmFixture(3, 17);
    const oa = owner.alloc(a.byteLength), oc = owner.alloc(m * m * 4);
    const blas = Cublas.for(ctx);
    const ownerBlas = Cublas.for(owner);
    const ownerWork = () =>
      ownerBlas.gemm({ m, n: m, k, a: oa, b: oa, c: oc, type: "fp32", transB: true });
    const worst = (scale: number) => maxError(dc, want, scale);
    const before = setGemmQos({});
    try {
      // The owner active (its own GEMM, a long idle window): one piece of 128 columns at a time.
      setGemmQos({
        maxPieceFlops: 2 * m * k * 128,
        borrow: true,
        idleMs: 60_000,
        activeInFlight: 1,
      });
      ownerWork();
      const pieces = blas.pieces;
      await blas.gemmAsync({ m, n, k, a: da, b: db, c: dc, type: "fp32" });
      assert.equal(blas.pieces - pieces, n / 128);
      assert.ok(await worst(1) < 1e-3);
      // None may start while the owner is active: held; a later gemm starts them first.
      setGemmQos({ activeInFlight: 0, maxHoldMs: Infinity });
      ownerWork();
      const held = blas.gemmAsync({ m, n, k, a: da, b: db, c: dc, type: "fp32" });
      assert.equal(blas.pieces, pieces + n / 128, "held while the owner is active");
      blas.gemm({ m, n, k, a: da, b: db, c: dc, type: "fp32", beta: 1 }); // C = AB + C
      await held;
      assert.ok(await worst(2) < 1e-3, "the held pieces ran before the later gemm");
      // Held pieces of a destroyed handle reject, and the next handle works.
      ownerWork();
      const dropped = blas.gemmAsync({ m, n, k, a: da, b: db, c: dc, type: "fp32" });
      blas.destroy();
      await assert.rejects(dropped, SchedulerError);
      await assert.rejects(
        blas.gemmAsync({ m, n, k, a: da, b: db, c: dc, type: "fp32" }),
        SchedulerError,
      );
      await assert.rejects(
        Cublas.for(ctx).gemmAsync({ m, n, k: k + 1, a: da, b: db, c: dc, type: "fp32" }),
        RangeError,
      );
      // Owners idle: pieces borrow every SM.
      setGemmQos({ idleMs: 0, activeInFlight: 1 });
      await owner.stream.synchronize();
      const fresh = Cublas.for(ctx);
      await fresh.gemmAsync({ m, n, k, a: da, b: db, c: dc, type: "fp32" });
      assert.ok(fresh.borrowedPieces > 0);
      assert.ok(await worst(1) < 1e-3);
    } finally {
      setGemmQos(before);
    }
    owner.destroy();
    ctx.destroy();
  },
);
