/**
 * Adversarial tests of the error classes and the validation of every
 * public function (API.md "Errors", README "Errors"): bad input of every
 * type is a TypeError/RangeError naming the option and value, and changes
 * nothing. Written from API.md and README.md only.
 */
import assert from "node:assert/strict";
import {
  AdmissionError,
  alloc,
  contextSession,
  createContext,
  currentContext,
  destroyContext,
  formatPrometheus,
  getAvailableVram,
  getContextUsage,
  getMetrics,
  getStream,
  initialize,
  MB,
  MemoryPool,
  NativeError,
  NoActiveSessionError,
  onMemoryPressure,
  PartitionManager,
  QoSPolicy,
  QosPolicyEvaluator,
  QosTaskMeta,
  recordEvent,
  SchedulerError,
  shutdown,
  startTrace,
  stopTrace,
  traceSpan,
  VramBudgetExceededError,
  waitEvent,
} from "../mod.ts";
import { assertArgError, attempt, BAD_VALUES, caught, probe, rejected } from "./_probe.ts";

/** Device-visible state that a refused call must leave as it was. */
function state(): string {
  const m = getMetrics();
  return JSON.stringify({
    available: m.devices.map((d) => d.available),
    contexts: m.contexts.map((c) => [c.name, c.used, c.reserved, c.cached, c.max]),
  });
}

function counters(name: string) {
  const c = getMetrics().contexts.find((c) => c.name === name);
  assert.ok(c, `context ${name} in the metrics`);
  return c.counters;
}

Deno.test("[probe] the error classes are exported, named and related as API.md says", () => {
  for (
    const [cls, name] of [
      [SchedulerError, "SchedulerError"],
      [AdmissionError, "AdmissionError"],
      [VramBudgetExceededError, "VramBudgetExceededError"],
      [NoActiveSessionError, "NoActiveSessionError"],
      [NativeError, "NativeError"],
    ] as const
  ) {
    assert.equal(typeof cls, "function");
    assert.ok(cls.prototype instanceof Error, name);
    assert.ok(cls === SchedulerError || cls.prototype instanceof SchedulerError, `${name} base`);
  }
});

Deno.test("[probe] before initialize every function throws a clear SchedulerError", () => {
  const calls: [string, () => unknown][] = [
    ["createContext", () => createContext("x", { maxVram: MB })],
    ["alloc", () => alloc(1)],
    ["getAvailableVram", () => getAvailableVram()],
    ["getMetrics", () => getMetrics()],
    ["formatPrometheus", () => formatPrometheus()],
    ["onMemoryPressure", () => onMemoryPressure(() => true)],
    ["MemoryPool", () => new MemoryPool({ quota: MB })],
    ["PartitionManager", () => new PartitionManager()],
    ["currentContext", () => currentContext()],
  ];
  for (const [what, fn] of calls) {
    const e = caught(fn);
    assert.ok(e instanceof SchedulerError, `${what}: got ${e}`);
    assert.ok((e as Error).message.length > 10, `${what}: a sentence`);
  }
});

Deno.test("[probe] initialize refuses bad options of every type and leaves no scheduler", () => {
  const cases: [unknown, string][] = [
    [{ backend: "gpu" }, "backend"],
    [{ backend: 1 }, "backend"],
    [{ backend: null }, "backend"],
    [{ hostMemory: -1 }, "hostMemory"],
    [{ hostMemory: NaN }, "hostMemory"],
    [{ hostMemory: 1.5 }, "hostMemory"],
    [{ hostMemory: "1" }, "hostMemory"],
    [{ hostMemory: 0 }, "hostMemory"],
    [{ memoryLimit: -1 }, "memoryLimit"],
    [{ memoryLimit: NaN }, "memoryLimit"],
    [{ memoryLimit: "1" }, "memoryLimit"],
    [{ memoryLimit: 2 ** 53 }, "memoryLimit"],
    [{ memoryLimit: Symbol("m") }, "memoryLimit"],
    [{ deviceId: -1 }, "deviceId"],
    [{ deviceId: 1 }, "deviceId"],
    [{ deviceId: NaN }, "deviceId"],
  ];
  for (const [options, option] of cases) {
    const e = caught(() =>
      initialize({ backend: "host", hostMemory: 64 * MB, ...(options as object) })
    );
    assertArgError(e, option, String(option));
  }
  for (const options of [5, "host", Symbol("s"), () => 1]) {
    assert.ok(caught(() => initialize(options as never)) instanceof TypeError, String(options));
  }
  initialize({ backend: "host", hostMemory: 64 * MB });
  shutdown();
});

