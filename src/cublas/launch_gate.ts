/**
 * A gate on lower-class launches: how many pieces of BEST_EFFORT work are
 * on the device at once, by whether a reserving context is active.
 *
 * Why: a GEMM kernel holds its SMs until it ends (the GPU never preempts a
 * running block), and cuBLAS's large GEMMs keep one block per SM for the
 * whole kernel. Whatever is already queued on the device starts as soon as
 * SMs free up, so the only lever left to the scheduler is what it has not
 * launched yet: pieces held here start only while the gate has room.
 *
 * The rule, checked whenever something changes (a submission, a piece
 * completing, an owner settling, a hold running out):
 * - pieces start in submission order (one FIFO for every submitter);
 * - at most `activeInFlight` pieces are in flight while `ownerActive()`
 *   says a reserving owner is active, at most `idleInFlight` otherwise;
 * - with nothing in flight, the head piece starts even so once it was held
 *   `maxHoldMs` (counted from its submission or the last completion,
 *   whichever is later): lower-class work is delayed, never starved;
 * - `flush(key)` starts every held piece of one submitter now, in order
 *   (its synchronous launches must not overtake them).
 *
 * It never deadlocks: while pieces are held, either one is in flight (its
 * completion checks again), or the gate waits for `ownerSettled()` and
 * the head's hold to run out, each of which checks again.
 *
 * @module
 */

import { SchedulerError } from "../errors.ts";
import { requireNonNegativeInteger, requirePositiveInteger, show } from "../validate.ts";

/** How many pieces may be in flight at once. */
export interface GateLimits {
  /** While a reserving owner is active (0: none start while it is, save held past `maxHoldMs`). */
  activeInFlight: number;
  /** While every owner is idle (at least 1). */
  idleInFlight: number;
  /** A piece held this long (ms) starts even while the owner is active; Infinity: never. */
  maxHoldMs: number;
}

/** What the gate asks of the scheduler. */
export interface GateHooks {
  /** Whether a reserving owner is active now. */
  ownerActive(): boolean;
  /** Resolves once the owners may have become idle (asked while pieces are held). */
  ownerSettled(): Promise<void>;
}

/**
 * Starts one piece on the device and returns a promise of its completion
 * there (a rejection counts as completed: the gate only needs the slot back).
 */
export type PieceLaunch = () => Promise<unknown>;

/**
 * Checks gate limits, naming the option that is wrong.
 *
 * @example
 * ```ts
 * import { parseGateLimits } from "./launch_gate.ts";
 * const limits = parseGateLimits({ activeInFlight: 1, idleInFlight: 3, maxHoldMs: Infinity }, "Cannot");
 * console.assert(limits.idleInFlight === 3);
 * ```
 * @throws {TypeError | RangeError} naming the option and its value
 */
export function parseGateLimits(value: unknown, doing: string): GateLimits {
  if (typeof value !== "object" || value === null) {
    throw new TypeError(`${doing}: limits must be an object, got ${show(value)}`);
  }
  const v = value as Partial<Record<keyof GateLimits, unknown>>;
  const activeInFlight = requireNonNegativeInteger(v.activeInFlight, "activeInFlight", doing);
  const idleInFlight = requirePositiveInteger(v.idleInFlight, "idleInFlight", doing);
  const maxHoldMs = v.maxHoldMs;
  if (typeof maxHoldMs !== "number" || !(maxHoldMs >= 0)) {
    throw new RangeError(`${doing}: maxHoldMs must be a number >= 0, got ${show(maxHoldMs)}`);
  }
  return { activeInFlight, idleInFlight, maxHoldMs };
}

interface Submission {
  left: number;
  failed: boolean;
  resolve(): void;
  reject(error: unknown): void;
}

interface Held {
  readonly launch: PieceLaunch;
  readonly key: unknown;
  readonly since: number;
  readonly submission: Submission;
}

