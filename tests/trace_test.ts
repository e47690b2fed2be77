/**
 * The library-level timeline (startTrace/stopTrace): what it records, that
 * what it writes is valid Chrome trace JSON (counters, flows, async spans),
 * that it stays bounded, and that it records nothing while off.
 */
import assert from "node:assert/strict";
import {
  type ChromeTrace,
  createContext,
  initialize,
  isTracing,
  MB,
  onMemoryPressure,
  PartitionLimits,
  PartitionManager,
  QoSPolicy,
  readTrace,
  recordEvent,
  SchedulerError,
  shutdown,
  startTrace,
  stopTrace,
  traceSpan,
  VramBudgetExceededError,
  waitEvent,
} from "../mod.ts";
import { main as streamsEvents } from "../examples/streams_events.ts";
import { assertValidChromeTrace, trackId } from "./_chrome_trace.ts";
import { BACKENDS, gate, hold } from "./_helpers.ts";

function traceTest(name: string, fn: (backend: "host" | "cuda") => void | Promise<void>): void {
  for (const backend of BACKENDS) {
    Deno.test({
      name: `[${backend.name}] ${name}${backend.skip ? ` (skipped: ${backend.skip})` : ""}`,
      ignore: backend.skip !== undefined,
      async fn() {
        try {
          await fn(backend.name);
        } finally {
          if (isTracing()) stopTrace();
          shutdown();
        }
      },
    });
  }
}

function named(trace: ChromeTrace, name: string) {
  return trace.traceEvents.filter((e) => e.name === name && e.ph !== "M");
}

traceTest(
  "a trace of examples/streams_events.ts is valid Chrome trace JSON with counters, flows, copies and waits",
  async (backend) => {
    startTrace();
    await streamsEvents(backend);
    const trace = stopTrace();
    const events = assertValidChromeTrace(trace);
    const vision = trackId(trace, "vision"), tts = trackId(trace, "tts");

    // Memory counter tracks per context: vision allocated 1 MiB, then shutdown destroyed it.
    const counters = events.filter((e) => e.ph === "C" && e.name === "vision memory");
    assert.ok(counters.length >= 2);
    assert.deepEqual(counters[0]!.args, { used: 1 * MB, cached: 0, evicted: 0 });
    assert.deepEqual(counters.at(-1)!.args, { used: 0, cached: 0, evicted: 0 });
    assert.equal(
      events.find((e) => e.name === "alloc" && e.tid === vision)?.args?.["bytes"],
      1 * MB,
    );

    // recordEvent(vision) -> waitEvent(tts): an arrow from vision's track to tts's.
    const start = events.find((e) => e.ph === "s" && e.tid === vision);
    assert.ok(start, "a flow starts on vision's track");
    const end = events.find((e) => e.ph === "f" && e.id === start.id);
    assert.equal(end?.tid, tts);
    assert.ok(named(trace, "record event").some((e) => e.tid === vision));
    assert.ok(named(trace, "wait event").some((e) => e.tid === tts));

    // The write and the read as async spans from call to completion; the host waits too.
    for (const kind of ["write", "read"]) {
      const begin = events.find((e) => e.ph === "b" && e.name === kind);
      assert.equal(begin?.tid, vision, `${kind} on vision's track`);
      assert.ok(events.some((e) => e.ph === "e" && e.id === begin.id && e.cat === "copy"));
    }
    assert.equal(events.find((e) => e.ph === "b" && e.name === "write")!.args?.["bytes"], 1 * MB);
    assert.deepEqual(named(trace, "context create").map((e) => e.tid), [vision, tts]);
    assert.deepEqual(
      new Set(named(trace, "context destroy").map((e) => e.tid)),
      new Set([vision, tts]),
    );
    assert.equal(trace.otherData.producer, "gpusched");
    assert.equal(trace.otherData.dropped, 0);
  },
);