probe("createContext refuses bad names, changing nothing", () => {
  const before = state();
  assertArgError(caught(() => createContext("", { maxVram: MB })), "name");
  assert.ok(caught(() => createContext("", { maxVram: MB })) instanceof RangeError);
  for (const bad of [undefined, null, 1, {}, Symbol("n"), () => "x"]) {
    const e = caught(() => createContext(bad as string, { maxVram: MB }));
    assert.ok(e instanceof TypeError, `name ${String(bad)}: got ${e}`);
  }
  assert.equal(state(), before);
  createContext("a", { maxVram: MB });
  const dup = caught(() => createContext("a", { maxVram: MB }));
  assert.ok(dup instanceof Error && dup.message.includes('"a"') || String(dup).includes("a"));
  assert.equal(getMetrics().contexts.length, 1);
});

probe("createContext refuses bad options of every type, naming the option", () => {
  const before = state();
  for (const [label, value] of BAD_VALUES) {
    if (value !== undefined) {
      assertArgError(
        caught(() => createContext("x", { maxVram: value as number })),
        "maxVram",
        label,
      );
      assertArgError(
        caught(() => createContext("x", { maxVram: 8 * MB, baseVram: value as number })),
        "baseVram",
        label,
      );
      assertArgError(
        caught(() => createContext("x", { maxVram: 8 * MB, qos: value as QoSPolicy })),
        "qos",
        label,
      );
      assertArgError(
        caught(() => createContext("x", { maxVram: 8 * MB, partition: value as string })),
        "partition",
        label,
      );
      assertArgError(
        caught(() =>
          createContext("x", {
            maxVram: 8 * MB,
            qos: QoSPolicy.GUARANTEED,
            compute: value as number,
          })
        ),
        "compute",
        label,
      );
    }
  }
  assertArgError(caught(() => createContext("x", undefined as never)), "maxVram", "no options");
  assertArgError(caught(() => createContext("x", {} as never)), "maxVram", "{}");
  assert.ok(caught(() => createContext("x", 5 as never)) instanceof TypeError);
  assertArgError(
    caught(() => createContext("x", { maxVram: 8 * MB, qos: "gold" as QoSPolicy })),
    "qos",
  );
  assertArgError(
    caught(() => createContext("x", { maxVram: 8 * MB, baseVram: 9 * MB })),
    "baseVram",
    "base > max",
  );
  for (const qos of [QoSPolicy.GUARANTEED, QoSPolicy.BEST_EFFORT]) {
    assertArgError(
      caught(() => createContext("x", { maxVram: 8 * MB, baseVram: 1 * MB, qos })),
      "baseVram",
      `baseVram on ${qos}`,
    );
  }
  for (const share of [0, 1, -0.5, 1.5]) {
    assertArgError(
      caught(() =>
        createContext("x", { maxVram: 8 * MB, qos: QoSPolicy.GUARANTEED, compute: share })
      ),
      "compute",
      String(share),
    );
  }
  assertArgError(
    caught(() =>
      createContext("x", { maxVram: 8 * MB, qos: QoSPolicy.BEST_EFFORT, compute: 0.25 })
    ),
    "compute",
    "on BEST_EFFORT",
  );
  assert.equal(state(), before);
  assert.equal(createContext("x", { maxVram: 8 * MB }).name, "x");
});

