/**
 * getMetrics() and formatPrometheus() (API.md "Metrics"): shapes, only live
 * contexts, counters driven by real operations, and exposition text that a
 * real Prometheus parser reads back exactly, escaping included.
 */
import assert from "node:assert/strict";
import {
  createContext,
  formatPrometheus,
  getMetrics,
  getScheduler,
  initialize,
  MB,
  type Metrics,
  onMemoryPressure,
  QoSPolicy,
  SchedulerError,
  shutdown,
  VramBudgetExceededError,
} from "../mod.ts";
import { backendTest } from "./_helpers.ts";
import { assertExpositionGrammar, contextSample, family, parsePrometheus } from "./_prometheus.ts";

const GAUGES = ["used", "max", "reserved", "cached", "evicted", "peak"].map((f) =>
  `gpusched_context_${f}_bytes`
);
const COUNTERS = ["allocations", "allocation_failures", "evictions", "restores", "pressure_events"]
  .map((f) => `gpusched_context_${f}_total`);
const DEVICE_GAUGES = ["gpusched_device_memory_limit_bytes", "gpusched_device_available_bytes"];

function counters(m: Metrics, name: string) {
  const ctx = m.contexts.find((c) => c.name === name);
  assert.ok(ctx, `context ${name} in the snapshot`);
  return ctx.counters;
}

backendTest("getMetrics() has exactly the documented shape and survives a JSON round trip", () => {
  const llm = createContext("llm", { maxVram: 64 * MB, qos: QoSPolicy.GUARANTEED });
  const buf = llm.alloc(3 * MB);
  const m = getMetrics();
  assert.deepEqual(Object.keys(m).sort(), ["contexts", "devices"]);
  assert.equal(m.devices.length, getScheduler().devices.length); // 1, or 2 with simulated devices
  assert.deepEqual(Object.keys(m.devices[0]!).sort(), [
    "available",
    "index",
    "memoryLimit",
    "name",
  ]);
  assert.equal(m.devices[0]!.memoryLimit, 256 * MB);
  assert.equal(m.devices[0]!.available, 256 * MB - 64 * MB); // llm reserved its 64 MiB
  assert.equal(typeof m.devices[0]!.name, "string");
  const ctx = m.contexts[0]!;
  assert.deepEqual(Object.keys(ctx).sort(), [
    "cached",
    "counters",
    "device",
    "evicted",
    "max",
    "name",
    "peak",
    "qos",
    "reserved",
    "used",
  ]);
  assert.deepEqual(
    { ...ctx, counters: undefined },
    {
      name: "llm",
      qos: "guaranteed",
      device: m.devices[0]!.index,
      used: buf.classSize,
      max: 64 * MB,
      reserved: 64 * MB,
      cached: 0,
      evicted: 0,
      peak: buf.classSize,
      counters: undefined,
    },
  );
  assert.deepEqual(ctx.counters, {
    allocations: 1,
    allocationFailures: 0,
    evictions: 0,
    restores: 0,
    pressureEvents: 0,
  });
  assert.deepEqual(JSON.parse(JSON.stringify(m)), m);
}, { hostMemory: 256 * MB });

backendTest("getMetrics() is a snapshot: later work does not change it", () => {
  const llm = createContext("llm", { maxVram: 64 * MB });
  const before = getMetrics();
  llm.alloc(1 * MB);
  assert.equal(before.contexts[0]!.used, 0);
  assert.equal(before.contexts[0]!.counters.allocations, 0);
  assert.equal(getMetrics().contexts[0]!.counters.allocations, 1);
}, { hostMemory: 256 * MB });

backendTest(
  "getMetrics() lists live contexts only, and counters start at 0 with each context",
  () => {
    const a = createContext("a", { maxVram: 16 * MB });
    createContext("b", { maxVram: 16 * MB });
    a.alloc(1 * MB).free();
    assert.throws(() => a.alloc(32 * MB), VramBudgetExceededError);
    assert.deepEqual(getMetrics().contexts.map((c) => c.name), ["a", "b"]);
    a.destroy();
    assert.deepEqual(getMetrics().contexts.map((c) => c.name), ["b"]);
    const again = createContext("a", { maxVram: 16 * MB });
    assert.deepEqual(counters(getMetrics(), "a"), {
      allocations: 0,
      allocationFailures: 0,
      evictions: 0,
      restores: 0,
      pressureEvents: 0,
    });
    again.destroy();
    assert.ok(!formatPrometheus().includes('context="a"'));
  },
  { hostMemory: 256 * MB },
);

