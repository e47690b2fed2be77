/**
 * The scheduler's contexts and the memory arbitration between them.
 *
 * Accounting: a context's pool holds `held` device bytes (live buffers plus
 * its cache); its claim is max(held, reserved). Claims are taken from the
 * device's one account, the LimitOwner, which standalone MemoryPools draw
 * from too, so Σ claims ≤ memoryLimit holds by construction. A claim grows
 * only in `tryRequest`, which runs no user code, so no check-then-add spans
 * a callback or an await. A reserved context allocating inside its
 * reservation never raises its claim, which is why its allocations cannot
 * fail because of others.
 *
 * When a claim must grow past the spare bytes, the pressure handlers are
 * asked first (nothing is evicted for an allocation they refuse), then
 * caches are released, then evictable buffers are evicted: BEST_EFFORT
 * contexts first, then BURSTABLE bursts above base, then the asking
 * context's own. After the handlers return, the pool re-validates
 * everything (its context alive, the scheduler active, sizes recomputed)
 * before it claims anything. Only then does the allocation fail.
 *
 * One manager per device, owned by its `Device`: limits, claims,
 * reservations, the QoS evaluator and the native pool are that device's.
 * Context names and pressure handlers are the scheduler's, shared through a
 * `ContextDirectory`.
 *
 * Partitions: a context in a partition with a memory limit claims through
 * the partition's account, a part of the device's (`LimitOwner.parent`), so
 * its claims count against both the partition's limit and the device's;
 * the contexts of that partition are the ones whose caches and evictable
 * buffers make room under the partition's limit.
 *
 * @module
 */

import { AdmissionError, SchedulerError, VramBudgetExceededError } from "../errors.ts";
import { QoSPolicy } from "../engine/qos_policy.ts";
import { QosPolicyEvaluator } from "../engine/qos_evaluator.ts";
import { QosTaskMeta } from "../engine/qos_task.ts";
import type { LimitOwner } from "../engine/limit_owner.ts";
import { parseComputeOption, reserveCompute } from "../engine/compute_reservations.ts";
import type { Scheduler } from "../scheduler.ts";
import type { Device } from "../device.ts";
import {
  requireNonEmptyString,
  requireNonNegativeInteger,
  requireOneOf,
  requireOptions,
  requirePositiveInteger,
  show,
} from "../validate.ts";
import { type ContextHost, ExecutionContext } from "./execution_context.ts";
import type { SleepLedger } from "../sleep/context_sleep.ts";
import { traceContext, tracePressure, tracing } from "../trace/recorder.ts";

/** Options of `createContext()`. */
export interface ContextOptions {
  /** Budget in bytes: the context never holds more device memory. Required. */
  maxVram: number;
  /** BURSTABLE only: bytes reserved at creation (default 0). */
  baseVram?: number;
  /** QoS class (default BURSTABLE). */
  qos?: QoSPolicy;
  /** Partition id whose SMs its streams run on. */
  partition?: string;
  /**
   * Device index (default: the scheduler's device), or `"auto"`: the device
   * where the reservation fits and leaves the most unreserved memory.
   */
  device?: number | "auto";
  /**
   * GUARANTEED and BURSTABLE only: share in (0, 1) of the device's SMs
   * reserved for it (whole SM groups); it also runs on the shared SMs.
   */
  compute?: number;
}

/**
 * Called when an allocation of `ctx` for `requested` bytes cannot be met
 * from its reservation plus `available` spare bytes. Return true to let the
 * scheduler make room (evict), false to refuse at once: then nothing at all
 * is evicted for that allocation. A throw refuses with the error as
 * `cause`; a result that is not a boolean (a Promise, undefined, a number)
 * refuses too, with a `TypeError` as `cause`. The handler may allocate,
 * free, destroy contexts (the asking one too), register or unregister
 * handlers, or call `shutdown()`: the scheduler re-checks everything after
 * it returns (an allocation of a context destroyed meanwhile fails with
 * `SchedulerError`).
 */
export type MemoryPressureHandler = (
  ctx: ExecutionContext,
  requested: number,
  available: number,
) => boolean;

interface Account {
  held: number;
  /** Where its claims go: the device's account, or its partition's within it. */
  readonly owner: LimitOwner;
}

/** What the managers of one scheduler's devices share: context names and pressure handlers. */
export class ContextDirectory {
  /** Live contexts by name, on every device. */
  readonly names: Map<string, ExecutionContext> = new Map();
  /** Pressure handlers, called for allocations on any device. */
  readonly handlers: MemoryPressureHandler[] = [];
}