probe("createContext: a reservation that cannot be honoured is an AdmissionError", () => {
  const before = state();
  const e = caught(() => createContext("big", { maxVram: 257 * MB, qos: QoSPolicy.GUARANTEED }));
  assert.ok(e instanceof AdmissionError, `got ${e}`);
  const f = caught(() =>
    createContext("big", { maxVram: 512 * MB, baseVram: 300 * MB, qos: QoSPolicy.BURSTABLE })
  );
  assert.ok(f instanceof AdmissionError, `got ${f}`);
  assert.equal(state(), before);
  // A BEST_EFFORT context reserves nothing, however large its maxVram.
  createContext("be", { maxVram: 1024 * MB, qos: QoSPolicy.BEST_EFFORT });
});

probe("alloc and ctx.alloc refuse bad sizes and options of every type", () => {
  const ctx = createContext("c", { maxVram: 64 * MB });
  const before = state();
  for (const [label, value] of BAD_VALUES) {
    if (value === 2 ** 53) {
      // Past the budget rather than malformed: either a RangeError or a budget refusal.
      const e = caught(() => ctx.alloc(value));
      assert.ok(e instanceof RangeError || e instanceof VramBudgetExceededError, `${e}`);
      continue;
    }
    const e = caught(() => ctx.alloc(value as number));
    assert.ok(e instanceof TypeError || e instanceof RangeError, `${label}: got ${e}`);
    assert.ok(/bytes|size/.test((e as Error).message), `${label}: ${(e as Error).message}`);
    const s = caught(() => {
      using _s = contextSession(ctx);
      alloc(value as number);
    });
    assert.ok(s instanceof TypeError || s instanceof RangeError, `session ${label}: got ${s}`);
  }
  for (const bad of [1, "yes", null, {}]) {
    assertArgError(
      caught(() => ctx.alloc(1024, { evictable: bad as boolean })),
      "evictable",
      String(bad),
    );
  }
  assert.ok(caught(() => ctx.alloc(1024, 5 as never)) instanceof TypeError);
  assert.equal(state(), before);
  assert.equal(getContextUsage(ctx).used, 0);
  assert.equal(counters("c").allocations, 0);
  assert.equal(counters("c").allocationFailures, 0);
});

probe("alloc outside a session is a NoActiveSessionError; sessions nest", () => {
  assert.ok(caught(() => alloc(1024)) instanceof NoActiveSessionError);
  const a = createContext("a", { maxVram: 8 * MB });
  const b = createContext("b", { maxVram: 8 * MB });
  {
    using _a = contextSession(a);
    {
      using _b = contextSession(b);
      assert.equal(alloc(1024).context, b);
    }
    assert.equal(alloc(1024).context, a);
  }
  assert.equal(currentContext(), undefined);
  assert.ok(caught(() => alloc(1024)) instanceof NoActiveSessionError);
});

probe("context functions refuse what is not a context", async () => {
  for (const bad of [undefined, null, {}, 1, "llm", Symbol("c"), () => 1]) {
    for (
      const [what, fn] of [
        ["destroyContext", () => destroyContext(bad as never)],
        ["getContextUsage", () => getContextUsage(bad as never)],
        ["getStream", () => getStream(bad as never)],
        ["contextSession", () => contextSession(bad as never)],
        ["recordEvent", () => recordEvent(bad as never)],
      ] as const
    ) {
      const e = caught(fn);
      assert.ok(e instanceof TypeError, `${what}(${String(bad)}): got ${e}`);
    }
  }
  const ctx = createContext("c", { maxVram: 8 * MB });
  for (const bad of [undefined, null, 1, "f", {}]) {
    assert.ok(caught(() => onMemoryPressure(bad as never)) instanceof TypeError);
  }
  // The async form with something that is not a function rejects, naming fn and the value.
  for (const [bad, shown] of [[null, "null"], [1, "1"], ["f", '"f"'], [{}, "{}"]] as const) {
    const e = await rejected(() => contextSession(ctx, bad as never));
    assert.ok(e instanceof TypeError, `fn ${shown}: got ${e}`);
    assert.ok(
      (e as Error).message.includes(`fn must be a function, got ${shown}`),
      (e as Error).message,
    );
  }
});

