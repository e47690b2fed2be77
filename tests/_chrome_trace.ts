/**
 * A strict check of Chrome trace JSON (the Trace Event Format that
 * Perfetto and chrome://tracing import), for traces gpusched writes:
 * field types per phase, flows and async spans paired, flow ends inside a
 * slice of their track, slices of a track properly nested, every track named.
 */
import assert from "node:assert/strict";
import type { ChromeTrace, ChromeTraceEvent } from "../mod.ts";

const PHASES = new Set(["X", "i", "C", "s", "f", "b", "e", "M"]);

/** Fails with the first rule `trace` breaks. Returns its events without metadata. */
export function assertValidChromeTrace(trace: ChromeTrace): ChromeTraceEvent[] {
  assert.deepEqual(JSON.parse(JSON.stringify(trace)), trace, "plain JSON data");
  assert.ok(Array.isArray(trace.traceEvents), "traceEvents is an array");
  assert.equal(trace.displayTimeUnit, "ms");
  const events = trace.traceEvents.filter((e) => e.ph !== "M");
  const metadata = trace.traceEvents.filter((e) => e.ph === "M");
  for (const e of trace.traceEvents) {
    const what = JSON.stringify(e);
    assert.ok(PHASES.has(e.ph), `known phase: ${what}`);
    assert.equal(typeof e.name, "string", `name: ${what}`);
    assert.ok(Number.isInteger(e.pid) && Number.isInteger(e.tid), `pid and tid: ${what}`);
    if (e.ph === "M") {
      assert.ok(
        ["process_name", "thread_name", "thread_sort_index", "process_labels"].includes(e.name),
      );
      continue;
    }
    assert.ok(typeof e.ts === "number" && Number.isFinite(e.ts) && e.ts >= 0, `ts: ${what}`);
    if (e.ph === "X") assert.ok(typeof e.dur === "number" && e.dur >= 0, `dur: ${what}`);
    if (e.ph === "i") assert.equal(e.s, "t", `instant scope: ${what}`);
    if (e.ph === "C") {
      const values = Object.values(e.args ?? {});
      assert.ok(
        values.length > 0 && values.every((v) => typeof v === "number"),
        `counter: ${what}`,
      );
    }
    if ("sfbe".includes(e.ph)) {
      assert.ok(e.id !== undefined && typeof e.cat === "string", `id and cat: ${what}`);
    }
  }
  for (let i = 1; i < events.length; i++) {
    assert.ok(events[i]!.ts! >= events[i - 1]!.ts!, "events sorted by time");
  }
  assertPairs(events, "s", "f");
  assertPairs(events, "b", "e");
  const slices = events.filter((e) => e.ph === "X");
  for (const flow of events.filter((e) => e.ph === "s" || e.ph === "f")) {
    assert.ok(
      slices.some((x) =>
        x.tid === flow.tid && x.pid === flow.pid && x.ts! <= flow.ts! && flow.ts! <= x.ts! + x.dur!
      ),
      `flow ${flow.ph} ${flow.id} lies inside a slice of its track`,
    );
  }
  assertNested(slices);
  const named = new Set(metadata.filter((m) => m.name === "thread_name").map((m) => m.tid));
  for (const e of events) assert.ok(named.has(e.tid), `track ${e.tid} has a thread_name`);
  assert.ok(metadata.some((m) => m.name === "process_name"), "the process is named");
  return events;
}

function assertPairs(events: ChromeTraceEvent[], open: string, close: string): void {
  const opened = new Map<string, ChromeTraceEvent>();
  const closed = new Set<string>();
  for (const e of events) {
    const key = `${e.cat} ${e.id}`;
    if (e.ph === open) {
      assert.ok(!opened.has(key), `one "${open}" per id: ${key}`);
      opened.set(key, e);
    } else if (e.ph === close) {
      const start = opened.get(key);
      assert.ok(start, `"${close}" ${key} follows its "${open}"`);
      assert.ok(!closed.has(key), `one "${close}" per id: ${key}`);
      assert.ok(e.ts! >= start.ts!, `${key} ends after it starts`);
      closed.add(key);
    }
  }
  assert.equal(closed.size, opened.size, `every "${open}" has its "${close}"`);
}

/** Slices of one track either nest or do not overlap (what Perfetto's slice tracks need). */
function assertNested(slices: ChromeTraceEvent[]): void {
  const byTrack = Map.groupBy(slices, (x) => x.tid);
  for (const [tid, list] of byTrack) {
    const open: number[] = [];
    for (const x of [...list].sort((a, b) => a.ts! - b.ts! || b.dur! - a.dur!)) {
      while (open.length > 0 && open.at(-1)! <= x.ts!) open.pop();
      const end = x.ts! + x.dur!;
      if (open.length > 0) {
        assert.ok(end <= open.at(-1)!, `slices on track ${tid} nest: ${x.name} at ${x.ts}`);
      }
      open.push(end);
    }
  }
}

/** The tid of the track called `name`; fails when absent. */
export function trackId(trace: ChromeTrace, name: string): number {
  const meta = trace.traceEvents.find((e) =>
    e.ph === "M" && e.name === "thread_name" && e.args?.["name"] === name
  );
  assert.ok(meta, `a track named ${JSON.stringify(name)}`);
  return meta.tid;
}