/**
 * The gate. One per device in the cuBLAS helper; on its own here so that
 * its rule is tested without a GPU.
 *
 * @example
 * ```ts
 * import { LaunchGate } from "./launch_gate.ts";
 * let active = true;
 * const gate = new LaunchGate(
 *   { ownerActive: () => active, ownerSettled: () => Promise.resolve() },
 *   { activeInFlight: 1, idleInFlight: 2, maxHoldMs: Infinity },
 * );
 * const started: number[] = [];
 * const first = Promise.withResolvers<void>();
 * const done = gate.submit("flood", [
 *   () => (started.push(1), first.promise),
 *   () => (started.push(2), Promise.resolve()),
 * ]);
 * console.assert(started.length === 1 && gate.held === 1); // one in flight while active
 * active = false;
 * first.resolve();
 * await done;
 * console.assert(started.join() === "1,2");
 * ```
 */
export class LaunchGate {
  readonly #hooks: GateHooks;
  #limits: GateLimits;
  readonly #now: () => number;
  #queue: Held[] = [];
  #inFlight = 0;
  #lastDone = -Infinity;
  #pumping = false;
  #settling = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #closed: Error | undefined;
  /** Pieces started so far. */
  started = 0;
  /** Pieces started only because they were held `maxHoldMs`. */
  startedOverdue = 0;

  /**
   * @throws {TypeError | RangeError} for hooks that are not functions or bad limits
   */
  constructor(hooks: GateHooks, limits: GateLimits, now: () => number = () => performance.now()) {
    const doing = "Cannot make a launch gate";
    if (typeof hooks !== "object" || hooks === null) {
      throw new TypeError(`${doing}: hooks must be an object, got ${show(hooks)}`);
    }
    for (const name of ["ownerActive", "ownerSettled"] as const) {
      if (typeof hooks[name] !== "function") {
        throw new TypeError(`${doing}: hooks.${name} must be a function, got ${show(hooks[name])}`);
      }
    }
    if (typeof now !== "function") {
      throw new TypeError(`${doing}: now must be a function, got ${show(now)}`);
    }
    this.#hooks = hooks;
    this.#limits = parseGateLimits(limits, doing);
    this.#now = now;
  }

  /** Pieces held (submitted, not started). */
  get held(): number {
    return this.#queue.length;
  }