probe("a destroyed context refuses work with SchedulerError; destroy is idempotent", async () => {
  const ctx = createContext("c", { maxVram: 8 * MB });
  const buf = ctx.alloc(1024);
  destroyContext(ctx);
  destroyContext(ctx);
  ctx[Symbol.dispose]();
  assert.equal(ctx.alive, false);
  assert.ok(caught(() => ctx.alloc(1)) instanceof SchedulerError);
  assert.ok(caught(() => contextSession(ctx)) instanceof SchedulerError);
  assert.ok(caught(() => buf.ptr) instanceof SchedulerError);
  assert.ok((await rejected(() => buf.write(new Uint8Array(4)))) instanceof SchedulerError);
  assert.ok((await rejected(() => ctx.sleep())) instanceof SchedulerError);
  assert.ok((await rejected(() => ctx.wake())) instanceof SchedulerError);
  buf.free(); // no-op
  // The name is free again.
  createContext("c", { maxVram: 8 * MB });
});

probe("write/read refuse bad data and offsets, and ranges outside the buffer", async () => {
  const ctx = createContext("c", { maxVram: 8 * MB });
  const buf = ctx.alloc(1024);
  await buf.write(new Uint8Array(1024).fill(3));
  for (const bad of [undefined, null, 1, "abc", {}, [1, 2]]) {
    assert.ok((await rejected(() => buf.write(bad as never))) instanceof TypeError, String(bad));
    assert.ok((await rejected(() => buf.read(bad as never))) instanceof TypeError, String(bad));
  }
  for (const [label, value] of BAD_VALUES) {
    if (value === undefined) continue;
    assertArgError(
      await rejected(() => buf.write(new Uint8Array(4), { offset: value as number })),
      "offset",
      label,
    );
    assertArgError(
      await rejected(() => buf.read(new Uint8Array(4), { offset: value as number })),
      "offset",
      label,
    );
  }
  assert.ok((await rejected(() => buf.write(new Uint8Array(1025)))) instanceof RangeError);
  assert.ok(
    (await rejected(() => buf.write(new Uint8Array(4), { offset: 1021 }))) instanceof RangeError,
  );
  assert.ok(
    (await rejected(() => buf.read(new Uint8Array(2), { offset: 1023 }))) instanceof RangeError,
  );
  const out = new Uint8Array(1024);
  await buf.read(out);
  assert.ok(out.every((v) => v === 3), "refused writes wrote nothing");
  // Typed arrays of other kinds and ArrayBuffers work, as bytes.
  await buf.write(new Float32Array([1.5, -2]), { offset: 8 });
  const f = new Float32Array(2);
  await buf.read(f, { offset: 8 });
  assert.deepEqual([...f], [1.5, -2]);
  await buf.write(new Uint8Array([9, 9]).buffer, { offset: 1022 });
  const tail = new ArrayBuffer(2);
  await buf.read(tail, { offset: 1022 });
  assert.deepEqual([...new Uint8Array(tail)], [9, 9]);
  // A zero-length transfer at the end is in range.
  await buf.write(new Uint8Array(0), { offset: 1024 });
});

probe("MemoryPool refuses bad options and sizes; past its quota a VramBudgetExceededError", () => {
  for (const [label, value] of BAD_VALUES) {
    if (value === 2 ** 53) continue; // a quota past the device: tested below
    assertArgError(caught(() => new MemoryPool({ quota: value as number })), "quota", label);
  }
  assert.ok(caught(() => new MemoryPool(undefined as never)) instanceof TypeError);
  assertArgError(caught(() => new MemoryPool({ quota: MB, name: "" })), "name", "empty name");
  assertArgError(caught(() => new MemoryPool({ quota: MB, name: 5 as never })), "name");
  assertArgError(
    caught(() => new MemoryPool({ quota: MB, enableEviction: 1 as never })),
    "enableEviction",
  );
  assertArgError(caught(() => new MemoryPool({ quota: MB, stream: {} as never })), "stream");
  const pool = new MemoryPool({ quota: 4 * MB });
  for (const [label, value] of BAD_VALUES) {
    if (value === 2 ** 53) continue;
    const e = caught(() => pool.allocate(value as number));
    assert.ok(e instanceof TypeError || e instanceof RangeError, `${label}: got ${e}`);
  }
  assertArgError(caught(() => pool.allocate(1024, { evictable: "y" as never })), "evictable");
  const held = pool.allocate(3 * MB);
  const e = caught(() => pool.allocate(2 * MB));
  assert.ok(e instanceof VramBudgetExceededError, `got ${e}`);
  assert.equal(e.requested, 2 * MB);
  assert.ok(e.available < e.requested, `available ${e.available}`);
  const big = caught(() => pool.allocate(2 ** 53));
  assert.ok(big instanceof VramBudgetExceededError || big instanceof RangeError, `got ${big}`);
  if (big instanceof VramBudgetExceededError) assert.ok(big.available < big.requested);
  assert.equal(pool.stats().activeBlocks, 1);
  assert.equal(pool.stats().allocatedBytes >= 3 * MB, true);
  // free twice, and block.free() then pool.free(), are no-ops.
  pool.free(held);
  pool.free(held);
  held.free();
  assert.equal(pool.stats().activeBlocks, 0);
  const again = pool.allocate(3 * MB);
  again.free();
  pool.free(again);
  assert.equal(pool.stats().activeBlocks, 0);
  for (const bad of [undefined, null, {}, 1]) {
    assert.ok(caught(() => pool.free(bad as never)) instanceof TypeError, String(bad));
  }
  pool.destroy();
  pool.destroy();
  assert.ok(caught(() => pool.allocate(16)) instanceof SchedulerError);
});

