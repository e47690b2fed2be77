/**
 * The trace recorder: a ring buffer of Chrome trace events, and the hooks
 * that the scheduler's code calls where something happens.
 *
 * Every call site reads `if (tracing.on) traceX(...)`: while no trace is
 * recording, a hook costs one property load and a branch, nothing else.
 *
 * Tracks (Chrome "threads"): 1 is the scheduler itself (partitions), then
 * one per stream, named after its context or pool, and one per name given
 * to `traceSpan`. Flow arrows go from the `record event` slice on the
 * recording stream's track to the `wait event` slice on the waiting one.
 *
 * @module
 */

import { type ChromeTrace, type ChromeTraceEvent, PID, toChromeTrace } from "./chrome.ts";
import { EventRing, Kind } from "./ring.ts";

/** @internal The one flag every hook site checks. */
export const tracing = { on: false };

/**
 * Width of the `record event` / `wait event` slices that flow arrows bind
 * to: 1 ns, so that two of them on one track can never partly overlap
 * (slices of a track must nest), however close together the calls were.
 */
const MARK_US = 0.001;
const SCHEDULER_TID = 1;

interface RecordMark {
  readonly ts: number;
  readonly tid: number;
  sliceEmitted: boolean;
}

type Args = Record<string, string | number | boolean>;

class Recording {
  readonly ring: EventRing;
  readonly names = new Map<number, string>([[SCHEDULER_TID, "scheduler"]]);
  readonly #labels = new Set<string>(["scheduler"]);
  readonly #tracks = new WeakMap<object, number>();
  readonly #named = new Map<string, number>();
  readonly #generic = new Set<number>();
  readonly marks = new WeakMap<object, RecordMark>();
  #nextTid = SCHEDULER_TID + 1;
  #nextId = 1;

  constructor(capacity: number) {
    this.ring = new EventRing(capacity);
  }

  /**
   * The track of a stream (or other owner object), named `label` when it
   * is new. A track first seen without a label (a bare stream, shown as
   * `stream <id>`) takes the label of the first context or pool that uses it.
   */
  track(owner: object, label: string | undefined, streamId = 0): number {
    let tid = this.#tracks.get(owner);
    if (tid === undefined) {
      tid = this.#newTrack(label ?? `stream ${streamId}`);
      this.#tracks.set(owner, tid);
      if (label === undefined) this.#generic.add(tid);
    } else if (label !== undefined && this.#generic.size > 0 && this.#generic.delete(tid)) {
      this.#labels.delete(this.names.get(tid)!);
      this.#name(tid, label);
    }
    return tid;
  }

  /** The track called `name` (for `traceSpan`). */
  named(name: string): number {
    let tid = this.#named.get(name);
    if (tid === undefined) {
      tid = this.#newTrack(name);
      this.#named.set(name, tid);
    }
    return tid;
  }

  #newTrack(label: string): number {
    const tid = this.#nextTid++;
    this.#name(tid, label);
    return tid;
  }

  #name(tid: number, label: string): void {
    // Two pools may share a name; their tracks (and counter tracks) must not.
    const name = this.#labels.has(label) ? `${label} #${tid}` : label;
    this.#labels.add(name);
    this.names.set(tid, name);
  }

  id(): number {
    return this.#nextId++;
  }

  trace(): ChromeTrace {
    const events: ChromeTraceEvent[] = [];
    this.ring.forEach((kind, ts, tid, ref, a, b, c) => {
      if (kind === Kind.EVENT) events.push(ref as ChromeTraceEvent);
      else if (kind === Kind.MEMORY) {
        const name = ref as string;
        events.push({
          name,
          ph: "i",
          s: "t",
          cat: "memory",
          pid: PID,
          tid,
          ts,
          args: { bytes: a },
        });
      } else {
        events.push({
          name: `${this.names.get(tid)} memory`,
          ph: "C",
          cat: "memory",
          pid: PID,
          tid,
          ts,
          args: { used: a, cached: b, evicted: c },
        });
      }
    });
    return toChromeTrace(events, this.names, this.ring.capacity, this.ring.dropped);
  }
}

let recording: Recording | undefined;

/** @internal */
export function beginRecording(capacity: number): void {
  recording = new Recording(capacity);
  tracing.on = true;
}

/** @internal The trace so far; `stop` ends the recording. */
export function recordedTrace(stop: boolean): ChromeTrace | undefined {
  const r = recording;
  if (!r) return undefined;
  if (stop) {
    recording = undefined;
    tracing.on = false;
  }
  return r.trace();
}

function now(): number {
  return performance.now() * 1000;
}

function emit(event: ChromeTraceEvent): void {
  recording?.ring.push(Kind.EVENT, event.ts ?? 0, event.tid, event);
}

/** Something with a stream and a name: a context or a pool. */
export interface Tracked {
  readonly stream: object & { readonly id: number };
  readonly name: string;
}

function trackOf(r: Recording, owner: Tracked): number {
  return r.track(owner.stream, owner.name);
}

function streamTrack(r: Recording, stream: object & { readonly id: number }): number {
  return r.track(stream, undefined, stream.id);
}

/**
 * @internal A memory event of a pool (`alloc`, `free`, `evict`, `restore`,
 * `release cached`) and the pool's bytes after it, as a counter track.
 */
export function traceMemory(
  pool: Tracked,
  event: string,
  bytes: number,
  used: number,
  cached: number,
  evicted: number,
): void {
  const r = recording;
  if (!r) return;
  const tid = trackOf(r, pool);
  const ts = now();
  // The most frequent records: columns only, no objects (see EventRing).
  r.ring.push(Kind.MEMORY, ts, tid, event, bytes);
  r.ring.push(Kind.COUNTER, ts, tid, undefined, used, cached, evicted);
}

