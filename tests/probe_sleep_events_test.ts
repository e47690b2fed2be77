/**
 * Adversarial tests of sleeping contexts, events, streams and metrics
 * (API.md "Sleeping contexts", "Streams and events", "Metrics"), written
 * from API.md and README.md only.
 */
import assert from "node:assert/strict";
import {
  AdmissionError,
  contextSession,
  createContext,
  destroyContext,
  formatPrometheus,
  getAvailableVram,
  getContextUsage,
  getMetrics,
  MB,
  PartitionConfig,
  PartitionManager,
  QoSPolicy,
  recordEvent,
  SchedulerError,
  VramBudgetExceededError,
  waitEvent,
} from "../mod.ts";
import { caught, probe, rejected } from "./_probe.ts";

const LIMIT = { hostMemory: 64 * MB };

function pattern(n: number, seed: number): Uint8Array {
  return new Uint8Array(n).map((_, i) => (i * 17 + seed) & 0xff);
}

probe("while asleep every refused call names the context as asleep; nothing is lost", async () => {
  const ctx = createContext("dreamer", { maxVram: 16 * MB, qos: QoSPolicy.GUARANTEED });
  const buf = ctx.alloc(4 * MB);
  const data = pattern(4 * MB, 1);
  await buf.write(data);
  const available = getAvailableVram();
  await ctx.sleep();
  assert.equal(ctx.sleeping, true);
  assert.equal(getAvailableVram(), available + 16 * MB, "reservation released");
  const u = getContextUsage(ctx);
  assert.equal(u.used, 0);
  assert.equal(u.reserved, 0);
  assert.equal(u.evicted, 4 * MB);
  const refusals: [string, () => unknown][] = [
    ["alloc", () => ctx.alloc(16)],
    ["ptr", () => buf.ptr],
    ["write", () => buf.write(new Uint8Array(1))],
    ["read", () => buf.read(new Uint8Array(1))],
    ["pin", () => buf.pin()],
    ["sleep", () => ctx.sleep()],
    ["session alloc", () => contextSession(ctx, (c) => c.alloc(16))],
  ];
  for (const [what, fn] of refusals) {
    const e = await rejected(fn);
    assert.ok(e instanceof SchedulerError, `${what}: got ${e}`);
    assert.match((e as Error).message, /dreamer/, what);
    assert.match((e as Error).message, /asleep/, what);
  }
  assert.equal(ctx.sleeping, true);
  await ctx.wake();
  const out = new Uint8Array(4 * MB);
  await buf.read(out);
  assert.deepEqual(out, data);
}, LIMIT);

probe("sleep refuses while a buffer is pinned, moving nothing", async () => {
  const ctx = createContext("c", { maxVram: 16 * MB });
  const a = ctx.alloc(1 * MB), b = ctx.alloc(1 * MB);
  await a.write(pattern(1 * MB, 2));
  const pin = b.pin();
  const e = await rejected(() => ctx.sleep());
  assert.ok(e instanceof SchedulerError, `got ${e}`);
  assert.equal(ctx.sleeping, false);
  assert.equal(getContextUsage(ctx).used, 2 * MB);
  assert.equal(getContextUsage(ctx).evicted, 0);
  pin[Symbol.dispose]();
  pin[Symbol.dispose](); // a pin released twice does nothing
  await ctx.sleep();
  await ctx.wake();
  const out = new Uint8Array(1 * MB);
  await a.read(out);
  assert.deepEqual(out, pattern(1 * MB, 2));
}, LIMIT);

probe("a write called before sleep() is in what comes back", async () => {
  const ctx = createContext("c", { maxVram: 32 * MB });
  const buf = ctx.alloc(16 * MB);
  const data = pattern(16 * MB, 3);
  const w = buf.write(data); // not awaited
  const s = ctx.sleep();
  await Promise.all([w, s]);
  await ctx.wake();
  const out = new Uint8Array(16 * MB);
  await buf.read(out);
  assert.deepEqual(out, data);
}, LIMIT);

probe("free() and destroyContext while asleep give the host copy back", async () => {
  const ctx = createContext("c", { maxVram: 32 * MB, qos: QoSPolicy.GUARANTEED });
  const a = ctx.alloc(8 * MB), b = ctx.alloc(4 * MB);
  await ctx.sleep();
  a.free();
  a.free();
  assert.equal(getContextUsage(ctx).evicted, 4 * MB);
  await ctx.wake();
  assert.equal(getContextUsage(ctx).used, 4 * MB);
  await ctx.sleep();
  const before = getAvailableVram();
  destroyContext(ctx);
  assert.equal(getAvailableVram(), before, "a sleeping context held nothing on the device");
  void b;
  const again = createContext("c", { maxVram: 64 * MB, qos: QoSPolicy.GUARANTEED });
  again.alloc(64 * MB);
}, LIMIT);