  /** Pieces started whose completion has not been seen. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** The limits in force. */
  get limits(): GateLimits {
    return { ...this.#limits };
  }

  /**
   * Changes the limits (held pieces may start at once when they grow).
   *
   * @throws {TypeError | RangeError} for bad limits, changing nothing
   */
  setLimits(limits: GateLimits): void {
    this.#limits = parseGateLimits(limits, "Cannot set the launch gate's limits");
    this.pump();
  }

  /**
   * Queues pieces of one submitter (`key`), in order. Resolves once every
   * one has started; rejects with the error of the first that throws (the
   * rest of that submission are dropped, other submissions go on).
   *
   * @throws {TypeError} (rejects) when pieces is not a non-empty array of functions
   * @throws {SchedulerError} (rejects) after `close()`
   */
  submit(key: unknown, pieces: readonly PieceLaunch[]): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closed);
    if (
      !Array.isArray(pieces) || pieces.length === 0 ||
      !pieces.every((p) => typeof p === "function")
    ) {
      return Promise.reject(
        new TypeError(
          `Cannot submit to the launch gate: pieces must be a non-empty array of functions, got ${
            show(pieces)
          }`,
        ),
      );
    }
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const submission: Submission = { left: pieces.length, failed: false, resolve, reject };
    const since = this.#now();
    for (const launch of pieces) this.#queue.push({ launch, key, since, submission });
    this.pump();
    return promise;
  }

  /** Starts every held piece of `key` now, in order, whatever the limits. */
  flush(key: unknown): void {
    const mine = this.#queue.filter((h) => h.key === key);
    if (mine.length === 0) return;
    this.#queue = this.#queue.filter((h) => h.key !== key);
    for (const h of mine) this.#start(h);
    this.#armWake();
  }

  /**
   * Drops every held piece of `key` and rejects their submissions with a
   * SchedulerError saying `reason` (its pieces in flight run on).
   */
  cancel(key: unknown, reason: string): void {
    const mine = this.#queue.filter((h) => h.key === key);
    if (mine.length === 0) return;
    this.#queue = this.#queue.filter((h) => h.key !== key);
    const error = new SchedulerError(`Cannot start held GEMM pieces: ${reason}`);
    for (const h of mine) {
      if (!h.submission.failed) {
        h.submission.failed = true;
        h.submission.reject(error);
      }
    }
    this.pump();
  }

  /** Whether `key` has pieces held. */
  holds(key: unknown): boolean {
    return this.#queue.some((h) => h.key === key);
  }

  /** Starts what the limits allow now. Safe to call at any time, also from inside a piece. */
  pump(): void {
    if (this.#pumping || this.#closed) return;
    this.#pumping = true;
    try {
      while (this.#queue.length > 0) {
        const head = this.#queue[0]!;
        if (head.submission.failed) {
          this.#queue.shift();
          continue;
        }
        const limits = this.#limits;
        const room = this.#hooks.ownerActive() ? limits.activeInFlight : limits.idleInFlight;
        let overdue = false;
        if (this.#inFlight >= room) {
          overdue = this.#inFlight === 0 && this.#now() - this.#heldSince(head) >= limits.maxHoldMs;
          if (!overdue) break;
        }
        this.#queue.shift();
        if (overdue) this.startedOverdue++;
        this.#start(head);
      }
    } finally {
      this.#pumping = false;
    }
    this.#armWake();
  }

  /**
   * Rejects every held submission with a SchedulerError (pieces in flight
   * run on); later submissions reject. Idempotent.
   */
  close(reason = "the launch gate was closed"): void {
    if (this.#closed) return;
    this.#closed = new SchedulerError(`Cannot start held GEMM pieces: ${reason}`);
    const held = this.#queue;
    this.#queue = [];
    for (const h of held) {
      if (!h.submission.failed) {
        h.submission.failed = true;
        h.submission.reject(this.#closed);
      }
    }
    this.#clearTimers();
  }

  #start(h: Held): void {
    const s = h.submission;
    if (s.failed) return;
    let done: Promise<unknown>;
    this.#inFlight++;
    try {
      done = h.launch();
      if (!(done instanceof Promise)) done = Promise.resolve(done);
    } catch (error) {
      this.#inFlight--;
      s.failed = true;
      s.reject(error);
      return;
    }
    this.started++;
    if (--s.left === 0) s.resolve();
    const release = () => {
      this.#inFlight--;
      this.#lastDone = this.#now();
      this.pump();
    };
    done.then(release, release);
  }

  /**
   * While pieces are held and none is in flight, something must check again:
   * the owners settling, and the head's hold running out.
   */
  #armWake(): void {
    if (this.#queue.length === 0 || this.#closed) {
      this.#clearTimers();
      return;
    }
    if (this.#inFlight > 0) return; // a completion checks again
    if (!this.#settling) {
      this.#settling = true;
      const startedBefore = this.started;
      const again = () => {
        this.#retry = undefined;
        this.#settling = false;
        this.pump();
      };
      // Asked again at once only when something moved: a hook that resolves
      // (or fails) while the owner is still active is polled every 1 ms,
      // never in a loop of microtasks.
      const later = () => {
        if (this.#closed) this.#settling = false;
        else this.#retry = setTimeout(again, 1);
      };
      let settled: Promise<void>;
      try {
        settled = this.#hooks.ownerSettled();
      } catch (error) {
        settled = Promise.reject(error);
      }
      Promise.resolve(settled).then(() => {
        if (this.#closed) this.#settling = false;
        else if (this.started === startedBefore && this.#hooks.ownerActive()) later();
        else again();
      }, later);
    }
    const hold = this.#limits.maxHoldMs;
    if (Number.isFinite(hold)) {
      const at = this.#heldSince(this.#queue[0]!) + hold;
      if (this.#timer === undefined || at < this.#timerAt) {
        this.#clearTimer();
        this.#timerAt = at;
        this.#timer = setTimeout(() => {
          this.#timer = undefined;
          this.#timerAt = Infinity;
          this.pump();
        }, Math.max(0, at - this.#now()));
      }
    }
  }

  /** Since when a head piece counts as held: its submission, or the last completion if later. */
  #heldSince(h: Held): number {
    return Math.max(h.since, this.#lastDone);
  }

  /** Clears both timers (nothing held, or closed). */
  #clearTimers(): void {
    if (this.#retry !== undefined) {
      clearTimeout(this.#retry);
      this.#retry = undefined;
      this.#settling = false; // the retry would have asked again
    }
    this.#clearTimer();
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }
}
