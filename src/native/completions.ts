/**
 * Awaiting GPU completion without blocking the event loop or a thread per
 * waiter.
 *
 * Each waiter gets a 32-bit token and asks libsched to complete it when a
 * stream drains or an event fires (`sched_stream_notify`,
 * `sched_event_notify`; on CUDA the watcher thread, on the host backend the
 * stream's worker). While any token is pending, one nonblocking FFI call,
 * `sched_completions_wait`, parks a Deno pool thread inside libsched until
 * completions are queued; its promise then resolves on the event loop, and
 * one synchronous call drains every completed token. So 10,000 pending
 * waits cost 10,000 map entries and one parked thread, and a burst of
 * completions costs one event-loop wake-up.
 *
 * Why not a `Deno.UnsafeCallback.threadSafe` called by a libsched thread:
 * when the isolate dies without `shutdown()` (an uncaught exception, a
 * terminated Worker), such a call lands in freed code and the process
 * crashes. Here libsched never calls JavaScript: a dead isolate leaves at
 * most a parked pool thread. The pending call keeps the event loop alive
 * exactly while something is awaited; when the last waiter is settled
 * another way, `sched_completions_wake` ends it.
 *
 * @module
 */

import { NativeError } from "../errors.ts";
import { lib } from "./loader.ts";
import { Status, statusName } from "./status_codes.ts";
import { unwrap } from "./unwrap.ts";

interface Waiter {
  resolve(): void;
  reject(error: Error): void;
}

const DRAIN_CAPACITY = 4096;
const tokens = new Uint32Array(DRAIN_CAPACITY);
const statuses = new Int32Array(DRAIN_CAPACITY);
const waiters = new Map<number, Waiter>();
let nextToken = 1;
let waiting = false; // a sched_completions_wait call is in flight

function drain(): void {
  const symbols = lib();
  for (;;) {
    const n = symbols.sched_completions_drain(tokens, statuses, DRAIN_CAPACITY);
    for (let i = 0; i < n; i++) settle(tokens[i]!, statuses[i]!);
    if (n < DRAIN_CAPACITY) break;
  }
}

function settle(token: number, status: number): void {
  const waiter = waiters.get(token);
  if (!waiter) return;
  waiters.delete(token);
  if (status === Status.OK) {
    waiter.resolve();
  } else {
    waiter.reject(
      new NativeError(status, `GPU work failed while awaited: ${statusName(status)}`),
    );
  }
}

/** Starts the parked wait unless one is in flight or nothing is pending. */
function watch(): void {
  if (waiting || waiters.size === 0) return;
  waiting = true;
  lib().sched_completions_wait().then(() => {
    waiting = false;
    drain();
    watch();
  });
}

function takeToken(): number {
  // Skip 0 (never issued) and tokens still pending after a 2^32 wrap.
  do {
    nextToken = nextToken >= 0xffffffff ? 1 : nextToken + 1;
  } while (waiters.has(nextToken));
  return nextToken;
}

/**
 * A promise that settles when libsched completes a token.
 *
 * @param register asks libsched to complete the token (e.g.
 *   `t => sched_stream_notify(stream, t)`) and returns its status
 * @param context prefix for the error thrown when registration fails
 * @throws {NativeError} synchronously when registration fails
 */
export function waitForCompletion(
  register: (token: number) => number,
  context: string,
): Promise<void> {
  const token = takeToken();
  const status = register(token);
  unwrap(status, context);
  return new Promise<void>((resolve, reject) => {
    waiters.set(token, { resolve, reject });
    watch();
  });
}

/** Number of waits not yet settled (for tests and diagnostics). */
export function pendingCompletions(): number {
  return waiters.size;
}

/**
 * Settles everything already completed, now. Used after a blocking
 * synchronize so awaiting code does not wait for the parked call's wake-up.
 * When that settled the last waiter, the parked call is ended so that it
 * does not hold the event loop open.
 */
export function drainCompletions(): void {
  if (waiters.size === 0) return;
  drain();
  if (waiters.size === 0 && waiting) lib().sched_completions_wake();
}
