/**
 * ExecutionContext: one model's share of the device.
 *
 * @module
 */

import { SchedulerError, VramBudgetExceededError } from "../errors.ts";
import type { GpuEvent } from "../event.ts";
import { MemoryPool } from "../engine/memory_pool.ts";
import { QoSPolicy } from "../engine/qos_policy.ts";
import type { Scheduler } from "../scheduler.ts";
import type { Stream } from "../stream.ts";
import type { ComputeReservation } from "../engine/compute_layout.ts";
import { requireBoolean, requireOptions, show } from "../validate.ts";
import { DeviceBuffer } from "./device_buffer.ts";
import { dropSessionsOf } from "./session.ts";
import { SleepCycle, type SleepLedger } from "../sleep/context_sleep.ts";
import { type ContextTallies, newContextTallies } from "../metrics/tallies.ts";
import { traceAllocationFailure, traceContext, tracing } from "../trace/recorder.ts";

/** Options of `alloc()` and `ExecutionContext.alloc()`. */
export interface AllocOptions {
  /** May the scheduler move this buffer to host memory under pressure (default false)? */
  evictable?: boolean;
}

/** What `getContextUsage()` reports, in bytes. */
export interface ContextUsage {
  /**
   * Device bytes its resident live buffers occupy: each buffer's
   * `classSize`, the size class its request was rounded to — or exactly
   * the bytes asked for when the class would not fit what is left of
   * maxVram, and always for GUARANTEED contexts (which never round). So
   * `used ≤ max` always, and allocations whose sizes sum to maxVram fit.
   */
  used: number;
  /** Its budget: it never holds more. */
  max: number;
  /** BURSTABLE base (0 for other classes). */
  base: number;
  /** Bytes reserved for it at creation: maxVram (GUARANTEED), baseVram (BURSTABLE), 0 (BEST_EFFORT). */
  reserved: number;
  /** Highest `used` seen (restores of evicted buffers included): never below `used`. */
  peak: number;
  /** Freed bytes its pool keeps for reuse; available to everyone on demand. */
  cached: number;
  /** Bytes of its buffers currently moved out to host memory. */
  evicted: number;
}

/** @internal What a context needs from the scheduler's context manager (see PoolBudget). */
export interface ContextHost {
  /** Claims `bytes` more device memory for ctx if they fit now; runs no user code. */
  tryRequest(ctx: ExecutionContext, bytes: number): boolean;
  /** ctx gave `bytes` of device memory back. */
  returned(ctx: ExecutionContext, bytes: number): void;
  /** ctx cannot fit `bytes` without making room: ask the pressure handlers (throws to refuse). */
  pressure(ctx: ExecutionContext, bytes: number, available: number): void;
  /** The handlers allowed it: free others' claims so ctx can claim `bytes` more. */
  reclaim(ctx: ExecutionContext, bytes: number): void;
  /** Bytes ctx could claim now without evicting. */
  available(ctx: ExecutionContext): number;
  /** ctx is being destroyed. */
  forget(ctx: ExecutionContext): void;
  /** The ledger moves for ctx's sleep and wake (see SleepLedger). */
  sleepLedger(ctx: ExecutionContext, reserved: number): SleepLedger;
}

/** @internal Fixed settings of a context, validated by the manager. */
export interface ContextSpec {
  name: string;
  qos: QoSPolicy;
  maxVram: number;
  baseVram: number;
  reserved: number;
  partition: string | undefined;
  device: number;
  stream: Stream;
  /** Share of the SMs asked for with `compute`. */
  compute: number | undefined;
  /** Its SM groups, released when it is destroyed. */
  reservation: ComputeReservation | undefined;
}

/**
 * An execution context: a model's stream, VRAM budget and QoS class. Get
 * one from `createContext()`.
 *
 * @example
 * ```ts
 * import { createContext, GB, initialize, MB, QoSPolicy, shutdown } from "@gpusched/core";
 * import assert from "node:assert/strict";
 * initialize({ backend: "host", hostMemory: 8 * GB });
 * const llm = createContext("llm", { maxVram: 4 * GB, qos: QoSPolicy.GUARANTEED });
 * using buf = llm.alloc(256 * MB);
 * assert.equal(llm.usage().used, 256 * MB);
 * shutdown();
 * ```
 */