probe("pool.free of another pool's block is refused and frees nothing", () => {
  const a = new MemoryPool({ quota: 4 * MB });
  const b = new MemoryPool({ quota: 4 * MB });
  const x = a.allocate(1024);
  const e = caught(() => b.free(x));
  assert.ok(e instanceof TypeError || e instanceof RangeError, `got ${e}`);
  assert.equal(x.freed, false);
  assert.equal(a.stats().activeBlocks, 1);
  x.free();
  a.destroy();
  b.destroy();
});

probe("a pool's quota never takes what a GUARANTEED context reserved", () => {
  createContext("g", { maxVram: 200 * MB, qos: QoSPolicy.GUARANTEED });
  const pool = new MemoryPool({ quota: 256 * MB });
  const x = pool.allocate(56 * MB);
  const e = caught(() => pool.allocate(1 * MB));
  assert.ok(e instanceof VramBudgetExceededError, `got ${e}`);
  assert.ok(e.available < e.requested);
  x.free();
  pool.destroy();
});

probe("QosPolicyEvaluator and QosTaskMeta refuse bad values; empty ids are RangeErrors", () => {
  for (const [label, value] of BAD_VALUES) {
    if (value === 2 ** 53) continue;
    assertArgError(
      caught(() => new QosPolicyEvaluator({ totalMemory: value as number, totalBandwidth: 1 })),
      "totalMemory",
      label,
    );
    if (value !== undefined) {
      assertArgError(
        caught(() => new QosPolicyEvaluator({ totalMemory: MB, totalBandwidth: value as number })),
        "totalBandwidth",
        label,
      );
    }
    if (value !== undefined) {
      assertArgError(
        caught(() => QosTaskMeta.guaranteed("t", "T", value as number)),
        "memory",
        label,
      );
    }
  }
  assertArgError(caught(() => QosTaskMeta.guaranteed("", "T", MB)), "id");
  assert.ok(caught(() => QosTaskMeta.guaranteed("", "T", MB)) instanceof RangeError);
  assert.ok(caught(() => QosTaskMeta.bestEffort("t", "", MB)) instanceof RangeError);
  assert.ok(caught(() => QosTaskMeta.burstable(1 as never, "T", MB)) instanceof TypeError);
  assertArgError(caught(() => QosTaskMeta.burstable("t", "T", MB, { base: 2 * MB })), "base");
  const ev = new QosPolicyEvaluator({ totalMemory: 8 * MB, totalBandwidth: 1 });
  const task = QosTaskMeta.guaranteed("a", "A", 6 * MB);
  const r = ev.evaluate(task);
  assert.equal(r.admitted, true);
  assert.equal(ev.reservedMemory, 0, "evaluate is pure");
  ev.admit(task);
  assert.equal(ev.reservedMemory, 6 * MB);
  const second = ev.evaluate(QosTaskMeta.guaranteed("b", "B", 4 * MB));
  assert.equal(second.admitted, false);
  assert.ok(["throttle", "queue", "reject"].includes(second.decision));
  assert.equal(typeof second.reason, "string");
  assert.ok(second.reason.length > 0);
  for (const bad of [undefined, null, {}, "a"]) {
    assert.ok(caught(() => ev.evaluate(bad as never)) instanceof TypeError, String(bad));
  }
  // Admitting the same id twice must not reserve twice.
  const twice = attempt(() => ev.admit(task));
  if (twice === undefined) assert.equal(ev.reservedMemory, 6 * MB);
  assert.equal(ev.reservedMemory, 6 * MB);
  const unknown = caught(() => ev.release("nope"));
  assert.ok(unknown instanceof RangeError, `release of an unknown id: ${unknown}`);
  assert.ok((unknown as Error).message.includes("nope"));
  ev.release("a");
  assert.equal(ev.reservedMemory, 0);
});