traceTest(
  "eviction, restore, pressure calls and refusals are traced on the context they happened to",
  async (backend) => {
    initialize({ backend, hostMemory: 64 * MB, memoryLimit: 64 * MB });
    startTrace({ capacity: 10_000 });
    const bg = createContext("bg", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT });
    const bufs = [0, 1, 2].map(() => bg.alloc(16 * MB, { evictable: true }));
    const llm = createContext("llm", { maxVram: 32 * MB, qos: QoSPolicy.GUARANTEED });
    const off = onMemoryPressure(() => {
      // Reentrant: a handler that allocates and frees in another context while tracing.
      llm.alloc(1 * MB).free();
      return true;
    });
    bg.alloc(16 * MB, { evictable: true });
    off();
    assert.throws(() => llm.alloc(64 * MB), VramBudgetExceededError);
    const evicted = bufs.find((b) => b.state === "evicted")!;
    await evicted.read(new Uint8Array(8));
    const trace = stopTrace();
    const events = assertValidChromeTrace(trace);
    const bgTrack = trackId(trace, "bg"), llmTrack = trackId(trace, "llm");
    assert.ok(
      named(trace, "evict").length >= 2 && named(trace, "evict").every((e) => e.tid === bgTrack),
    );
    assert.deepEqual(named(trace, "restore").map((e) => e.tid), [bgTrack]);
    const pressure = named(trace, "pressure handler");
    assert.deepEqual(pressure.map((e) => e.tid), [bgTrack]);
    assert.equal(pressure[0]!.args?.["requested"], 16 * MB);
    const refused = named(trace, "allocation failed");
    assert.deepEqual(refused.map((e) => [e.tid, e.args?.["requested"]]), [[llmTrack, 64 * MB]]);
    // The counter track follows evictions: evicted bytes went up on bg.
    const bgCounters = events.filter((e) => e.ph === "C" && e.tid === bgTrack);
    assert.ok(bgCounters.some((e) => (e.args!["evicted"] as number) >= 16 * MB));
    assert.ok(named(trace, "alloc").some((e) => e.tid === llmTrack), "the handler's allocation");
  },
);

traceTest("partition changes are traced on the scheduler's track", (backend) => {
  initialize({ backend });
  startTrace();
  const manager = new PartitionManager();
  manager.createPartition("llm", "LLM", new PartitionLimits().compute(0.25));
  manager.deletePartition("llm");
  manager.close();
  const trace = stopTrace();
  assertValidChromeTrace(trace);
  const scheduler = trackId(trace, "scheduler");
  const created = named(trace, "partition create");
  assert.equal(created.length, 1);
  assert.equal(created[0]!.tid, scheduler);
  assert.equal(created[0]!.args?.["id"], "llm");
  assert.equal(created[0]!.args?.["computeLimit"], 0.25);
  assert.ok((created[0]!.args?.["smCount"] as number) >= 0);
  assert.deepEqual(named(trace, "partition delete").map((e) => e.args?.["id"]), ["llm"]);
});

traceTest(
  "host waits on a stream or an event are async spans from the call to completion",
  async (backend) => {
    initialize({ backend });
    const a = createContext("a", { maxVram: 64 * MB });
    const b = createContext("b", { maxVram: 64 * MB });
    const buf = a.alloc(1 * MB);
    startTrace();
    const closed = gate();
    hold(backend, a.stream.handle, closed); // a's stream waits until the gate opens
    const written = buf.write(new Uint8Array(1 * MB));
    const ev = recordEvent(a);
    const streamDone = a.stream.synchronize();
    const eventDone = ev.synchronize();
    waitEvent(b, ev);
    closed.open();
    await Promise.all([written, streamDone, eventDone]);
    const trace = stopTrace();
    const events = assertValidChromeTrace(trace);
    const track = trackId(trace, "a");
    for (const name of ["stream.synchronize", "event.synchronize", "write"]) {
      const begin = events.find((e) => e.ph === "b" && e.name === name);
      assert.equal(begin?.tid, track, `${name} on a's track`);
      const end = events.find((e) => e.ph === "e" && e.id === begin.id && e.cat === begin.cat)!;
      assert.ok(end.ts! >= begin.ts!, `${name} ends after it began`);
    }
  },
);

traceTest("nothing is recorded while no trace records", async (backend) => {
  initialize({ backend });
  const a = createContext("a", { maxVram: 16 * MB });
  const b = createContext("b", { maxVram: 16 * MB });
  const buf = a.alloc(1 * MB);
  await buf.write(new Uint8Array(16));
  const ev = recordEvent(a);
  assert.equal(isTracing(), false);
  startTrace();
  waitEvent(b, ev); // recorded before the trace: a wait without an arrow
  buf.free();
  const trace = stopTrace();
  const events = assertValidChromeTrace(trace);
  assert.deepEqual(
    events.filter((e) => e.ph !== "C").map((e) => e.name),
    ["wait event", "free"],
  );
  a.alloc(1 * MB).free(); // after stopTrace: nowhere to go, no error
  assert.throws(() => readTrace(), SchedulerError);
});

