/**
 * The library-level timeline: `startTrace()` records what the scheduler
 * itself does into a bounded ring buffer, `stopTrace()` (or `readTrace()`
 * while it keeps recording) returns it as a Chrome trace that
 * https://ui.perfetto.dev and chrome://tracing open.
 *
 * @module
 */

import { ExecutionContext } from "../context/execution_context.ts";
import { SchedulerError } from "../errors.ts";
import { requireNonEmptyString, requireOptions, show } from "../validate.ts";
import type { ChromeTrace } from "./chrome.ts";
import { beginRecording, recordedTrace, traceAppSpan, tracing } from "./recorder.ts";

/** Options of `startTrace()`. */
export interface TraceOptions {
  /**
   * Most events kept (default 100,000, at most 10,000,000); when full, the
   * oldest make way, so memory stays bounded however long it records.
   */
  capacity?: number;
}

/** Options of `traceSpan()`. */
export interface TraceSpanOptions {
  /** Draw it on this context's track (default: the track named by `track`). */
  context?: ExecutionContext;
  /** Name of the track to draw it on, made on first use (default `"app"`). */
  track?: string;
  /** Details shown with the span. */
  args?: Record<string, string | number | boolean>;
}

const DEFAULT_CAPACITY = 100_000;
const MAX_CAPACITY = 10_000_000;

/**
 * Starts recording the scheduler's own events: allocations and frees (with
 * a memory counter track per context: used, cached, evicted bytes),
 * evictions and restores, refused allocations, memory-pressure handler
 * calls, contexts created and destroyed, event records and waits (with a
 * flow arrow from each `recordEvent` to each `waitEvent` on it), host waits
 * (`synchronize()`) from call to completion, copies (`write`/`read`) from
 * call to completion, and partition changes. Times are on the
 * `performance.now()` clock. Works with or without an initialized
 * scheduler; while no trace records, the library pays one boolean check
 * per hook.
 *
 * @example
 * ```ts
 * import { createContext, initialize, MB, shutdown, startTrace, stopTrace } from "@gpusched/core";
 * import assert from "node:assert/strict";
 * initialize({ backend: "host" });
 * startTrace({ capacity: 10_000 });
 * const llm = createContext("llm", { maxVram: 64 * MB });
 * llm.alloc(1 * MB).free();
 * const trace = stopTrace(); // JSON.stringify(trace) opens in https://ui.perfetto.dev
 * assert.ok(trace.traceEvents.some((e) => e.ph === "C" && e.name === "llm memory"));
 * shutdown();
 * ```
 * @throws {TypeError} for a capacity that is not a number
 * @throws {RangeError} for a capacity that is not an integer in [1, 10,000,000]
 * @throws {SchedulerError} when a trace is already recording
 */
export function startTrace(options?: TraceOptions): void {
  const doing = "Cannot start a trace";
  const opts = requireOptions<TraceOptions>(options, doing);
  let capacity = DEFAULT_CAPACITY;
  if (opts.capacity !== undefined) {
    if (typeof opts.capacity !== "number") {
      throw new TypeError(`${doing}: capacity must be a number, got ${show(opts.capacity)}`);
    }
    if (
      typeof opts.capacity !== "number" || !Number.isSafeInteger(opts.capacity) ||
      opts.capacity < 1 || opts.capacity > MAX_CAPACITY
    ) {
      throw new RangeError(
        `${doing}: capacity must be an integer from 1 to ${MAX_CAPACITY}, got ${
          show(opts.capacity)
        }`,
      );
    }
    capacity = opts.capacity;
  }
  if (tracing.on) {
    throw new SchedulerError(`${doing}: a trace is already recording, call stopTrace() first`);
  }
  beginRecording(capacity);
}

/**
 * Stops recording and returns the trace: the newest `capacity` events,
 * sorted by time, flows and async spans only where both halves were kept.
 *
 * @example Writing a file Perfetto opens
 * ```ts ignore
 * import { startTrace, stopTrace } from "@gpusched/core";
 * startTrace();
 * // ... the application runs ...
 * await Deno.writeTextFile("out/trace.json", JSON.stringify(stopTrace()));
 * ```
 * @throws {SchedulerError} when no trace is recording
 */
export function stopTrace(): ChromeTrace {
  return recordedTrace(true) ?? notRecording("stop");
}

/**
 * The trace recorded so far, while recording goes on: a flight recorder
 * to dump when something went wrong. Waits and copies still in flight are
 * left out.
 *
 * @example
 * ```ts
 * import { readTrace, startTrace, stopTrace } from "@gpusched/core";
 * import assert from "node:assert/strict";
 * startTrace();
 * assert.equal(readTrace().otherData.dropped, 0);
 * stopTrace();
 * ```
 * @throws {SchedulerError} when no trace is recording
 */
export function readTrace(): ChromeTrace {
  return recordedTrace(false) ?? notRecording("read");
}

/**
 * True while a trace records.
 *
 * @example
 * ```ts
 * import { isTracing, startTrace, stopTrace } from "@gpusched/core";
 * import assert from "node:assert/strict";
 * startTrace();
 * assert.ok(isTracing());
 * stopTrace();
 * assert.ok(!isTracing());
 * ```
 */
export function isTracing(): boolean {
  return tracing.on;
}

/**
 * Adds a span the application measured itself (a model's step, a request)
 * to the trace, on a context's track or a named one. Times are
 * `performance.now()` milliseconds. Does nothing while no trace records.
 *
 * @example
 * ```ts
 * import { startTrace, stopTrace, traceSpan } from "@gpusched/core";
 * import assert from "node:assert/strict";
 * startTrace();
 * const start = performance.now();
 * traceSpan("tokenize", start, performance.now(), { track: "requests", args: { tokens: 12 } });
 * assert.ok(stopTrace().traceEvents.some((e) => e.ph === "X" && e.name === "tokenize"));
 * ```
 * @throws {TypeError | RangeError} for a bad name, times (`endMs` before `startMs`) or options
 */
export function traceSpan(
  name: string,
  startMs: number,
  endMs: number,
  options?: TraceSpanOptions,
): void {
  const doing = "Cannot add a trace span";
  requireNonEmptyString(name, "name", doing);
  for (const [option, value] of [["startMs", startMs], ["endMs", endMs]] as const) {
    if (typeof value !== "number" || !Number.isFinite(value)) {
      throw new RangeError(`${doing}: ${option} must be a finite number, got ${show(value)}`);
    }
  }
  if (endMs < startMs) {
    throw new RangeError(`${doing}: endMs (${endMs}) must not be before startMs (${startMs})`);
  }
  const opts = requireOptions<TraceSpanOptions>(options, doing);
  if (opts.track !== undefined) requireNonEmptyString(opts.track, "track", doing);
  if (opts.context !== undefined && !ExecutionContext.isReal(opts.context)) {
    throw new TypeError(`${doing}: context must be an ExecutionContext, got ${show(opts.context)}`);
  }
  if (!tracing.on) return;
  traceAppSpan(
    {
      ...(opts.context ? { context: opts.context } : {}),
      ...(opts.track ? { name: opts.track } : {}),
    },
    name,
    startMs * 1000,
    (endMs - startMs) * 1000,
    opts.args ?? {},
  );
}

function notRecording(doing: string): never {
  throw new SchedulerError(`Cannot ${doing} the trace: none is recording, call startTrace() first`);
}
