/**
 * The Chrome trace event format (JSON object form) that
 * https://ui.perfetto.dev and chrome://tracing open, and how recorded
 * events become a valid file: paired flow and async events only, sorted,
 * with the names of the process and of every track.
 *
 * @module
 */

/** One event of a Chrome trace (times in microseconds). */
export interface ChromeTraceEvent {
  /** Event name (slice, counter track or metadata name). */
  name: string;
  /**
   * Phase: `"X"` complete slice, `"i"` instant, `"C"` counter, `"s"`/`"f"`
   * flow start/finish, `"b"`/`"e"` async begin/end, `"M"` metadata.
   */
  ph: "X" | "i" | "C" | "s" | "f" | "b" | "e" | "M";
  /** Process id: 1, gpusched. */
  pid: number;
  /** Track (thread) id: 1 is the scheduler itself, then one per stream or named track. */
  tid: number;
  /** Microseconds on the `performance.now()` clock (absent on metadata). */
  ts?: number;
  /** `"X"` only: microseconds. */
  dur?: number;
  /** Category: memory, context, pressure, event, wait, copy, partition, app. */
  cat?: string;
  /** Flow and async events: what pairs them. */
  id?: number;
  /** `"i"` only: scope, `"t"` (thread). */
  s?: "t";
  /** `"f"` only: `"e"` binds the arrow to the enclosing slice. */
  bp?: "e";
  /** Details shown with the event; counter values for `"C"`. */
  args?: Record<string, string | number | boolean>;
}

/** What `stopTrace()` and `readTrace()` return: `JSON.stringify` it into a `.json` file. */
export interface ChromeTrace {
  /** Every event, oldest first, then the metadata naming the process and tracks. */
  traceEvents: ChromeTraceEvent[];
  /** How viewers show times. */
  displayTimeUnit: "ms";
  /** About the recording. */
  otherData: {
    /** Always `"gpusched"`. */
    producer: "gpusched";
    /** The ring buffer's capacity in events. */
    capacity: number;
    /** Events the ring buffer let go because it was full (oldest first). */
    dropped: number;
  };
}

/** @internal The process every event belongs to. */
export const PID = 1;

/**
 * @internal Recorded events as a valid trace: flows and async spans whose
 * other half was dropped (or is still pending) are left out; sorted by time.
 */
export function toChromeTrace(
  recorded: readonly ChromeTraceEvent[],
  trackNames: ReadonlyMap<number, string>,
  capacity: number,
  dropped: number,
): ChromeTrace {
  const halves = new Map<string, number>();
  const pairKey = (e: ChromeTraceEvent) =>
    e.ph === "s" || e.ph === "f" ? `flow ${e.id}` : `${e.cat} ${e.id}`;
  for (const e of recorded) {
    if (e.id === undefined) continue;
    const bit = e.ph === "s" || e.ph === "b" ? 1 : 2;
    const key = pairKey(e);
    halves.set(key, (halves.get(key) ?? 0) | bit);
  }
  const events = recorded
    .filter((e) => e.id === undefined || halves.get(pairKey(e)) === 3)
    .map((e) => ({
      ...e,
      ts: round(e.ts!),
      ...(e.dur !== undefined ? { dur: round(e.dur) } : {}),
    }))
    .sort((a, b) => a.ts - b.ts);
  const used = new Set(events.map((e) => e.tid));
  const metadata: ChromeTraceEvent[] = [
    { ph: "M", name: "process_name", pid: PID, tid: 0, args: { name: "gpusched" } },
  ];
  for (const [tid, name] of [...trackNames].sort((a, b) => a[0] - b[0])) {
    if (!used.has(tid)) continue;
    metadata.push(
      { ph: "M", name: "thread_name", pid: PID, tid, args: { name } },
      { ph: "M", name: "thread_sort_index", pid: PID, tid, args: { sort_index: tid } },
    );
  }
  return {
    traceEvents: [...events, ...metadata],
    displayTimeUnit: "ms",
    otherData: { producer: "gpusched", capacity, dropped },
  };
}

/** Microseconds to a nanosecond's precision: no floating-point noise in the file. */
function round(us: number): number {
  return Math.round(us * 1000) / 1000;
}
