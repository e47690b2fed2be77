/**
 * The timeline as a Chrome trace (JSON), which https://ui.perfetto.dev and
 * chrome://tracing open: the library's own trace of the run (`startTrace()`:
 * a track per context with its allocations, copies, waits, evictions and a
 * memory counter track, flow arrows between recorded and awaited events)
 * plus a "<context> (device)" track per context with the device spans.
 *
 * @module
 */
import type { ChromeTrace } from "../../mod.ts";
import type { Timeline } from "./timeline.ts";

/** The trace of a timeline, ready for `JSON.stringify`; the title labels the process. */
export function chromeTrace(timeline: Timeline): ChromeTrace {
  const { trace } = timeline;
  return {
    ...trace,
    traceEvents: [
      ...trace.traceEvents,
      { ph: "M", name: "process_labels", pid: 1, tid: 0, args: { labels: timeline.title } },
    ],
  };
}
