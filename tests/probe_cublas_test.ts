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