export class ExecutionContext {
  /** Unique name. */
  readonly name: string;
  /** Its QoS class. */
  readonly qos: QoSPolicy;
  /** Budget: it never holds more device bytes. */
  readonly maxVram: number;
  /** BURSTABLE base reservation (0 otherwise). */
  readonly baseVram: number;
  /** Bytes reserved for it: fixed at creation, 0 while it sleeps. */
  get reserved(): number {
    return this.#sleep.reservationReleased ? 0 : this.#reserved;
  }
  #reserved: number;
  #sleep: SleepCycle;
  /** Partition id its streams run in, if any. */
  readonly partition: string | undefined;
  /** Device index. */
  readonly device: number;
  /** Its stream: all its copies, evictions and restores are ordered on it. */
  readonly stream: Stream;
  /** @internal Event counts for getMetrics() that its pool does not keep. */
  readonly tallies: ContextTallies = newContextTallies();
  /** Share of the SMs reserved for it (`compute` option); undefined without a reservation. */
  readonly compute: number | undefined;
  /**
   * SMs reserved for it: whole groups of `device.smGranularity`, at least
   * one; 0 without a reservation (or where SMs cannot be partitioned). Its
   * streams also run on the shared SMs.
   */
  readonly smCount: number;
  #reservation: ComputeReservation | undefined;
  #host: ContextHost;
  #pool: MemoryPool;
  #events = new Set<GpuEvent>();
  #alive = true;

  /**
   * @internal True for a real ExecutionContext, false for a look-alike (a Proxy of
   * one, an object made from the prototype) that `instanceof` accepts but
   * whose private state is missing: callers refuse it with a clear TypeError.
   */
  static isReal(value: unknown): value is ExecutionContext {
    return typeof value === "object" && value !== null && #alive in value;
  }

