/**
 * The timeline as a Chrome trace (JSON), which https://ui.perfetto.dev and
 * chrome://tracing open: one process for the device, one thread (tid) per
 * context, an "X" (complete) event per span with times in microseconds.
 *
 * @module
 */
import type { Timeline } from "./timeline.ts";

const PID = 1;

/** The trace of a timeline, ready for `JSON.stringify`. */
export function chromeTrace(timeline: Timeline): { traceEvents: unknown[]; displayTimeUnit: "ms" } {
  const tid = new Map(timeline.lanes.map((lane, i) => [lane.id, i + 1]));
  const events: unknown[] = [
    { ph: "M", name: "process_name", pid: PID, tid: 0, args: { name: timeline.title } },
  ];
  timeline.lanes.forEach((lane, i) => {
    events.push(
      {
        ph: "M",
        name: "thread_name",
        pid: PID,
        tid: i + 1,
        args: { name: `${lane.id} (${lane.detail})` },
      },
      { ph: "M", name: "thread_sort_index", pid: PID, tid: i + 1, args: { sort_index: i } },
    );
  });
  for (const span of timeline.spans) {
    events.push({
      ph: "X",
      name: span.name,
      cat: span.lane,
      pid: PID,
      tid: tid.get(span.lane) ?? 0,
      ts: round(span.startMs * 1000),
      dur: round(span.durationMs * 1000),
      args: span.args,
    });
  }
  return { traceEvents: events, displayTimeUnit: "ms" };
}

/** Microseconds to a nanosecond's precision: no floating-point noise in the file. */
function round(us: number): number {
  return Math.round(us * 1000) / 1000;
}
