/**
 * Recording each context's device activity: a pair of timing events
 * (`sched.createEvent({ timing: true })`) recorded on the context's stream
 * around each group of kernels, turned into spans once they completed.
 * Times come from the device (CUDA events, or the host workers' clocks),
 * so a span is when the stream really ran that work, not when JavaScript
 * queued it.
 *
 * The library's own trace (`startTrace()`) records meanwhile what the
 * scheduler did (allocations, evictions, copies, waits, pressure calls);
 * the device spans join it on a "<context> (device)" track each, placed
 * on its clock through the origin event's host time.
 *
 * @module
 */
import {
  type ChromeTrace,
  type ExecutionContext,
  type GpuEvent,
  isTracing,
  readTrace,
  type Scheduler,
  startTrace,
  stopTrace,
  traceSpan,
} from "../../mod.ts";

/** A lane of the timeline: one context's stream. */
export interface Lane {
  /** The context's name. */
  readonly id: string;
  /** What the lane shows beside its name (class, priority, partition). */
  readonly detail: string;
}

/** A group of kernels that ran on a lane, in milliseconds from the timeline's origin. */
export interface Span {
  readonly lane: string;
  readonly name: string;
  readonly startMs: number;
  readonly durationMs: number;
  /** Shown with the span (Perfetto's arguments, the SVG's tooltips). */
  readonly args: Readonly<Record<string, string | number>>;
}

/** Everything the trace and SVG writers draw. */
export interface Timeline {
  readonly title: string;
  readonly lanes: readonly Lane[];
  readonly spans: readonly Span[];
  /** The library's trace of the run, the device spans included. */
  readonly trace: ChromeTrace;
}

interface Pending {
  readonly lane: string;
  readonly name: string;
  readonly start: GpuEvent;
  readonly end: GpuEvent;
  readonly args: Record<string, string | number>;
}

/** Events the demo's trace keeps: far more than a full-scale run records. */
const TRACE_CAPACITY = 1_000_000;

/** Records spans of device work per context. */
export class TimelineRecorder {
  readonly #sched: Scheduler;
  readonly #origin: GpuEvent;
  readonly #lanes: Lane[] = [];
  /** performance.now() when the origin was recorded on an idle stream: when it ran, near enough. */
  readonly #originMs: number;
  /** Whether this recorder started the library trace (and so stops it). */
  readonly #ownsTrace: boolean;
  #pending: Pending[] = [];

  /**
   * Records the origin, time 0, on `first`'s stream, and starts the
   * library trace unless one is recording already. Make it before any
   * context has work queued, so that the origin precedes every span.
   */
  constructor(sched: Scheduler, first: ExecutionContext) {
    this.#sched = sched;
    this.#ownsTrace = !isTracing();
    if (this.#ownsTrace) startTrace({ capacity: TRACE_CAPACITY });
    this.#origin = sched.createEvent({ timing: true }).record(first.stream);
    this.#originMs = performance.now();
  }

  /** Adds a lane for `ctx`; lanes are drawn in the order they were added. */
  addLane(ctx: ExecutionContext, detail: string): void {
    this.#lanes.push({ id: ctx.name, detail });
  }

  /**
   * Calls `enqueue`, which queues work on `ctx`'s stream, between a start
   * and an end timing event on that stream.
   *
   * @returns what `enqueue` returned
   */
  record<T>(
    ctx: ExecutionContext,
    name: string,
    enqueue: () => T,
    args: Record<string, string | number> = {},
  ): T {
    const end = this.begin(ctx, name, args);
    let result: T;
    try {
      result = enqueue();
    } finally {
      end();
    }
    return result;
  }

  /**
   * Records a start event on `ctx`'s stream now; the returned function
   * records the end event. For spans whose work is queued across awaits.
   */
  begin(
    ctx: ExecutionContext,
    name: string,
    args: Record<string, string | number> = {},
  ): () => void {
    const start = this.#sched.createEvent({ timing: true }).record(ctx.stream);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      const end = this.#sched.createEvent({ timing: true }).record(ctx.stream);
      this.#pending.push({ lane: ctx.name, name, start, end, args });
    };
  }

  /**
   * Waits for every recorded span to complete and measures it; the events
   * are destroyed. Adds the spans to the library trace and returns it with
   * them (stopping it when this recorder started it).
   */
  async finish(title: string): Promise<Timeline> {
    const pending = this.#pending;
    this.#pending = [];
    const spans: Span[] = [];
    for (const p of pending) {
      await p.end.synchronize();
      const startMs = this.#origin.elapsedMs(p.start)!;
      const durationMs = p.start.elapsedMs(p.end)!;
      spans.push({ lane: p.lane, name: p.name, startMs, durationMs, args: p.args });
      p.start.destroy();
      p.end.destroy();
    }
    this.#origin.destroy();
    spans.sort((a, b) => a.startMs - b.startMs);
    for (const lane of this.#lanes) {
      // One stream's spans never overlap; float32 event times could make
      // neighbours overlap by a rounding error, which a slice track refuses.
      let laneEnd = -Infinity;
      for (const span of spans.filter((s) => s.lane === lane.id)) {
        const start = Math.max(this.#originMs + span.startMs, laneEnd);
        laneEnd = start + span.durationMs;
        traceSpan(span.name, start, laneEnd, {
          track: `${lane.id} (device)`,
          args: span.args,
        });
      }
    }
    const trace = this.#ownsTrace ? stopTrace() : readTrace();
    return { title, lanes: [...this.#lanes], spans, trace };
  }
}

/**
 * Device milliseconds of a lane's spans (they never overlap: one stream
 * runs in order), of those that `include` accepts when given.
 */
export function busyMs(
  timeline: Timeline,
  lane: string,
  include: (span: Span) => boolean = () => true,
): number {
  return timeline.spans
    .filter((s) => s.lane === lane && include(s))
    .reduce((total, s) => total + s.durationMs, 0);
}

/** Milliseconds during which lanes `a` and `b` both ran work. */
export function overlapMs(timeline: Timeline, a: string, b: string): number {
  const of = (lane: string) => timeline.spans.filter((s) => s.lane === lane);
  let total = 0;
  for (const x of of(a)) {
    for (const y of of(b)) {
      const from = Math.max(x.startMs, y.startMs);
      const to = Math.min(x.startMs + x.durationMs, y.startMs + y.durationMs);
      if (to > from) total += to - from;
    }
  }
  return total;
}