probe("concurrent wake() calls join; wake() when awake resolves at once", async () => {
  const ctx = createContext("c", { maxVram: 16 * MB });
  const buf = ctx.alloc(8 * MB);
  await buf.write(pattern(8 * MB, 4));
  await ctx.sleep();
  await Promise.all([ctx.wake(), ctx.wake(), ctx.wake()]);
  assert.equal(ctx.sleeping, false);
  assert.equal(getContextUsage(ctx).used, 8 * MB, "restored once");
  await ctx.wake();
  const out = new Uint8Array(8 * MB);
  await buf.read(out);
  assert.deepEqual(out, pattern(8 * MB, 4));
}, LIMIT);

probe("a refused wake() leaves the context asleep and intact, and may be retried", async () => {
  const ctx = createContext("c", { maxVram: 32 * MB, qos: QoSPolicy.GUARANTEED });
  const buf = ctx.alloc(32 * MB);
  await buf.write(pattern(32 * MB, 5));
  await ctx.sleep();
  const hog = createContext("hog", { maxVram: 40 * MB, qos: QoSPolicy.GUARANTEED });
  for (let i = 0; i < 3; i++) {
    const e = await rejected(() => ctx.wake());
    assert.ok(e instanceof AdmissionError, `got ${e}`);
    assert.equal(ctx.sleeping, true);
    assert.equal(getContextUsage(ctx).reserved, 0);
    assert.equal(getContextUsage(ctx).evicted, 32 * MB);
    assert.equal(getAvailableVram(), 24 * MB);
  }
  destroyContext(hog);
  await ctx.wake();
  assert.equal(getContextUsage(ctx).reserved, 32 * MB);
  const out = new Uint8Array(32 * MB);
  await buf.read(out);
  assert.deepEqual(out, pattern(32 * MB, 5));
}, LIMIT);

probe("wake() of a GUARANTEED context reclaims evictable best-effort memory", async () => {
  const ctx = createContext("g", { maxVram: 48 * MB, qos: QoSPolicy.GUARANTEED });
  const buf = ctx.alloc(48 * MB);
  await buf.write(pattern(48 * MB, 6));
  await ctx.sleep();
  const be = createContext("be", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT });
  const x = be.alloc(56 * MB, { evictable: true });
  await x.write(pattern(56 * MB, 7));
  await ctx.wake();
  assert.equal(getContextUsage(be).evicted, 56 * MB);
  const out = new Uint8Array(48 * MB);
  await buf.read(out);
  assert.deepEqual(out, pattern(48 * MB, 6));
  buf.free();
  destroyContext(ctx);
  const back = new Uint8Array(56 * MB);
  await x.read(back);
  assert.deepEqual(back, pattern(56 * MB, 7));
}, LIMIT);

probe("events: unrecorded, destroyed, and elapsedMs between kinds of events", async (sched) => {
  const ev = sched.createEvent();
  assert.equal(ev.query(), true, "none recorded: complete");
  await ev.synchronize();
  ev.synchronizeSync();
  const s = sched.createStream();
  const t0 = sched.createEvent({ timing: true }).record(s);
  const t1 = sched.createEvent({ timing: true }).record(s);
  await t1.synchronize();
  const ms = t0.elapsedMs(t1);
  assert.ok(typeof ms === "number" && ms >= 0, `elapsed ${ms}`);
  ev.record(s);
  await ev.synchronize();
  // A plain event is the wrong kind of argument: a RangeError, not a native failure.
  assert.ok(caught(() => t0.elapsedMs(ev)) instanceof RangeError);
  assert.ok(caught(() => ev.elapsedMs(t0)) instanceof RangeError);
  for (const bad of [undefined, null, {}, 1]) {
    assert.ok(caught(() => t0.elapsedMs(bad as never)) instanceof TypeError);
    assert.ok(caught(() => ev.record(bad as never)) instanceof TypeError);
    assert.ok(caught(() => ev.wait(bad as never)) instanceof TypeError);
  }
  ev.destroy();
  ev.destroy();
  assert.equal(ev.destroyed, true);
  assert.ok(caught(() => ev.record(s)) instanceof SchedulerError);
  s.destroy();
  assert.ok(caught(() => s.query()) instanceof SchedulerError);
  assert.ok(caught(() => t0.record(s)) instanceof SchedulerError);
});

