/**
 * Awaiting GPU completion without blocking the event loop or a thread per
 * waiter.
 *
 * Each waiter gets a 32-bit token and asks libsched to complete it when a
 * stream drains or an event fires (`sched_stream_notify`,
 * `sched_event_notify`; on CUDA a host function queued in stream order, on
 * the host backend the stream's worker). libsched's single notifier thread
 * then calls one thread-safe callback per batch, and the callback drains
 * every completed token with one synchronous FFI call. So 10,000 pending
 * waits cost 10,000 map entries, not 10,000 threads, and a burst of
 * completions costs one event-loop wake-up.
 *
 * The callback is created once per process and never closed: libsched's
 * notifier outlives `sched_shutdown` (see completions.c). It is ref'd only
 * while tokens are pending, so an idle scheduler never keeps Deno alive.
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
let callback: Deno.UnsafeCallback<{ readonly parameters: []; readonly result: "void" }> | undefined;
let keepsAlive = false;

/** Holds the event loop open exactly while some wait is pending. */
function keepAlive(on: boolean): void {
  if (!callback || on === keepsAlive) return;
  if (on) callback.ref();
  else callback.unref();
  keepsAlive = on;
}

function drain(): void {
  const symbols = lib();
  for (;;) {
    const n = symbols.sched_completions_drain(tokens, statuses, DRAIN_CAPACITY);
    for (let i = 0; i < n; i++) settle(tokens[i]!, statuses[i]!);
    if (n < DRAIN_CAPACITY) break;
  }
  if (waiters.size === 0) keepAlive(false);
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

function ensureCallback(): void {
  if (callback) return;
  callback = new Deno.UnsafeCallback({ parameters: [], result: "void" } as const, drain);
  unwrap(lib().sched_notifier_install(callback.pointer), "Cannot install the completion notifier");
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
  ensureCallback();
  const token = takeToken();
  const status = register(token);
  unwrap(status, context);
  return new Promise<void>((resolve, reject) => {
    waiters.set(token, { resolve, reject });
    keepAlive(true);
  });
}

/** Number of waits not yet settled (for tests and diagnostics). */
export function pendingCompletions(): number {
  return waiters.size;
}

/**
 * Settles everything already completed, now. Used after a blocking
 * synchronize so awaiting code does not wait for the notifier's wake-up.
 */
export function drainCompletions(): void {
  if (callback) drain();
}