probe("createStream, createEvent and trace refuse bad options", (sched) => {
  for (const bad of [NaN, 1.5, "0", null]) {
    const e = caught(() => sched.createStream({ priority: bad as number }));
    assertArgError(e, "priority", String(bad));
  }
  assertArgError(caught(() => sched.createStream({ partition: "nope" })), "partition");
  assertArgError(caught(() => sched.createStream({ partition: 1 as never })), "partition");
  assertArgError(caught(() => sched.createStream({ device: 3 })), "device");
  assert.ok(caught(() => sched.createEvent(5 as never)) instanceof TypeError);
  // Out of the device's range, a priority is clamped into it, as CUDA does.
  const range = sched.device.priorityRange;
  assert.equal(sched.createStream({ priority: 100 }).priority, range.least);
  assert.equal(sched.createStream({ priority: -100 }).priority, range.greatest);
  for (const bad of [0, -1, NaN, 1.5]) {
    const e = caught(() => startTrace({ capacity: bad as number }));
    assert.ok(e instanceof RangeError, `capacity ${bad}: ${e}`);
    assertArgError(e, "capacity", String(bad));
  }
  for (const bad of ["10", null, {}]) {
    const e = caught(() => startTrace({ capacity: bad as number }));
    assert.ok(e instanceof TypeError, `capacity ${String(bad)} is the wrong type: ${e}`);
    assertArgError(e, "capacity", String(bad));
  }
  startTrace({ capacity: 10 });
  assert.ok(caught(() => traceSpan(5 as never, 0, 1)) instanceof TypeError);
  assert.ok(caught(() => traceSpan("", 0, 1)) instanceof RangeError);
  assert.ok(caught(() => traceSpan("x", NaN, 1)) instanceof RangeError);
  assert.ok(caught(() => traceSpan("x", 2, 1)) instanceof RangeError, "end before start");
  const trace = stopTrace();
  assert.ok(Array.isArray(trace.traceEvents));
  // A stream destroyed twice: the second does nothing.
  const s = sched.createStream();
  s.destroy();
  s.destroy();
  assert.equal(s.destroyed, true);
});

probe("formatPrometheus refuses what is not a snapshot", () => {
  for (const bad of [null, 1, "m", { devices: 1 }, []]) {
    assert.ok(caught(() => formatPrometheus(bad as never)) instanceof TypeError, String(bad));
  }
  const round = JSON.parse(JSON.stringify(getMetrics()));
  assert.equal(formatPrometheus(round), formatPrometheus(getMetrics()));
});

probe("handler results other than booleans refuse with a TypeError cause", () => {
  const ctx = createContext("c", { maxVram: 512 * MB, qos: QoSPolicy.BEST_EFFORT });
  const results: unknown[] = [undefined, 1, "yes", Promise.resolve(true), null, {}];
  for (const value of results) {
    const off = onMemoryPressure(() => value as boolean);
    try {
      const e = caught(() => ctx.alloc(300 * MB));
      assert.ok(e instanceof VramBudgetExceededError, `result ${String(value)}: got ${e}`);
      assert.ok(e.cause instanceof TypeError, `result ${String(value)}: cause ${e.cause}`);
      assert.ok(e.available < e.requested);
    } finally {
      off();
    }
  }
  const boom = new Error("boom");
  const off = onMemoryPressure(() => {
    throw boom;
  });
  try {
    const e = caught(() => ctx.alloc(300 * MB));
    assert.ok(e instanceof VramBudgetExceededError);
    assert.equal(e.cause, boom);
  } finally {
    off();
  }
  off(); // unregistering twice does nothing
  assert.equal(counters("c").allocationFailures, results.length + 1);
  assert.equal(counters("c").pressureEvents, results.length + 1);
});

