/**
 * The cuBLAS helper's host-side behaviour (README "cuBLAS on contexts"):
 * `Cublas.for` on the host backend throws a SchedulerError naming the
 * backend and changes nothing; `setGemmQos` checks its options. Written
 * from README.md only.
 */
import assert from "node:assert/strict";
import {
  createContext,
  destroyContext,
  getContextUsage,
  getMetrics,
  MB,
  QoSPolicy,
  SchedulerError,
  shutdown,
} from "../mod.ts";
import { Cublas, setGemmQos } from "../src/cublas/mod.ts";
import { assertArgError, BAD_VALUES, caught, probe } from "./_probe.ts";

probe("Cublas.for on the host backend is a SchedulerError naming the backend", () => {
  const ctx = createContext("llm", { maxVram: 64 * MB, qos: QoSPolicy.GUARANTEED });
  for (let i = 0; i < 3; i++) {
    const e = caught(() => Cublas.for(ctx));
    assert.ok(e instanceof SchedulerError, `got ${e}`);
    assert.match((e as Error).message, /host/);
  }
  // Its workspace was not taken, nor a handle made.
  assert.equal(getContextUsage(ctx).used, 0);
  assert.equal(getContextUsage(ctx).cached, 0);
  const counters = getMetrics().contexts[0]!.counters;
  assert.equal(counters.allocations, 0);
  const e = caught(() => Cublas.for(ctx, { workspaceBytes: 1 * MB }));
  assert.ok(e instanceof SchedulerError, `with options: ${e}`);
});

probe("Cublas.for refuses what is not a live context", () => {
  for (const bad of [undefined, null, {}, 1, "llm"]) {
    const e = caught(() => Cublas.for(bad as never));
    assert.ok(e instanceof TypeError, `${String(bad)}: got ${e}`);
  }
  const ctx = createContext("c", { maxVram: 8 * MB });
  destroyContext(ctx);
  assert.ok(caught(() => Cublas.for(ctx)) instanceof SchedulerError);
});

Deno.test("[probe] Cublas.for before initialize and after shutdown is a SchedulerError", async () => {
  const { initialize } = await import("../mod.ts");
  initialize({ backend: "host" });
  const ctx = createContext("c", { maxVram: 8 * MB });
  shutdown();
  assert.ok(caught(() => Cublas.for(ctx)) instanceof SchedulerError);
});

Deno.test("[probe] setGemmQos returns the settings in force and changes only what it is given", () => {
  const before = setGemmQos({});
  try {
    assert.equal(typeof before.activeInFlight, "number");
    assert.equal(typeof before.idleInFlight, "number");
    assert.equal(typeof before.maxHoldMs, "number");
    assert.equal(typeof before.pieceUs, "number");
    const after = setGemmQos({ activeInFlight: 2 });
    assert.equal(after.activeInFlight, 2);
    assert.deepEqual({ ...after, activeInFlight: before.activeInFlight }, before);
    // The returned object is a snapshot: changing it changes nothing.
    (after as { idleInFlight: number }).idleInFlight = 99;
    assert.equal(setGemmQos({}).idleInFlight, before.idleInFlight);
  } finally {
    setGemmQos(before);
  }
  assert.deepEqual(setGemmQos({}), before);
});

Deno.test("[probe] setGemmQos refuses bad values of every type, naming the option, changing nothing", () => {
  const before = setGemmQos({});
  try {
    const numeric = [
      "activeInFlight",
      "idleInFlight",
      "maxHoldMs",
      "pieceUs",
      "maxPieceFlops",
      "idleMs",
      "maxBorrowedQueued",
    ];
    for (const option of numeric) {
      for (const [label, value] of BAD_VALUES) {
        if (value === undefined) continue; // absent: unchanged
        // 1.5, 2**53 and Infinity ("never") are in range for some options.
        if (value === 2 ** 53 || value === 1.5 || value === Infinity) continue;
        const e = caught(() => setGemmQos({ [option]: value }));
        assertArgError(e, option, `${option}: ${label}`);
        if (typeof value !== "number") {
          assert.ok(e instanceof TypeError, `${option}: ${label} is the wrong type: ${e}`);
        }
        assert.deepEqual(setGemmQos({}), before, `${option}: ${label} changed nothing`);
      }
    }
    for (const value of [1, "yes", null, {}]) {
      assertArgError(caught(() => setGemmQos({ borrow: value as never })), "borrow", String(value));
    }
    for (const bad of [null, 1, "x", Symbol("s"), () => 1]) {
      assert.ok(caught(() => setGemmQos(bad as never)) instanceof TypeError, String(bad));
    }
    assert.deepEqual(setGemmQos({}), before);
  } finally {
    setGemmQos(before);
  }
});