const CLASS_ORDER: Record<QoSPolicy, number> = {
  [QoSPolicy.GUARANTEED]: 0,
  [QoSPolicy.BURSTABLE]: 1,
  [QoSPolicy.BEST_EFFORT]: 2,
};

/** Contexts of one device of a scheduler, and the memory rules between them. */
export class ContextManager implements ContextHost {
  #scheduler: Scheduler;
  #unit: Device;
  #device: number;
  #limit: number;
  #directory: ContextDirectory;
  #contexts = new Map<string, ExecutionContext>();
  #accounts = new Map<ExecutionContext, Account>();
  #evaluator: QosPolicyEvaluator;
  #handlers: MemoryPressureHandler[];
  #owner: LimitOwner;

  /**
   * @param device the device whose memory it arbitrates (it owns this manager)
   * @param directory names and handlers shared with the other devices' managers
   */
  constructor(scheduler: Scheduler, device: Device, directory: ContextDirectory) {
    this.#scheduler = scheduler;
    this.#unit = device;
    this.#device = device.index;
    this.#limit = device.memoryLimit;
    this.#directory = directory;
    this.#handlers = directory.handlers;
    this.#owner = device.limitOwner;
    // Standalone pools may take what contexts cache above their reservations.
    this.#owner.setReclaimer((bytes) => this.#trimCaches(this.#owner.spare + bytes, undefined));
    this.#evaluator = new QosPolicyEvaluator({
      totalMemory: this.#limit,
      priorityRange: device.info.priorityRange,
    });
  }

  /** The device it manages. */
  get device(): number {
    return this.#device;
  }

  /** Spare bytes: the limit less every claim (standalone pools' included). */
  get spare(): number {
    return this.#owner.spare;
  }

  /**
   * For placement (`device: "auto"`): the bytes that would stay unreserved
   * here after admitting a reservation of `reserved` bytes for `task`, or
   * undefined when it cannot be admitted here.
   */
  unreservedAfter(task: QosTaskMeta | undefined, reserved: number): number | undefined {
    if (task && this.#evaluator.evaluate(task).decision === "reject") return undefined;
    if (reserved > this.#reservable()) return undefined;
    let reservations = 0;
    for (const ctx of this.#contexts.values()) reservations += ctx.reserved;
    return this.#limit - reservations - reserved;
  }

  /** Bytes a new reservation or best-effort allocation could still get (caches count as free). */
  availableVram(): number {
    return Math.max(0, this.#owner.spare + this.#othersCache(undefined));
  }

  /**
   * Claimed bytes that releasing caches of contexts other than `except`
   * (of those claiming through `scope`, when given) would free.
   */
  #othersCache(except: ExecutionContext | undefined, scope?: LimitOwner): number {
    let bytes = 0;
    for (const [ctx, account] of this.#accounts) {
      if (ctx === except || (scope !== undefined && account.owner !== scope)) continue;
      const aboveReservation = account.held - ctx.reserved;
      if (aboveReservation > 0) bytes += Math.min(ctx.pool.cachedBytes, aboveReservation);
    }
    return bytes;
  }

  /** Live contexts of every device of the scheduler, in creation order. */
  allContexts(): ExecutionContext[] {
    return [...this.#directory.names.values()];
  }

  create(name: string, options: unknown): ExecutionContext {
    const doing = `Cannot create context ${show(name)}`;
    requireNonEmptyString(name, "name", doing);
    if (options === undefined) throw new TypeError(`${doing}: options with maxVram are required`);
    const opts = requireOptions<ContextOptions>(options, doing);
    const maxVram = requirePositiveInteger(opts.maxVram, "maxVram", doing);
    const qos = opts.qos === undefined
      ? QoSPolicy.BURSTABLE
      : requireOneOf(opts.qos, Object.values(QoSPolicy), "qos", doing);
    let baseVram = 0;
    if (opts.baseVram !== undefined) {
      baseVram = requireNonNegativeInteger(opts.baseVram, "baseVram", doing);
      if (qos !== QoSPolicy.BURSTABLE) {
        throw new RangeError(
          `${doing}: baseVram is only for BURSTABLE contexts, got qos ${show(qos)}`,
        );
      }
      if (baseVram > maxVram) {
        throw new RangeError(
          `${doing}: baseVram (${baseVram}) must not exceed maxVram (${maxVram})`,
        );
      }
    }
    const device = this.#device;
    if (opts.partition !== undefined && typeof opts.partition !== "string") {
      throw new TypeError(`${doing}: partition must be a string, got ${show(opts.partition)}`);
    }
    const compute = parseComputeOption(opts.compute, qos, doing, opts.partition);
    if (this.#directory.names.has(name)) {
      throw new RangeError(`${doing}: the name is already in use`);
    }

    const reserved = qos === QoSPolicy.GUARANTEED
      ? maxVram
      : qos === QoSPolicy.BURSTABLE
      ? baseVram
      : 0;
    const task = qos === QoSPolicy.GUARANTEED
      ? QosTaskMeta.guaranteed(name, name, maxVram)
      : qos === QoSPolicy.BURSTABLE
      ? QosTaskMeta.burstable(name, name, maxVram, { base: baseVram })
      : undefined;
    if (task) {
      const verdict = this.#evaluator.evaluate(task);
      if (verdict.decision === "reject") throw new AdmissionError(`${doing}: ${verdict.reason}`);
      const reservable = this.#reservable();
      if (reserved > reservable) {
        throw new AdmissionError(
          `${doing}: cannot reserve ${reserved} bytes, only ${reservable} are free or reclaimable ` +
            `(the rest is reserved or held by buffers that cannot be evicted)`,
        );
      }
    }
    const priority = this.#evaluator.priorityBand(qos).default;
    const reservation = compute === undefined
      ? undefined
      : reserveCompute(this.#scheduler, compute, doing, device);
    let stream;
    try {
      stream = this.#scheduler.createStream({
        priority,
        device,
        ...(opts.partition !== undefined ? { partition: opts.partition } : {}),
      }, reservation);
      reservation?.attach(stream);
    } catch (error) {
      reservation?.release();
      if (opts.partition !== undefined && error instanceof RangeError) {
        throw new RangeError(`${doing}: unknown partition ${show(opts.partition)}`, {
          cause: error,
        });
      }
      throw error;
    }
    let ctx: ExecutionContext;
    try {
      ctx = new ExecutionContext(this.#scheduler, {
        name,
        qos,
        maxVram,
        baseVram,
        reserved,
        partition: opts.partition,
        device,
        stream,
        compute,
        reservation,
      }, this);
    } catch (error) {
      stream.destroyHeld(); // the context that would have held it never came to be
      reservation?.release();
      throw error;
    }
    // The stream was made in it, so the partition exists (and cannot go while ctx lives).
    const owner =
      (opts.partition === undefined
        ? undefined
        : this.#unit.partitions?.memoryAccount(opts.partition)) ?? this.#owner;
    try {
      this.#claimReservation(ctx, doing, owner);
    } catch (error) {
      ctx.destroy();
      throw error;
    }
    if (task) this.#evaluator.admit(task);
    this.#contexts.set(name, ctx);
    this.#directory.names.set(name, ctx);
    this.#accounts.set(ctx, { held: 0, owner });
    this.#scheduler.adopt(ctx);
    if (tracing.on) traceContext(ctx, "create", { qos, maxVram, reserved });
    return ctx;
  }

  /**
   * Claims ctx's reservation (not yet registered): caches first; evictions
   * only after the pressure handlers allowed them (asked with the new
   * context). Re-validated from scratch after the handlers ran.
   */
  #claimReservation(ctx: ExecutionContext, doing: string, owner: LimitOwner): void {
    const reserved = ctx.reserved;
    if (reserved === 0) return;
    if (owner !== this.#owner) this.#checkPartitionReservation(ctx, reserved, owner, doing);
    for (let round = 0;; round++) {
      this.#scheduler.assertActive("create a context");
      if (!ctx.alive) {
        throw new SchedulerError(`${doing}: it was destroyed by a memory-pressure handler`);
      }
      if (this.#contexts.has(ctx.name)) {
        throw new RangeError(`${doing}: the name was taken by a memory-pressure handler`);
      }
      const reservable = this.#reservable();
      if (reserved > reservable) {
        throw new AdmissionError(
          `${doing}: cannot reserve ${reserved} bytes, only ${reservable} are free or reclaimable ` +
            `(the rest is reserved or held by buffers that cannot be evicted)`,
        );
      }
      if (reserved > this.spare) this.#trimCaches(reserved, undefined);
      if (reserved > owner.spare) this.#trimCaches(reserved, undefined, owner);
      if (owner.tryClaim(reserved)) return;
      if (round === 1) {
        throw new AdmissionError(
          `${doing}: cannot reserve ${reserved} bytes, ${Math.max(0, owner.spare)} are free`,
        );
      }
      try {
        this.#askHandlers(ctx, reserved, Math.max(0, owner.spare));
      } catch (error) {
        throw new AdmissionError(`${doing}: a memory-pressure handler refused to make room`, {
          cause: (error as Error).cause ?? error,
        });
      }
      if (this.#scheduler.active && ctx.alive) {
        this.#reclaim(reserved - this.spare, undefined, CLASS_ORDER[ctx.qos]);
        if (owner !== this.#owner && reserved > owner.spare) {
          this.#reclaim(reserved - owner.spare, undefined, CLASS_ORDER[ctx.qos], owner);
        }
        if (owner !== this.#owner) this.#checkPartitionReservation(ctx, reserved, owner, doing);
      }
    }
  }

  /**
   * A reservation in a partition must fit its memory limit beside what the
   * partition's other contexts cannot give back.
   *
   * @throws {AdmissionError} when it cannot
   */
  #checkPartitionReservation(
    ctx: ExecutionContext,
    reserved: number,
    owner: LimitOwner,
    doing: string,
  ): void {
    let fixed = 0;
    for (const [other, account] of this.#accounts) {
      if (account.owner !== owner || other === ctx) continue;
      const pool = other.pool;
      fixed += Math.max(other.reserved, pool.allocatedBytes - pool.evictableBytes);
    }
    const reservable = Math.max(0, owner.limit - fixed);
    if (reserved > reservable) {
      throw new AdmissionError(
        `${doing}: cannot reserve ${reserved} bytes in partition ${show(ctx.partition)}, ` +
          `only ${reservable} of its memory limit of ${owner.limit} bytes are free or reclaimable`,
      );
    }
  }

  /** Bytes a new reservation could be given: the limit less what cannot be reclaimed. */
  #reservable(): number {
    let fixed = 0;
    let contextClaims = 0;
    for (const [ctx, account] of this.#accounts) {
      const pool = ctx.pool;
      const unreclaimable = pool.allocatedBytes - pool.evictableBytes;
      fixed += Math.max(ctx.reserved, unreclaimable);
      contextClaims += Math.max(ctx.reserved, account.held);
    }
    // What standalone pools hold is theirs until they give it back.
    const standalone = this.#owner.claimed - contextClaims;
    return Math.max(0, this.#owner.limit - fixed - standalone);
  }

  /** @internal ContextHost: claims `bytes` more for ctx if they fit now. No user code. */
  tryRequest(ctx: ExecutionContext, bytes: number): boolean {
    const account = this.#accounts.get(ctx);
    if (!account) return false;
    const held = account.held;
    const owner = account.owner;
    const increase = Math.max(held + bytes, ctx.reserved) - Math.max(held, ctx.reserved);
    if (increase > 0 && !owner.tryClaim(increase)) {
      // Others' caches count as available to everyone: release them before
      // anyone concludes there is pressure (no user code runs here).
      this.#trimCaches(increase, ctx);
      if (owner !== this.#owner) this.#trimCaches(increase, ctx, owner);
      if (!owner.tryClaim(increase)) return false;
    }
    account.held = held + bytes;
    return true;
  }

  /** @internal ContextHost */
  returned(ctx: ExecutionContext, bytes: number): void {
    const account = this.#accounts.get(ctx);
    if (!account) return;
    const held = account.held;
    account.owner.release(Math.max(held, ctx.reserved) - Math.max(held - bytes, ctx.reserved));
    account.held = held - bytes;
  }

  /** @internal ContextHost: ask the handlers before anything is evicted for ctx. */
  pressure(ctx: ExecutionContext, bytes: number, available: number): void {
    if (!this.#accounts.has(ctx)) {
      throw new SchedulerError(
        `Cannot allocate in context "${ctx.name}": it is not created yet (or was destroyed)`,
      );
    }
    this.#askHandlers(ctx, bytes, available);
  }

  /** @internal ContextHost: frees others' claims (and ctx's evictable bursts) for `bytes` more. */
  reclaim(ctx: ExecutionContext, bytes: number): void {
    const account = this.#accounts.get(ctx);
    if (!account) return;
    const held = account.held;
    const increase = Math.max(held + bytes, ctx.reserved) - Math.max(held, ctx.reserved);
    if (increase > this.spare) this.#reclaim(increase - this.spare, ctx, CLASS_ORDER[ctx.qos]);
    const owner = account.owner;
    if (owner !== this.#owner && increase > owner.spare) {
      this.#reclaim(increase - owner.spare, ctx, CLASS_ORDER[ctx.qos], owner);
    }
  }

  /** @internal ContextHost: bytes ctx could get now without evicting anything. */
  available(ctx: ExecutionContext): number {
    const account = this.#accounts.get(ctx);
    if (!account) return 0;
    const allocated = ctx.pool.allocatedBytes;
    const headroom = Math.max(0, Math.max(ctx.reserved, account.held) - allocated);
    const onDevice = Math.max(0, this.spare) + this.#othersCache(ctx);
    const owner = account.owner;
    if (owner === this.#owner) return headroom + onDevice;
    // In a partition: also under its limit, where only its own contexts' caches count.
    const inPartition = Math.max(0, owner.limit - owner.claimed) + this.#othersCache(ctx, owner);
    return headroom + Math.min(onDevice, inPartition);
  }

  /** @internal ContextHost */
  forget(ctx: ExecutionContext): void {
    const account = this.#accounts.get(ctx);
    if (!account) return;
    account.owner.release(Math.max(account.held, ctx.reserved));
    if (tracing.on) traceContext(ctx, "destroy");
    this.#accounts.delete(ctx);
    this.#contexts.delete(ctx.name);
    this.#directory.names.delete(ctx.name);
    if (this.#evaluator.has(ctx.name)) this.#evaluator.release(ctx.name);
    this.#scheduler.release(ctx);
  }

  /** @internal ContextHost: the reservation leaves the ledger at sleep and is admitted again at wake. */
  sleepLedger(ctx: ExecutionContext, reserved: number): SleepLedger {
    const move = (flip: () => void) => {
      const account = this.#accounts.get(ctx);
      if (!account) return flip();
      const before = Math.max(account.held, ctx.reserved);
      flip();
      // A negative release claims: resume checked the spare bytes first.
      account.owner.release(before - Math.max(account.held, ctx.reserved));
    };
    return {
      suspend: (asleep) => {
        move(asleep);
        if (this.#evaluator.has(ctx.name)) this.#evaluator.release(ctx.name);
      },
      resume: (awake) => {
        const doing = `Cannot wake context "${ctx.name}"`;
        const task = ctx.qos === QoSPolicy.GUARANTEED
          ? QosTaskMeta.guaranteed(ctx.name, ctx.name, ctx.maxVram)
          : ctx.qos === QoSPolicy.BURSTABLE
          ? QosTaskMeta.burstable(ctx.name, ctx.name, ctx.maxVram, { base: ctx.baseVram })
          : undefined;
        if (task) {
          const verdict = this.#evaluator.evaluate(task);
          if (verdict.decision === "reject") {
            throw new AdmissionError(`${doing}: ${verdict.reason}`);
          }
        }
        const reservable = this.#reservable();
        if (reserved > reservable) {
          throw new AdmissionError(
            `${doing}: cannot reserve ${reserved} bytes, only ${reservable} are free or reclaimable; it stays asleep`,
          );
        }
        // In a partition with a memory limit, the reservation must fit there too.
        const owner = this.#accounts.get(ctx)?.owner ?? this.#owner;
        const inPartition = owner !== this.#owner;
        if (inPartition) {
          this.#checkPartitionReservation(ctx, reserved, owner, `${doing} (it stays asleep)`);
        }
        if (reserved > this.spare) this.#trimCaches(reserved, ctx);
        if (inPartition && reserved > owner.spare) this.#trimCaches(reserved, ctx, owner);
        if (reserved > owner.spare) {
          // Nothing is evicted for the wake unless the pressure handlers allow it.
          try {
            this.#askHandlers(ctx, reserved, Math.max(0, owner.spare));
          } catch (error) {
            throw new AdmissionError(
              `${doing}: a memory-pressure handler refused to make room; it stays asleep`,
              { cause: (error as Error).cause ?? error },
            );
          }
          this.#scheduler.assertActive("wake a context");
          ctx.assertAlive(doing);
          if (reserved > this.spare) {
            this.#reclaim(reserved - this.spare, undefined, CLASS_ORDER[ctx.qos]);
          }
          if (inPartition && reserved > owner.spare) {
            this.#reclaim(reserved - owner.spare, undefined, CLASS_ORDER[ctx.qos], owner);
          }
        }
        if (reserved > owner.spare) {
          throw new AdmissionError(
            `${doing}: cannot reserve ${reserved} bytes, only ${
              Math.max(0, owner.spare)
            } could be freed; it stays asleep`,
          );
        }
        move(awake);
        if (task) this.#evaluator.admit(task);
      },
    };
  }

  /**
   * Asks every handler registered now; the first refusal (false, a throw, a
   * non-boolean) rejects. Handlers registered or removed meanwhile take
   * effect for the next allocation.
   */
  #askHandlers(ctx: ExecutionContext, requested: number, available: number): void {
    for (const handler of [...this.#handlers]) {
      let allowed: unknown;
      ctx.tallies.pressureEvents++;
      if (tracing.on) tracePressure(ctx, requested, available);
      try {
        allowed = handler(ctx, requested, available);
      } catch (cause) {
        throw new VramBudgetExceededError(ctx, requested, available, { cause });
      }
      if (allowed === true) continue;
      if (allowed === false) throw new VramBudgetExceededError(ctx, requested, available);
      if (allowed instanceof Promise) allowed.catch(() => {}); // refused: its outcome is moot
      throw new VramBudgetExceededError(ctx, requested, available, {
        cause: new TypeError(
          `A memory-pressure handler must return a boolean synchronously, got ${show(allowed)}`,
        ),
      });
    }
  }

  /**
   * Releases caches of contexts other than `except` above their
   * reservations until spare ≥ target: the device's spare, or with `scope`
   * a partition's, releasing only caches of the contexts claiming there.
   */
  #trimCaches(target: number, except: ExecutionContext | undefined, scope?: LimitOwner): void {
    const owner = scope ?? this.#owner;
    for (const [ctx, account] of [...this.#accounts]) {
      if (owner.spare >= target) return;
      if (ctx === except || !ctx.alive || (scope !== undefined && account.owner !== scope)) {
        continue;
      }
      if (ctx.pool.cachedBytes > 0 && account.held > ctx.reserved) ctx.pool.trim();
    }
  }

  /**
   * Frees at least `need` bytes of claims if possible: caches of everyone
   * (cheapest), then evictable memory above reservations, lowest class
   * first, the asking context last. Stops as soon as enough is free.
   */
  #reclaim(
    need: number,
    asking: ExecutionContext | undefined,
    askingClass: number,
    scope?: LimitOwner,
  ): void {
    const owner = scope ?? this.#owner;
    const spare = () => owner.spare;
    const target = spare() + need;
    const done = () => spare() >= target;
    this.#trimCaches(target, asking, scope);
    if (done()) return;
    const others = [...this.#contexts.values()].filter((c) =>
      c !== asking && c.alive && (scope === undefined || this.#accounts.get(c)?.owner === scope)
    );
    const victims = others
      .filter((c) =>
        CLASS_ORDER[c.qos] > askingClass ||
        (asking === undefined && CLASS_ORDER[c.qos] >= askingClass)
      )
      .sort((a, b) => CLASS_ORDER[b.qos] - CLASS_ORDER[a.qos]);
    for (const ctx of victims) {
      if (done()) return;
      const account = this.#accounts.get(ctx);
      if (!account) continue;
      const aboveReservation = account.held - ctx.reserved;
      if (aboveReservation <= 0 || ctx.pool.evictableBytes === 0) continue;
      ctx.pool.evict(Math.min(aboveReservation, target - spare()));
    }
    const account = asking && this.#accounts.get(asking);
    if (asking && account && !done()) {
      if (asking.pool.cachedBytes > 0) asking.pool.trim();
      const above = account.held - asking.reserved;
      if (!done() && above > 0 && asking.pool.evictableBytes > 0) {
        asking.pool.evict(Math.min(above, target - spare()));
      }
    }
  }

  /** Registers a pressure handler; returns the function that unregisters it. */
  onMemoryPressure(handler: MemoryPressureHandler): () => void {
    if (typeof handler !== "function") {
      throw new TypeError(
        `Cannot register a memory-pressure handler: expected a function, got ${show(handler)}`,
      );
    }
    const entry = (ctx: ExecutionContext, requested: number, available: number) =>
      handler(ctx, requested, available);
    this.#handlers.push(entry);
    return () => {
      const i = this.#handlers.indexOf(entry);
      if (i >= 0) this.#handlers.splice(i, 1);
    };
  }
}