traceTest(
  "the ring buffer keeps the newest events only, and what it writes stays valid",
  async (backend) => {
    initialize({ backend });
    const a = createContext("a", { maxVram: 16 * MB });
    const b = createContext("b", { maxVram: 16 * MB });
    startTrace({ capacity: 25 });
    for (let i = 0; i < 40; i++) {
      const buf = a.alloc(64 * 1024);
      waitEvent(b, recordEvent(a));
      await buf.write(new Uint8Array(8));
      buf.free();
    }
    const mid = readTrace(); // still recording: in-flight spans are left out
    assertValidChromeTrace(mid);
    assert.ok(isTracing());
    const trace = stopTrace();
    const events = assertValidChromeTrace(trace);
    assert.ok(events.length <= 25, `${events.length} events kept`);
    assert.ok(trace.otherData.dropped > 0);
    assert.equal(trace.otherData.capacity, 25);
    assert.equal(events.at(-1)!.name, "a memory", "the newest event is the last free's counter");
  },
);

traceTest(
  "a trace spans a scheduler's shutdown and restart, and pending waits are left out",
  async (backend) => {
    startTrace();
    initialize({ backend });
    const a = createContext("a", { maxVram: 16 * MB });
    const buf = a.alloc(1 * MB);
    const pending = buf.write(new Uint8Array(1 * MB));
    shutdown(); // mid-transfer
    await pending.catch(() => {});
    initialize({ backend });
    createContext("a", { maxVram: 16 * MB }).alloc(1 * MB);
    const trace = stopTrace();
    assertValidChromeTrace(trace);
    assert.equal(named(trace, "context create").length, 2);
    assert.equal(
      new Set(named(trace, "context create").map((e) => e.tid)).size,
      2,
      "a track per stream",
    );
  },
);

Deno.test("traceSpan() adds the application's own spans on named or context tracks", () => {
  initialize({ backend: "host" });
  try {
    const llm = createContext("llm", { maxVram: 16 * MB });
    traceSpan("ignored", 0, 1); // not recording: nothing, no error
    startTrace();
    const t = performance.now();
    traceSpan("prefill", t, t + 2, { context: llm, args: { tokens: 128 } });
    traceSpan("request 1", t, t + 5, { track: "requests" });
    traceSpan("request 2", t + 5, t + 6, { track: "requests" });
    const trace = stopTrace();
    const events = assertValidChromeTrace(trace);
    const prefill = events.find((e) => e.name === "prefill")!;
    assert.equal(prefill.tid, trackId(trace, "llm"));
    assert.equal(prefill.dur, 2000);
    assert.deepEqual(prefill.args, { tokens: 128 });
    const requests = trackId(trace, "requests");
    assert.deepEqual(events.filter((e) => e.tid === requests).map((e) => e.name), [
      "request 1",
      "request 2",
    ]);
    assert.ok(!events.some((e) => e.name === "ignored"));
  } finally {
    shutdown();
  }
});

Deno.test("trace functions refuse bad input and calls out of order, changing nothing", () => {
  assert.throws(() => stopTrace(), /Cannot stop the trace: none is recording/);
  assert.throws(() => readTrace(), SchedulerError);
  for (const capacity of [0, -1, 1.5, NaN, 1e8]) {
    assert.throws(
      () => startTrace({ capacity: capacity as number }),
      (e: unknown) => e instanceof RangeError && /capacity must be an integer/.test(e.message),
      String(capacity),
    );
  }
  for (const capacity of ["10", null]) { // the wrong type
    assert.throws(
      () => startTrace({ capacity: capacity as unknown as number }),
      (e: unknown) => e instanceof TypeError && /capacity must be a number/.test(e.message),
      String(capacity),
    );
  }
  assert.throws(() => startTrace(5 as unknown as object), TypeError);
  assert.equal(isTracing(), false);
  startTrace({ capacity: 1 });
  try {
    assert.throws(() => startTrace(), /already recording/);
    assert.throws(() => traceSpan("", 0, 1), RangeError); // a string, but empty
    assert.throws(() => traceSpan(7 as never, 0, 1), TypeError);
    assert.throws(() => traceSpan("x", 2, 1), /endMs \(1\) must not be before startMs \(2\)/);
    assert.throws(() => traceSpan("x", NaN, 1), RangeError);
    assert.throws(() => traceSpan("x", 0, 1, { track: "" }), RangeError);
    assert.throws(() => traceSpan("x", 0, 1, { context: {} as never }), /ExecutionContext/);
    traceSpan("kept", 0, 1);
  } finally {
    const trace = stopTrace();
    assert.deepEqual(trace.traceEvents.filter((e) => e.ph !== "M").map((e) => e.name), ["kept"]);
  }
});