// gemm and gemmAsync check their arguments with parseGemm before anything reaches cuBLAS; on
// the host backend no Cublas handle exists, so the checks are driven directly here.
probe("gemm's argument checks: sizes, types, leading dimensions, buffers, scalars", async () => {
  const { parseGemm: parseOn } = await import("../src/cublas/gemm_args.ts");
  const ctx = createContext("c", { maxVram: 64 * MB });
  const parseGemm = (options: Parameters<typeof parseOn>[0], doing: string) =>
    parseOn(options, doing, ctx.device);
  const m = 8, n = 4, k = 16;
  const a = ctx.alloc(m * k * 2), b = ctx.alloc(k * n * 2), c = ctx.alloc(m * n * 2);
  const ok = { m, n, k, a, b, c };
  const doing = "Cannot queue a GEMM";
  const parsed = parseGemm(ok, doing);
  assert.equal(parsed.lda, m);
  assert.equal(parsed.ldb, k);
  assert.equal(parsed.ldc, m);
  assert.equal(parsed.alpha, 1);
  assert.equal(parsed.beta, 0);
  assert.equal(parseGemm({ ...ok, transA: true, lda: k }, doing).lda, k);
  for (const option of ["m", "n", "k"] as const) {
    for (const [label, value] of BAD_VALUES) {
      assertArgError(caught(() => parseGemm({ ...ok, [option]: value }, doing)), option, label);
    }
    assertArgError(caught(() => parseGemm({ ...ok, [option]: 2 ** 31 }, doing)), option, "int32");
  }
  // Larger than the buffers hold: a RangeError naming the matrix and the bytes.
  const big = caught(() => parseGemm({ ...ok, k: k + 1 }, doing));
  assert.ok(big instanceof RangeError && /a needs \d+ bytes/.test(big.message), `${big}`);
  assertArgError(caught(() => parseGemm({ ...ok, lda: m - 1 }, doing)), "lda");
  const ldc = caught(() => parseGemm({ ...ok, ldc: m + 1 }, doing));
  assert.ok(ldc instanceof RangeError && /c needs \d+ bytes/.test(ldc.message), `${ldc}`);
  assertArgError(caught(() => parseGemm({ ...ok, type: "fp64" as never }, doing)), "type");
  assert.ok(caught(() => parseGemm({ ...ok, type: "fp32" }, doing)) instanceof RangeError);
  for (const option of ["transA", "transB"] as const) {
    assertArgError(caught(() => parseGemm({ ...ok, [option]: 1 as never }, doing)), option);
  }
  for (const option of ["alpha", "beta"] as const) {
    assertArgError(caught(() => parseGemm({ ...ok, [option]: NaN }, doing)), option, "NaN");
    assertArgError(caught(() => parseGemm({ ...ok, [option]: "1" as never }, doing)), option);
  }
  for (const option of ["a", "b", "c"] as const) {
    for (const bad of [undefined, null, {}, new Uint8Array(4096)]) {
      const e = caught(() => parseGemm({ ...ok, [option]: bad as never }, doing));
      assert.ok(e instanceof TypeError, `${option}: ${String(bad)}: ${e}`);
    }
  }
  for (const bad of [undefined, null, 5, "gemm"]) {
    assert.ok(caught(() => parseGemm(bad as never, doing)) instanceof TypeError, String(bad));
  }
});
