/**
 * Metrics (API.md "Metrics"): counters exactly as defined, per context and
 * per device, through the Prometheus text as a real parser reads it.
 * Written from API.md and README.md only.
 */
import assert from "node:assert/strict";
import {
  createContext,
  destroyContext,
  formatPrometheus,
  getAvailableVram,
  getMetrics,
  MB,
  onMemoryPressure,
  QoSPolicy,
  VramBudgetExceededError,
} from "../mod.ts";
import { parsePrometheus } from "./_prometheus.ts";
import { caught, probe, rejected } from "./_probe.ts";

const counters = (name: string) => getMetrics().contexts.find((c) => c.name === name)!.counters;

probe("pressureEvents counts every handler call, for the asking context only", () => {
  const asker = createContext("asker", { maxVram: 32 * MB, qos: QoSPolicy.BEST_EFFORT });
  const other = createContext("other", { maxVram: 32 * MB, qos: QoSPolicy.BEST_EFFORT });
  const held = other.alloc(20 * MB);
  const calls: string[] = [];
  const offs = [1, 2, 3].map(() =>
    onMemoryPressure((ctx) => {
      calls.push(ctx.name);
      return true;
    })
  );
  const error = caught(() => asker.alloc(20 * MB)); // 32 MiB device: 12 left
  assert.ok(error instanceof VramBudgetExceededError, `${error}`);
  assert.deepEqual(calls, ["asker", "asker", "asker"]);
  assert.equal(counters("asker").pressureEvents, 3);
  assert.equal(counters("asker").allocationFailures, 1);
  assert.equal(counters("other").pressureEvents, 0);
  assert.equal(counters("other").allocationFailures, 0);
  // The first handler gone, a refusing one added last: three calls, one more failure.
  offs[0]!();
  const offNo = onMemoryPressure((ctx) => {
    calls.push(`no:${ctx.name}`);
    return false;
  });
  calls.length = 0;
  assert.ok(caught(() => asker.alloc(20 * MB)) instanceof VramBudgetExceededError);
  assert.deepEqual(calls, ["asker", "asker", "no:asker"], "in registration order, up to the no");
  assert.equal(counters("asker").pressureEvents, 6);
  assert.equal(counters("asker").allocationFailures, 2);
  offNo();
  for (const off of offs) off();
  held.free();
  // Now it fits (the freed bytes are cached for other, available to everyone): no handler call.
  const before = counters("asker").pressureEvents;
  asker.alloc(20 * MB).free();
  assert.equal(counters("asker").allocations, 1);
  assert.equal(counters("asker").pressureEvents, before);
}, { hostMemory: 32 * MB, memoryLimit: 32 * MB });

probe("a context recreated under a destroyed one's name starts its counters at 0", () => {
  const a = createContext("same", { maxVram: 8 * MB });
  a.alloc(1 * MB);
  assert.ok(caught(() => a.alloc(9 * MB)) instanceof VramBudgetExceededError);
  assert.equal(counters("same").allocations, 1);
  destroyContext(a);
  assert.equal(getMetrics().contexts.length, 0, "only live contexts appear");
  assert.ok(!formatPrometheus().includes('context="same"'));
  createContext("same", { maxVram: 8 * MB });
  assert.deepEqual(counters("same"), {
    allocations: 0,
    allocationFailures: 0,
    evictions: 0,
    restores: 0,
    pressureEvents: 0,
  });
});

probe("metrics of two devices: each device, each context's device label", () => {
  createContext("zero", { maxVram: 8 * MB, qos: QoSPolicy.GUARANTEED, device: 0 });
  const one = createContext("one", { maxVram: 4 * MB, qos: QoSPolicy.GUARANTEED, device: 1 });
  one.alloc(1 * MB);
  const m = getMetrics();
  assert.deepEqual(m.devices.map((d) => d.index), [0, 1]);
  assert.deepEqual(m.devices.map((d) => d.memoryLimit), [64 * MB, 32 * MB]);
  assert.deepEqual(m.devices.map((d) => d.available), [getAvailableVram(0), getAvailableVram(1)]);
  assert.equal(m.contexts.find((c) => c.name === "one")!.device, 1);
  const families = parsePrometheus(formatPrometheus(m));
  const sample = (family: string, labels: Record<string, string>) => {
    const f = families.find((x) => x.name === family);
    assert.ok(f, `family ${family}`);
    const s = f.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v));
    assert.ok(s, `${family}${JSON.stringify(labels)}`);
    return Number(s.value);
  };
  assert.equal(sample("gpusched_device_memory_limit_bytes", { device: "1" }), 32 * MB);
  assert.equal(sample("gpusched_device_available_bytes", { device: "1" }), getAvailableVram(1));
  assert.equal(
    sample("gpusched_context_used_bytes", { context: "one", qos: one.qos, device: "1" }),
    1 * MB,
  );
  assert.equal(
    sample("gpusched_context_allocations_total", { context: "one", device: "1" }),
    1,
  );
  assert.equal(
    sample("gpusched_context_reserved_bytes", { context: "zero", device: "0" }),
    8 * MB,
  );
  for (const f of families) {
    assert.ok(f.help.length > 0, `${f.name} has HELP`);
    assert.equal(f.type, f.name.endsWith("_total") ? "COUNTER" : "GAUGE", f.name);
  }
}, { hostDevices: 2, hostMemory: 64 * MB, memoryLimit: [64 * MB, 32 * MB] });

probe("label values with every kind of character parse back to the context's name", () => {
  const names = [
    'q"uote',
    "back\\slash",
    "line\nfeed",
    "\\n literally",
    'all \\ " \n of them',
    "tab\there",
    "ünïcödé ☃ 🚀",
    "  spaces  ",
    "#hash {brace} =eq, comma",
  ];
  for (const name of names) createContext(name, { maxVram: 1 * MB });
  const families = parsePrometheus(formatPrometheus());
  for (const f of families.filter((x) => x.name.startsWith("gpusched_context_"))) {
    assert.deepEqual(
      f.metrics.map((s) => s.labels?.["context"]).sort(),
      [...names].sort(),
      `${f.name}: every context once, its name intact`,
    );
  }
});

probe(
  "allocationFailures counts each VramBudgetExceededError, also a refused restore",
  async () => {
    const ctx = createContext("a", { maxVram: 16 * MB });
    const spilled = ctx.alloc(10 * MB, { evictable: true });
    await spilled.write(new Uint8Array(16).fill(7));
    ctx.alloc(10 * MB); // evicts `spilled`: its own budget has no room for both
    assert.equal(spilled.state, "evicted");
    const errors: unknown[] = [];
    errors.push(await rejected(() => spilled.read(new Uint8Array(16))));
    errors.push(await rejected(() => spilled.resident()));
    errors.push(caught(() => spilled.ptr));
    for (const e of errors) assert.ok(e instanceof VramBudgetExceededError, `${e}`);
    // API.md: "allocationFailures each VramBudgetExceededError".
    assert.equal(counters("a").allocationFailures, errors.length);
  },
  {},
);