probe("10^4 concurrent waiters on streams and events all resolve", async (sched) => {
  const streams = Array.from({ length: 8 }, () => sched.createStream());
  const waits: Promise<void>[] = [];
  for (let i = 0; i < 10_000; i++) {
    const s = streams[i % 8]!;
    waits.push(i % 2 ? s.synchronize() : sched.createEvent().record(s).synchronize());
  }
  await Promise.all(waits);
  for (const s of streams) assert.equal(s.query(), true);
});

probe("getPartition and the lookups refuse ids that are not strings", () => {
  const m = new PartitionManager(new PartitionConfig({ totalMemory: 16 * MB }));
  assert.equal(m.getPartition("nope"), undefined);
  for (const bad of [undefined, null, 5, {}, Symbol("p")]) {
    assert.ok(caught(() => m.getPartition(bad as never)) instanceof TypeError, String(bad));
    assert.ok(caught(() => m.deletePartition(bad as never)) instanceof Error, String(bad));
  }
  assert.ok(caught(() => m.deletePartition("nope")) instanceof RangeError);
});

probe("Prometheus labels escape quotes, backslashes and newlines in context names", () => {
  const names = ['say "hi"', "back\\slash", "new\nline", "ünï ☃", "a,b=c{d}"];
  for (const name of names) createContext(name, { maxVram: 1 * MB });
  const text = formatPrometheus();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    assert.match(line, /^[a-z_]+\{.*\} \d+(\.\d+)?(e[+-]?\d+)?$/, `sample line: ${line}`);
  }
  assert.ok(text.includes('context="say \\"hi\\""'));
  assert.ok(text.includes('context="back\\\\slash"'));
  assert.ok(text.includes('context="new\\nline"'));
  assert.ok(text.includes('context="ünï ☃"'));
  for (
    const family of [
      "gpusched_device_memory_limit_bytes",
      "gpusched_device_available_bytes",
      "gpusched_context_used_bytes",
      "gpusched_context_max_bytes",
      "gpusched_context_reserved_bytes",
      "gpusched_context_cached_bytes",
      "gpusched_context_evicted_bytes",
      "gpusched_context_peak_bytes",
      "gpusched_context_allocations_total",
      "gpusched_context_allocation_failures_total",
      "gpusched_context_evictions_total",
      "gpusched_context_restores_total",
      "gpusched_context_pressure_events_total",
    ]
  ) {
    assert.ok(text.includes(`# HELP ${family} `), family);
    assert.ok(text.includes(`# TYPE ${family} `), family);
  }
  const m = getMetrics();
  assert.deepEqual(JSON.parse(JSON.stringify(m)), m, "JSON-serialisable");
  assert.deepEqual(m.contexts.map((c) => c.name).sort(), [...names].sort());
});

probe("metrics counters: allocations, failures, evictions, restores, pressure events", async () => {
  const be = createContext("be", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT });
  const x = be.alloc(32 * MB, { evictable: true });
  await x.write(new Uint8Array(8).fill(1));
  x.free();
  const y = be.alloc(32 * MB, { evictable: true }); // from cache: still an allocation
  await y.write(new Uint8Array(8).fill(2));
  const g = createContext("g", { maxVram: 48 * MB, qos: QoSPolicy.GUARANTEED });
  void g;
  assert.ok(caught(() => be.alloc(32 * MB)) instanceof Error); // a refusal
  // A refused restore is a VramBudgetExceededError too, so it counts as a failure.
  const restoreRefused = await y.resident().then(() => 0, (e) => {
    assert.ok(e instanceof VramBudgetExceededError, `${e}`);
    return 1;
  });
  const c = getMetrics().contexts.find((c) => c.name === "be")!.counters;
  assert.equal(c.allocations, 2);
  assert.equal(c.allocationFailures, 1 + restoreRefused);
  assert.ok(c.evictions >= 1, `evictions ${c.evictions}`);
  assert.ok(c.pressureEvents === 0, "no handler registered: none called");
  const gm = getMetrics().contexts.find((c) => c.name === "g")!;
  assert.equal(gm.reserved, 48 * MB);
  assert.equal(gm.counters.allocations, 0);
  waitEvent(g, recordEvent(be));
}, LIMIT);