probe("refusals carry the asking context and available < requested, also when 0 is left", () => {
  const g = createContext("g", { maxVram: 256 * MB, qos: QoSPolicy.GUARANTEED });
  const be = createContext("be", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT });
  const e = caught(() => be.alloc(1));
  assert.ok(e instanceof VramBudgetExceededError, `got ${e}`);
  assert.equal(e.context, be);
  assert.equal(e.available, 0);
  assert.equal(e.requested, 1);
  const x = g.alloc(256 * MB);
  const f = caught(() => g.alloc(1));
  assert.ok(f instanceof VramBudgetExceededError);
  assert.equal(f.context, g);
  assert.ok(f.available < f.requested);
  x.free();
});

probe("destroyContext inside a sync session of it, then allocate: a SchedulerError", () => {
  const ctx = createContext("c", { maxVram: 8 * MB });
  const e = caught(() => {
    using _s = contextSession(ctx);
    destroyContext(ctx);
    alloc(16);
  });
  assert.ok(e instanceof SchedulerError, `got ${e}`);
  assert.equal(currentContext(), undefined);
});

probe("waitEvent on a destroyed event or context", () => {
  const a = createContext("a", { maxVram: 8 * MB });
  const b = createContext("b", { maxVram: 8 * MB });
  const ev = recordEvent(a);
  ev.destroy();
  const e = attempt(() => waitEvent(b, ev));
  assert.ok(e === undefined || e instanceof SchedulerError, `got ${e}`);
  const ev2 = recordEvent(a);
  destroyContext(a);
  const f = attempt(() => waitEvent(b, ev2));
  assert.ok(f === undefined || f instanceof SchedulerError, `got ${f}`);
  destroyContext(b);
  assert.ok(
    caught(() => waitEvent(b, recordEvent(createContext("c", { maxVram: MB })))) instanceof
      SchedulerError,
  );
});

probe(
  "a context's own stream cannot be destroyed from outside; the context stays whole",
  async () => {
    const ctx = createContext("c", { maxVram: 16 * MB, qos: QoSPolicy.GUARANTEED });
    const buf = ctx.alloc(8 * MB);
    // Before: the stream went, and destroyContext then threw "Cannot free: stream 1 was
    // destroyed" with the context's buffers left behind.
    const e = caught(() => getStream(ctx).destroy());
    assert.ok(e instanceof SchedulerError, `got ${e}`);
    assert.match((e as Error).message, /context "c"/);
    assert.ok(caught(() => ctx.stream[Symbol.dispose]()) instanceof SchedulerError);
    await buf.write(new Uint8Array(16).fill(4));
    await ctx.sleep();
    await ctx.wake();
    destroyContext(ctx);
    assert.equal(getAvailableVram(), 256 * MB);
    assert.equal(ctx.stream.destroyed, true, "destroying the context destroys its stream");
    ctx.stream.destroy(); // and then it is a no-op, as for any destroyed stream
  },
);

// Failed before a pool marked the stream it made as held (src/engine/memory_pool.ts): a
// standalone pool's own stream could be destroyed from outside, and pool.destroy() then threw
// "Cannot free: stream N was destroyed", leaving its blocks behind.
probe(
  "a pool's own stream cannot be destroyed from outside; pool.destroy() still frees",
  () => {
    const pool = new MemoryPool({ quota: 4 * MB });
    pool.allocate(1 * MB);
    assert.ok(caught(() => pool.stream.destroy()) instanceof SchedulerError);
    pool.destroy();
    assert.equal(getAvailableVram(), 256 * MB);
  },
  {},
);