  /** @internal Use `createContext()`. */
  constructor(scheduler: Scheduler, spec: ContextSpec, host: ContextHost) {
    this.name = spec.name;
    this.qos = spec.qos;
    this.maxVram = spec.maxVram;
    this.baseVram = spec.baseVram;
    this.#reserved = spec.reserved;
    this.partition = spec.partition;
    this.device = spec.device;
    this.stream = spec.stream;
    this.stream.heldBy = `context ${JSON.stringify(spec.name)}`;
    this.compute = spec.compute;
    this.smCount = spec.reservation?.smCount ?? 0;
    this.#reservation = spec.reservation;
    this.#host = host;
    this.#pool = new MemoryPool(
      { quota: spec.maxVram, enableEviction: true, stream: spec.stream, name: spec.name },
      {
        budget: {
          tryRequest: (bytes) => host.tryRequest(this, bytes),
          returned: (bytes) => host.returned(this, bytes),
          pressure: (bytes, available) => host.pressure(this, bytes, available),
          reclaim: (bytes) => host.reclaim(this, bytes),
          available: () => host.available(this),
        },
        makeBlock: (...block) => new DeviceBuffer(this, ...block),
        errorContext: this,
        refused: (error) => void this.#refused(error),
        // A GUARANTEED context is promised every allocation up to maxVram: no rounding slack.
        exactSizes: spec.qos === QoSPolicy.GUARANTEED,
      },
      scheduler,
    );
    this.#sleep = new SleepCycle(this, host.sleepLedger(this, spec.reserved));
  }

  /**
   * Moves every buffer to pinned host memory and releases its device memory
   * and its reservation for others. Work already queued on its stream (a
   * `write` called before) finishes first; resolves when every copy out is
   * done. While asleep, `alloc`, `buf.ptr`, `write`, `read`, `pin` and
   * `sleep()` refuse with SchedulerError; `free()`, usage and destroy work.
   * Buffers keep their device address (`buf.ptr`) through sleep and wake.
   *
   * @throws {SchedulerError} (rejects) when asleep already, destroyed, or a buffer is pinned by `pin()`
   *
   * @example
   * ```ts
   * import { createContext, initialize, MB, shutdown } from "@gpusched/core";
   * import assert from "node:assert/strict";
   * initialize({ backend: "host" });
   * const llm = createContext("llm", { maxVram: 64 * MB });
   * const buf = llm.alloc(1 * MB);
   * await buf.write(new Uint8Array([1, 2, 3]));
   * const before = buf.ptr;
   * await llm.sleep();
   * assert.equal(llm.usage().used, 0);
   * await llm.wake();
   * assert.ok(Deno.UnsafePointer.equals(buf.ptr, before));
   * shutdown();
   * ```
   */
  sleep(): Promise<void> {
    return this.#sleep.sleep();
  }

  /**
   * Admits its reservation again and restores every buffer, bit-exact, at
   * its address; resolves when the copies are done. Resolves at once when awake;
   * a wake() called while one is in progress (from a pressure handler too) joins it.
   *
   * @throws {AdmissionError} (rejects) when the reservation or the buffers cannot be
   *   given back now; it stays asleep with its data intact and may be woken later
   * @throws {SchedulerError} (rejects) when destroyed
   */
  wake(): Promise<void> {
    return this.#sleep.wake();
  }

  /** True from `sleep()` until `wake()` has restored its buffers. */
  get sleeping(): boolean {
    return this.#sleep.sleeping;
  }

  /** False once destroyed (or its scheduler shut down). */
  get alive(): boolean {
    return this.#alive;
  }

  /** @internal Throws when destroyed. */
  assertAlive(doing: string): void {
    if (!this.#alive) {
      throw new SchedulerError(`${doing}: context "${this.name}" was destroyed`);
    }
  }

  /**
   * Allocates device memory charged to this context, ordered on its stream.
   *
   * @throws {TypeError | RangeError} for a bad size or options
   * @throws {VramBudgetExceededError} past its budget or what the device can give it
   */
  alloc(bytes: number, options?: AllocOptions): DeviceBuffer {
    if (!this.#alive) this.assertAlive("Cannot allocate");
    let evictable = false;
    if (options !== undefined) {
      const doing = `Cannot allocate in context "${this.name}"`;
      const opts = requireOptions<AllocOptions>(options, doing);
      if (opts.evictable !== undefined) {
        evictable = requireBoolean(opts.evictable, "evictable", doing);
      }
    }
    if (typeof bytes !== "number" || !Number.isSafeInteger(bytes) || bytes <= 0) {
      this.#rejectSize(bytes);
    }
    if (this.#sleep.sleeping) this.#sleep.assertAwake(`Cannot allocate in context "${this.name}"`);
    try {
      if (bytes > this.maxVram) {
        // Past the budget however much is freed: the handlers still hear of it (API.md: an
        // allocation past the budget first calls them), then it is refused whatever they say.
        const available = this.maxVram - this.#pool.allocatedBytes;
        this.#host.pressure(this, bytes, available);
        throw new VramBudgetExceededError(this, bytes, available);
      }
      return this.#pool.allocate(bytes, evictable ? EVICTABLE : undefined) as DeviceBuffer;
    } catch (error) {
      throw error instanceof VramBudgetExceededError ? this.#refused(error) : error;
    }
  }

  /** Counts (and traces) a refused allocation; returns the error to throw. */
  #refused(error: VramBudgetExceededError): VramBudgetExceededError {
    this.tallies.allocationFailures++;
    if (tracing.on) traceAllocationFailure(this, error);
    return error;
  }

  #rejectSize(bytes: unknown): never {
    const doing = `Cannot allocate in context "${this.name}"`;
    if (typeof bytes !== "number") {
      throw new TypeError(`${doing}: bytes must be a number, got ${show(bytes)}`);
    }
    throw new RangeError(`${doing}: bytes must be a positive integer, got ${show(bytes)}`);
  }

  /** Bytes used, reserved, cached and evicted; see ContextUsage. */
  usage(): ContextUsage {
    this.assertAlive("Cannot read context usage");
    return {
      used: this.#pool.allocatedBytes,
      max: this.maxVram,
      base: this.baseVram,
      reserved: this.reserved,
      peak: this.#pool.peakAllocatedBytes,
      cached: this.#pool.cachedBytes,
      evicted: this.#pool.stats().evictedHostBytes,
    };
  }

  /** @internal The context's pool, for the manager's reclaiming. */
  get pool(): MemoryPool {
    return this.#pool;
  }

  /** @internal Records an event on its stream and keeps it for cleanup. */
  track(event: GpuEvent): GpuEvent {
    this.#events.add(event);
    return event;
  }

  /** Frees all its memory, events and streams. Idempotent. */
  destroy(): void {
    if (!this.#alive) return;
    this.#alive = false;
    try {
      this.#pool.destroy();
      for (const event of this.#events) event.destroy();
      this.#events.clear();
      this.stream.destroyHeld();
    } finally {
      this.#host.forget(this);
      this.#reservation?.release();
    }
  }

  /** Same as `destroy()`, for `using`. */
  [Symbol.dispose](): void {
    this.destroy();
  }

  /** @internal The scheduler shut down: libsched already freed everything. */
  invalidate(): void {
    this.#alive = false;
    this.#pool.invalidate();
    dropSessionsOf(this);
    if (tracing.on) traceContext(this, "destroy", { shutdown: true });
  }
}

const EVICTABLE = Object.freeze({ evictable: true });