backendTest("allocation counters count cached and fresh allocations, and each refusal", () => {
  const llm = createContext("llm", { maxVram: 8 * MB });
  llm.alloc(1 * MB).free();
  llm.alloc(1 * MB).free(); // from the cache
  const kept = llm.alloc(6 * MB);
  assert.throws(() => llm.alloc(9 * MB), VramBudgetExceededError); // past maxVram outright
  assert.throws(() => llm.alloc(4 * MB), VramBudgetExceededError); // past what is left of it
  assert.throws(() => llm.alloc(-1), RangeError); // bad input is not a budget refusal
  const c = counters(getMetrics(), "llm");
  assert.equal(c.allocations, 3);
  assert.equal(c.allocationFailures, 2);
  kept.free();
}, { hostMemory: 256 * MB });

backendTest(
  "evictions, restores and pressure calls are counted on the context they happened to",
  async () => {
    const bg = createContext("bg", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT });
    const bufs = [0, 1, 2].map(() => bg.alloc(16 * MB, { evictable: true }));
    await bufs[0]!.write(new Uint8Array(16).fill(7));
    // 48 of 64 MiB are used; a 32 MiB GUARANTEED reservation needs bg's buffers evicted.
    const llm = createContext("llm", { maxVram: 32 * MB, qos: QoSPolicy.GUARANTEED });
    const calls: string[] = [];
    const offA = onMemoryPressure((ctx) => (calls.push(`A ${ctx.name}`), true));
    const offB = onMemoryPressure((ctx) => (calls.push(`B ${ctx.name}`), true));
    let m = getMetrics();
    assert.ok(counters(m, "bg").evictions >= 1, "creating llm evicted bg");
    assert.equal(counters(m, "bg").pressureEvents, 0, "no allocation of bg asked for room");
    assert.equal(counters(m, "llm").evictions, 0);

    // bg allocates past the spare memory: both handlers are called for it, then it evicts its own.
    bg.alloc(16 * MB, { evictable: true });
    m = getMetrics();
    assert.deepEqual(calls, ["A bg", "B bg"]);
    assert.equal(counters(m, "bg").pressureEvents, 2);
    assert.equal(counters(m, "llm").pressureEvents, 0);
    const evicted = counters(m, "bg").evictions;
    assert.ok(m.contexts.find((c) => c.name === "bg")!.evicted >= evicted * 16 * MB);

    // A refusing handler: counted as a pressure call and as a failure.
    offB();
    const offNo = onMemoryPressure(() => false);
    assert.throws(() => bg.alloc(16 * MB), VramBudgetExceededError);
    m = getMetrics();
    assert.equal(counters(m, "bg").pressureEvents, 4);
    assert.equal(counters(m, "bg").allocationFailures, 1);
    offNo();
    offA();

    // Using an evicted buffer restores it (after making room, again by eviction).
    const victim = bufs.find((b) => b.state === "evicted")!;
    assert.ok(victim, "one of bg's first buffers is evicted");
    const back = new Uint8Array(16);
    await victim.read(back);
    m = getMetrics();
    assert.equal(counters(m, "bg").restores, 1);
    assert.equal(counters(m, "llm").restores, 0);
    if (victim === bufs[0]) assert.deepEqual([...back], new Array(16).fill(7));
    llm.destroy();
  },
  { hostMemory: 64 * MB },
);

backendTest(
  "formatPrometheus() writes every family with HELP and TYPE, read back by a Prometheus parser",
  () => {
    const llm = createContext("llm", { maxVram: 64 * MB, qos: QoSPolicy.GUARANTEED });
    const tts = createContext("tts", { maxVram: 32 * MB, baseVram: 8 * MB });
    llm.alloc(4 * MB);
    tts.alloc(2 * MB).free();
    assert.throws(() => tts.alloc(64 * MB), VramBudgetExceededError);
    const m = getMetrics();
    const text = formatPrometheus(m);
    const families = parsePrometheus(text);
    assert.deepEqual(
      families.map((f) => f.name),
      [...DEVICE_GAUGES, ...GAUGES, ...COUNTERS],
    );
    for (const f of families) {
      assert.equal(f.type, f.name.endsWith("_total") ? "COUNTER" : "GAUGE", f.name);
      assert.ok(f.help.length > 10, `${f.name} has a HELP text`);
    }
    const device = family(families, "gpusched_device_memory_limit_bytes").metrics;
    assert.deepEqual(
      device,
      m.devices.map((d) => ({ value: String(256 * MB), labels: { device: String(d.index) } })),
    );
    assert.equal(
      Number(family(families, "gpusched_device_available_bytes").metrics[0]!.value),
      m.devices[0]!.available,
    );
    for (const ctx of m.contexts) {
      for (const f of GAUGES) {
        const field = f.slice("gpusched_context_".length, -"_bytes".length) as "used";
        assert.equal(contextSample(families, f, ctx.name), ctx[field], `${f} of ${ctx.name}`);
      }
      assert.equal(contextSample(families, COUNTERS[0]!, ctx.name), ctx.counters.allocations);
      assert.equal(
        contextSample(families, COUNTERS[1]!, ctx.name),
        ctx.counters.allocationFailures,
      );
      assert.equal(contextSample(families, COUNTERS[2]!, ctx.name), ctx.counters.evictions);
      assert.equal(contextSample(families, COUNTERS[3]!, ctx.name), ctx.counters.restores);
      assert.equal(contextSample(families, COUNTERS[4]!, ctx.name), ctx.counters.pressureEvents);
      const labels = family(families, "gpusched_context_used_bytes").metrics
        .find((s) => s.labels?.["context"] === ctx.name)!.labels;
      assert.deepEqual(labels, { context: ctx.name, qos: ctx.qos, device: String(ctx.device) });
    }
    assert.equal(contextSample(families, "gpusched_context_allocation_failures_total", "tts"), 1);
    assert.equal(contextSample(families, "gpusched_context_cached_bytes", "tts"), 2 * MB);
  },
  { hostMemory: 256 * MB },
);