/** @internal An allocation of `ctx` refused with VramBudgetExceededError. */
export function traceAllocationFailure(
  ctx: Tracked,
  error: { readonly requested: number; readonly available: number },
): void {
  const r = recording;
  if (!r) return;
  emit({
    name: "allocation failed",
    ph: "i",
    s: "t",
    cat: "memory",
    pid: PID,
    tid: trackOf(r, ctx),
    ts: now(),
    args: { requested: error.requested, available: error.available },
  });
}

/** @internal A memory-pressure handler is about to be called for an allocation of `ctx`. */
export function tracePressure(ctx: Tracked, requested: number, available: number): void {
  const r = recording;
  if (!r) return;
  emit({
    name: "pressure handler",
    ph: "i",
    s: "t",
    cat: "pressure",
    pid: PID,
    tid: trackOf(r, ctx),
    ts: now(),
    args: { requested, available },
  });
}

/**
 * @internal Something happened to a context as a whole: `create`,
 * `destroy`, and (for the sleep/wake code to call) `sleep`, `wake`.
 */
export function traceContext(ctx: Tracked, what: string, args: Args = {}): void {
  const r = recording;
  if (!r) return;
  const tid = trackOf(r, ctx);
  const ts = now();
  emit({ name: `context ${what}`, ph: "i", s: "t", cat: "context", pid: PID, tid, ts, args });
  // Its pool freed everything without a free per buffer: close the counter track at 0.
  if (what === "destroy") r.ring.push(Kind.COUNTER, ts, tid, undefined, 0, 0, 0);
}

/** @internal A partition was created or deleted. */
export function tracePartition(what: string, partition: object): void {
  if (!recording) return;
  const args: Args = {};
  for (const [key, value] of Object.entries(partition)) {
    if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") {
      args[key] = value;
    }
  }
  emit({
    name: `partition ${what}`,
    ph: "i",
    s: "t",
    cat: "partition",
    pid: PID,
    tid: SCHEDULER_TID,
    ts: now(),
    args,
  });
}

/** @internal `event` was recorded on `stream`: the start of any flow arrow to its waiters. */
export function traceRecord(event: object, stream: object & { readonly id: number }): void {
  const r = recording;
  if (!r) return;
  r.marks.set(event, { ts: now(), tid: streamTrack(r, stream), sliceEmitted: false });
}

/** @internal `stream` was made to wait for `event`: a slice on each side and an arrow between. */
export function traceWait(event: object, stream: object & { readonly id: number }): void {
  const r = recording;
  if (!r) return;
  const ts = now();
  const tid = streamTrack(r, stream);
  emit({ name: "wait event", ph: "X", cat: "event", pid: PID, tid, ts, dur: MARK_US });
  const mark = r.marks.get(event);
  if (!mark) return;
  if (!mark.sliceEmitted) {
    mark.sliceEmitted = true;
    emit({
      name: "record event",
      ph: "X",
      cat: "event",
      pid: PID,
      tid: mark.tid,
      ts: mark.ts,
      dur: MARK_US,
    });
  }
  const id = r.id();
  // Each flow event shares its slice's start and follows it, so a stable sort
  // by time keeps the slice first and the arrow binds to it.
  emit({ name: "event", ph: "s", cat: "event", id, pid: PID, tid: mark.tid, ts: mark.ts });
  emit({ name: "event", ph: "f", bp: "e", cat: "event", id, pid: PID, tid, ts });
}

/**
 * @internal The host waits for `stream`: an async span from now to `done`.
 * Returns `done` itself, so rejections reach the caller unchanged.
 */
export function traceStreamWait<T>(
  stream: object & { readonly id: number },
  done: Promise<T>,
): Promise<T> {
  const r = recording;
  if (r) asyncSpan(r, streamTrack(r, stream), "wait", "stream.synchronize", {}, done);
  return done;
}

/**
 * @internal The host waits for `event`: an async span from now to `done`,
 * on the track of the stream it was recorded on.
 */
export function traceEventWait<T>(event: object, done: Promise<T>): Promise<T> {
  const r = recording;
  if (r) {
    const tid = r.marks.get(event)?.tid ?? r.named("host waits");
    asyncSpan(r, tid, "wait", "event.synchronize", {}, done);
  }
  return done;
}

/** @internal A copy between host and device memory of `pool`, from its call to its completion. */
export function traceCopy<T>(
  pool: Tracked,
  kind: "write" | "read",
  bytes: number,
  done: Promise<T>,
): Promise<T> {
  const r = recording;
  if (!r) return done;
  asyncSpan(r, trackOf(r, pool), "copy", kind, { bytes }, done);
  return done;
}

function asyncSpan(
  r: Recording,
  tid: number,
  cat: string,
  name: string,
  args: Args,
  done: Promise<unknown>,
): void {
  const id = r.id();
  emit({ name, ph: "b", cat, id, pid: PID, tid, ts: now(), args });
  const end = () => {
    if (recording === r) emit({ name, ph: "e", cat, id, pid: PID, tid, ts: now() });
  };
  done.then(end, end);
}

/** @internal A span the application measured itself (see `traceSpan`). */
export function traceAppSpan(
  track: { readonly context?: Tracked; readonly name?: string },
  name: string,
  startUs: number,
  durUs: number,
  args: Args,
): void {
  const r = recording;
  if (!r) return;
  const tid = track.context ? trackOf(r, track.context) : r.named(track.name ?? "app");
  emit({ name, ph: "X", cat: "app", pid: PID, tid, ts: startUs, dur: durUs, args });
}
