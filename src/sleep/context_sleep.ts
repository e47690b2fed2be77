/**
 * Sleeping contexts: a whole context moved to pinned host memory and back,
 * its reservation released and admitted again, every buffer at the same
 * device address (the pools' virtual memory keeps the addresses; only the
 * physical memory goes).
 *
 * States: awake → falling (sleep() called: uses refused, transfers already
 * in flight finish) → asleep (copies out queued, device memory and
 * reservation released) → waking (wake(): reservation admitted, buffers
 * being given memory, all synchronously) → awake. Every transition that
 * touches the ledger is synchronous, so a wake never races another
 * context's allocation; only the copies are awaited.
 *
 * @module
 */

import { AdmissionError, SchedulerError, VramBudgetExceededError } from "../errors.ts";
import { type MemoryPool, sleepAccessOf } from "../engine/memory_pool.ts";
import type { PoolBlock } from "../engine/pool_block.ts";
import { vmmReap } from "../native/vmm.ts";
import type { Stream } from "../stream.ts";

/** What a sleeping context is to the cycle. @internal */
export interface SleepTarget {
  readonly name: string;
  readonly alive: boolean;
  readonly device: number;
  readonly stream: Stream;
  readonly pool: MemoryPool;
}

/** The scheduler's ledger, which moves the reservation. @internal */
export interface SleepLedger {
  /** Takes the reservation out of the ledger; `asleep` flips the context's reported reservation to 0. */
  suspend(asleep: () => void): void;
  /** Admits the reservation again (AdmissionError when it cannot be); `awake` flips it back. */
  resume(awake: () => void): void;
}

type SleepState = "awake" | "falling" | "asleep" | "waking";

/** One context's sleep and wake. @internal */
export class SleepCycle {
  #target: SleepTarget;
  #ledger: SleepLedger;
  #state: SleepState = "awake";
  #moved: PoolBlock[] = [];
  #falling: Promise<void> | undefined;
  #waking: Promise<void> | undefined;

  constructor(target: SleepTarget, ledger: SleepLedger) {
    this.#target = target;
    this.#ledger = ledger;
  }

  /** True from `sleep()` until `wake()` has given every buffer its memory back. */
  get sleeping(): boolean {
    return this.#state !== "awake";
  }

  /** True while the reservation is out of the ledger. */
  get reservationReleased(): boolean {
    return this.#state === "asleep";
  }

  /** The sentence errors give while asleep. */
  get reason(): string {
    return `context "${this.#target.name}" is asleep (call wake() first)`;
  }

  /** Throws SchedulerError naming the context as asleep, when it is. */
  assertAwake(doing: string): void {
    if (this.#state !== "awake") throw new SchedulerError(`${doing}: ${this.reason}`);
  }

  sleep(): Promise<void> {
    const target = this.#target;
    const doing = `Cannot put context "${target.name}" to sleep`;
    try {
      if (!target.alive) throw new SchedulerError(`${doing}: it was destroyed`);
      if (this.#state !== "awake") throw new SchedulerError(`${doing}: ${this.reason}`);
      if (sleepAccessOf(target.pool).userPinned()) {
        throw new SchedulerError(`${doing}: a buffer is pinned; release its pin() first`);
      }
    } catch (error) {
      return Promise.reject(error);
    }
    this.#state = "falling";
    sleepAccessOf(target.pool).setAsleep(this.reason);
    const falling = this.#fallAsleep(doing);
    this.#falling = falling;
    return falling;
  }

  async #fallAsleep(doing: string): Promise<void> {
    const target = this.#target;
    try {
      // Writes and reads called before sleep() finish into (or out of) device memory first.
      await sleepAccessOf(target.pool).transfersSettled();
      if (!target.alive) throw new SchedulerError(`${doing}: it was destroyed meanwhile`);
      // Copies out are queued on the context's stream, after everything queued there so far.
      this.#moved = sleepAccessOf(target.pool).evictAll();
    } catch (error) {
      if (target.alive) {
        this.#state = "awake";
        sleepAccessOf(target.pool).setAsleep(undefined);
      }
      throw error;
    } finally {
      this.#falling = undefined;
    }
    this.#ledger.suspend(() => this.#state = "asleep");
    await this.#settled(doing);
    // The copies are done: unmap their physical memory now rather than at the next allocation.
    vmmReap(target.device);
  }

  /**
   * One wake at a time: a wake() called while one is in progress (a
   * concurrent call, or one from a pressure handler that the wake itself
   * called) gets that wake's promise instead of re-admitting the
   * reservation a second time.
   */
  wake(): Promise<void> {
    if (this.#waking) return this.#waking;
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    this.#waking = promise;
    const done = () => {
      if (this.#waking === promise) this.#waking = undefined;
    };
    this.#wake().then(
      () => {
        done();
        resolve();
      },
      (error) => {
        done();
        reject(error);
      },
    );
    return promise;
  }

  async #wake(): Promise<void> {
    const target = this.#target;
    const doing = `Cannot wake context "${target.name}"`;
    if (this.#falling) await this.#falling.catch(() => {});
    if (!target.alive) throw new SchedulerError(`${doing}: it was destroyed`);
    if (this.#state !== "asleep") {
      await this.#settled(doing);
      return;
    }
    this.#ledger.resume(() => this.#state = "waking");
    try {
      this.#restoreMoved();
    } catch (error) {
      if (!target.alive) {
        throw new SchedulerError(`${doing}: it was destroyed meanwhile`, { cause: error });
      }
      // Back to sleep with nothing lost: what was restored goes out again.
      sleepAccessOf(target.pool).evictAll();
      this.#ledger.suspend(() => this.#state = "asleep");
      this.#moved = this.#moved.filter((block) => !block.freed);
      if (error instanceof VramBudgetExceededError) {
        throw new AdmissionError(
          `${doing}: its buffers cannot be given device memory now (${error.message}); it stays asleep`,
          { cause: error },
        );
      }
      throw error;
    }
    this.#moved = [];
    this.#state = "awake";
    sleepAccessOf(target.pool).setAsleep(undefined);
    await this.#settled(doing);
  }

  /**
   * Restores every moved buffer. A pressure handler that a restore called
   * may free buffers of this context (free() works while asleep): those
   * need no memory any more, so the wake goes on with the rest instead of
   * failing on the one that was being restored.
   */
  #restoreMoved(): void {
    for (;;) {
      // Freed while asleep, or by a handler on the last pass; those restored are skipped.
      this.#moved = this.#moved.filter((block) => !block.freed);
      try {
        sleepAccessOf(this.#target.pool).restoreAll(this.#moved);
        return;
      } catch (error) {
        if (!this.#target.alive || !this.#moved.some((block) => block.freed)) throw error;
      }
    }
  }

  /** Waits for the context's stream; rejects when the context was destroyed meanwhile. */
  async #settled(doing: string): Promise<void> {
    const target = this.#target;
    try {
      await target.stream.synchronize();
    } catch (error) {
      if (!target.alive) {
        throw new SchedulerError(`${doing}: it was destroyed meanwhile`, { cause: error });
      }
      throw error;
    }
    if (!target.alive) throw new SchedulerError(`${doing}: it was destroyed meanwhile`);
  }
}