backendTest("formatPrometheus() escapes quotes, backslashes and newlines in context names", () => {
  const names = [
    'say "hi"',
    "C:\\models\\llm",
    "two\nlines",
    '\\"\n\\n',
    "plain ünïcödé {x=1}, ok",
  ];
  for (const name of names) createContext(name, { maxVram: 16 * MB }).alloc(1 * MB);
  const text = formatPrometheus();
  assert.ok(text.includes('context="say \\"hi\\""'));
  assert.ok(text.includes('context="C:\\\\models\\\\llm"'));
  assert.ok(text.includes('context="two\\nlines"'));
  assert.ok(text.includes('context="\\\\\\"\\n\\\\n"'));
  const families = parsePrometheus(text); // also checks each line's grammar
  for (const name of names) {
    assert.equal(contextSample(families, "gpusched_context_used_bytes", name), 1 * MB, name);
  }
  assert.equal(family(families, "gpusched_context_used_bytes").metrics.length, names.length);
}, { hostMemory: 256 * MB });

backendTest("formatPrometheus() without contexts still declares every family", () => {
  const families = parsePrometheus(formatPrometheus());
  assert.equal(families.length, DEVICE_GAUGES.length + GAUGES.length + COUNTERS.length);
  for (const f of families) {
    const devices = getScheduler().devices.length;
    assert.equal(f.metrics.length, f.name.startsWith("gpusched_device_") ? devices : 0, f.name);
  }
}, { hostMemory: 256 * MB });

backendTest(
  "formatPrometheus() of a JSON round trip equals that of the snapshot, and a fresh one by default",
  () => {
    createContext("llm", { maxVram: 16 * MB }).alloc(1 * MB);
    const m = getMetrics();
    assert.equal(formatPrometheus(JSON.parse(JSON.stringify(m))), formatPrometheus(m));
    assert.equal(formatPrometheus(), formatPrometheus(getMetrics()));
  },
  { hostMemory: 256 * MB },
);

Deno.test("formatPrometheus() of a made-up snapshot needs no scheduler, and bad input is a TypeError", () => {
  const text = formatPrometheus({
    devices: [{ index: 3, name: "x", memoryLimit: 10, available: 4 }],
    contexts: [],
  });
  assertExpositionGrammar(text);
  assert.ok(text.includes('gpusched_device_available_bytes{device="3"} 4\n'));
  for (const bad of [null, 5, "text", {}, { devices: [] }, { devices: [], contexts: [{}] }]) {
    assert.throws(
      () => formatPrometheus(bad as unknown as Metrics),
      (e: unknown) => e instanceof TypeError && /Cannot format metrics/.test(e.message),
      JSON.stringify(bad),
    );
  }
});

Deno.test("getMetrics() and formatPrometheus() before initialize and after shutdown throw SchedulerError", () => {
  assert.throws(() => getMetrics(), SchedulerError);
  assert.throws(() => formatPrometheus(), SchedulerError);
  initialize({ backend: "host" });
  createContext("llm", { maxVram: 16 * MB });
  shutdown();
  assert.throws(() => getMetrics(), /not initialized/);
});

Deno.test("getMetrics().contexts lists live contexts in creation order, across devices", () => {
  initialize({ backend: "host", hostDevices: 2, hostMemory: 64 * MB });
  try {
    createContext("first", { maxVram: MB, device: 1 });
    const gone = createContext("gone", { maxVram: MB });
    createContext("second", { maxVram: MB });
    createContext("third", { maxVram: MB, device: 1 });
    gone.destroy();
    createContext("gone", { maxVram: MB });
    assert.deepEqual(
      getMetrics().contexts.map((c) => [c.name, c.device]),
      [["first", 1], ["second", 0], ["third", 1], ["gone", 0]],
    );
  } finally {
    shutdown();
  }
});
