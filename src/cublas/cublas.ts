/**
 * A cuBLAS handle per execution context, bound to the context's stream and
 * budget, and `gemm` over `GemmEx` with the scheduler's compute QoS on the
 * BEST_EFFORT side: slicing into bounded pieces, and borrowing reserved
 * SMs while their owners are idle.
 *
 * @module
 */

import { ExecutionContext } from "../context/execution_context.ts";
import { makeDeviceCurrent } from "../device.ts";
import { ComputeLayout } from "../engine/compute_layout.ts";
import type { PoolBlock } from "../engine/pool_block.ts";
import { QoSPolicy } from "../engine/qos_policy.ts";
import { NativeError, SchedulerError } from "../errors.ts";
import type { GpuEvent } from "../event.ts";
import { getScheduler, type Scheduler } from "../scheduler.ts";
import { Stream } from "../stream.ts";
import { MB } from "../units.ts";
import {
  requireBoolean,
  requireNumber,
  requireOptions,
  requirePositiveInteger,
  show,
} from "../validate.ts";
import { type GemmOptions, type ParsedGemm, parseGemm } from "./gemm_args.ts";
import { type CublasLibrary, loadCublas } from "./library.ts";
import { type GateLimits, LaunchGate, parseGateLimits } from "./launch_gate.ts";
import { pieceColumns, PieceSpeed } from "./piece_sizing.ts";

export type { GemmOptions, GemmType } from "./gemm_args.ts";

/** Options of `Cublas.for()`, read when the context's handle is first made. */
export interface CublasOptions {
  /** cuBLAS workspace, allocated from the context's budget (default 32 MiB). */
  workspaceBytes?: number;
}

/**
 * How BEST_EFFORT GEMMs yield to compute reservations (see `Cublas`).
 * Process-wide; `setGemmQos()` changes it.
 */
export interface GemmQos {
  /** Slice BEST_EFFORT GEMMs along N into pieces of at most this many FLOPs while a reservation exists (0: never). */
  maxPieceFlops: number;
  /** Let BEST_EFFORT GEMMs run whole on every SM while every reservation's owner is idle. */
  borrow: boolean;
  /** An owner counts as idle this long after its stream was last seen busy, in ms. */
  idleMs: number;
  /** Borrowed GEMMs queued at most at once (bounds what an owner waits for when it wakes). */
  maxBorrowedQueued: number;
  /**
   * `gemmAsync` only: size pieces to take about this long (µs), from the
   * duration measured of earlier pieces on the device's shared SMs
   * (0: by `maxPieceFlops`; also until a first piece was measured).
   */
  pieceUs: number;
  /** `gemmAsync` only: pieces in flight at most on the device while a reservation's owner is active (0: none start, save after `maxHoldMs`). */
  activeInFlight: number;
  /** `gemmAsync` only: pieces in flight at most while every owner is idle. */
  idleInFlight: number;
  /** `gemmAsync` only: a piece held this long (ms, counted from its submission or the last completion) starts even while an owner is active. */
  maxHoldMs: number;
}

const qos: GemmQos = {
  maxPieceFlops: 2.8e11,
  borrow: true,
  idleMs: 2,
  maxBorrowedQueued: 3,
  pieceUs: 0,
  activeInFlight: 1,
  idleInFlight: 3,
  maxHoldMs: Infinity,
};

/**
 * Changes how BEST_EFFORT GEMMs yield to compute reservations; returns the
 * settings now in force.
 *
 * @example
 * ```ts
 * import { setGemmQos } from "@gpusched/core/cublas";
 * const before = setGemmQos({});
 * console.assert(setGemmQos({ maxPieceFlops: 0 }).maxPieceFlops === 0);
 * setGemmQos(before);
 * ```
 */
export function setGemmQos(changes: Partial<GemmQos>): GemmQos {
  const doing = "Cannot set the GEMM QoS";
  const opts = requireOptions<Partial<GemmQos>>(changes, doing);
  const next = { ...qos };
  if (opts.maxPieceFlops !== undefined) {
    if (!(requireNumber(opts.maxPieceFlops, "maxPieceFlops", doing) >= 0)) {
      throw new RangeError(
        `${doing}: maxPieceFlops must be a number >= 0, got ${show(opts.maxPieceFlops)}`,
      );
    }
    next.maxPieceFlops = opts.maxPieceFlops;
  }
  if (opts.borrow !== undefined) next.borrow = requireBoolean(opts.borrow, "borrow", doing);
  if (opts.idleMs !== undefined) {
    if (!(requireNumber(opts.idleMs, "idleMs", doing) >= 0)) {
      throw new RangeError(`${doing}: idleMs must be a number >= 0, got ${show(opts.idleMs)}`);
    }
    next.idleMs = opts.idleMs;
  }
  if (opts.maxBorrowedQueued !== undefined) {
    next.maxBorrowedQueued = requirePositiveInteger(
      opts.maxBorrowedQueued,
      "maxBorrowedQueued",
      doing,
    );
  }
  if (opts.pieceUs !== undefined) {
    const pieceUs = requireNumber(opts.pieceUs, "pieceUs", doing);
    if (!(pieceUs >= 0) || !Number.isFinite(pieceUs)) {
      throw new RangeError(
        `${doing}: pieceUs must be a finite number >= 0, got ${show(opts.pieceUs)}`,
      );
    }
    next.pieceUs = pieceUs;
  }
  // The gate's own checks name the option.
  // `=== undefined`, not `??`: a null is a mistake to report, not "unchanged".
  const limits = parseGateLimits({
    activeInFlight: opts.activeInFlight === undefined ? next.activeInFlight : opts.activeInFlight,
    idleInFlight: opts.idleInFlight === undefined ? next.idleInFlight : opts.idleInFlight,
    maxHoldMs: opts.maxHoldMs === undefined ? next.maxHoldMs : opts.maxHoldMs,
  }, doing);
  Object.assign(next, limits);
  Object.assign(qos, next);
  for (const state of liveDevices) state.deref()?.gate.setLimits(gateLimits());
  return { ...qos };
}

function gateLimits(): GateLimits {
  return {
    activeInFlight: qos.activeInFlight,
    idleInFlight: qos.idleInFlight,
    maxHoldMs: qos.maxHoldMs,
  };
}

// cublasComputeType_t and cublasGemmAlgo_t values (cublas_api.h).
const COMPUTE_32F = 68;
const GEMM_DEFAULT = -1;

const handles = new WeakMap<ExecutionContext, Cublas>();

/** What the helper keeps per device layout: the gate and the pieces' measured speed. */
interface DeviceQos {
  readonly gate: LaunchGate;
  /** Speed of pieces on the shared SMs. */
  readonly speed: PieceSpeed;
}
const devices = new WeakMap<ComputeLayout, DeviceQos>();
/** The states made, so that `setGemmQos` reaches their gates. */
const liveDevices = new Set<WeakRef<DeviceQos>>();

function deviceQos(layout: ComputeLayout, sched: Scheduler): DeviceQos {
  let state = devices.get(layout);
  if (state === undefined) {
    const gate = new LaunchGate({
      ownerActive: () => !ownersIdle(layout),
      ownerSettled: () => ownersSettled(layout),
    }, gateLimits());
    state = { gate, speed: new PieceSpeed() };
    devices.set(layout, state);
    for (const ref of liveDevices) if (ref.deref() === undefined) liveDevices.delete(ref);
    liveDevices.add(new WeakRef(state));
    // Held pieces would launch into a dead scheduler: they reject instead.
    sched.adopt({ invalidate: () => gate.close("the scheduler shut down") });
  }
  return state;
}

/** Whether every reservation's owner has been idle (no work queued, none launched) for `idleMs`. */
function ownersIdle(layout: ComputeLayout): boolean {
  const now = performance.now();
  for (const r of layout.reservations()) {
    const stream = r.stream;
    if (stream === undefined || stream.destroyed) continue;
    if (!stream.query()) {
      ownerActiveAt.set(r, now);
      return false;
    }
    const activeAt = ownerActiveAt.get(r);
    if (activeAt !== undefined && now - activeAt < qos.idleMs) return false;
  }
  return true;
}

/** Resolves once every owner's queued work is done and `idleMs` has passed since. */
async function ownersSettled(layout: ComputeLayout): Promise<void> {
  let latest = -Infinity;
  for (const r of layout.reservations()) {
    const stream = r.stream;
    if (stream === undefined || stream.destroyed) continue;
    if (!stream.query()) {
      await stream.synchronize();
      ownerActiveAt.set(r, performance.now());
    }
    latest = Math.max(latest, ownerActiveAt.get(r) ?? -Infinity);
  }
  const left = latest + qos.idleMs - performance.now();
  if (left > 0) await new Promise((r) => setTimeout(r, left));
}
/** When each reservation's owner was last seen active (launching, or its stream busy). */
const ownerActiveAt = new WeakMap<object, number>();
const handleOut = new BigUint64Array(1);
const alphaBuf = new Float32Array(1);
const betaBuf = new Float32Array(1);

function check(status: number, what: string): void {
  if (status !== 0) {
    throw new NativeError(status, `${what} failed: cuBLAS status ${status}`);
  }
}

/** One cuBLAS handle on one native stream, re-bound when that stream's handle changes. */
class BoundHandle {
  readonly #lib: CublasLibrary;
  readonly handle: Deno.PointerObject;
  #stream: bigint = -1n;

  constructor(lib: CublasLibrary) {
    this.#lib = lib;
    check(lib.cublasCreate_v2(new Uint8Array(handleOut.buffer)), "cublasCreate");
    this.handle = Deno.UnsafePointer.create(handleOut[0]!)!;
  }

  /** Binds to `stream` (its current handle) and its workspace; cheap when unchanged. */
  bind(stream: Stream, workspace: PoolBlock): void {
    const native = stream.handle;
    const value = Deno.UnsafePointer.value(native);
    if (value === this.#stream) return;
    check(this.#lib.cublasSetStream_v2(this.handle, native), "cublasSetStream");
    // cublasSetStream resets the workspace to cuBLAS's own: set ours again.
    check(
      this.#lib.cublasSetWorkspace_v2(this.handle, workspace.ptr, BigInt(workspace.size)),
      "cublasSetWorkspace",
    );
    this.#stream = value;
  }

  destroy(): void {
    this.#lib.cublasDestroy_v2(this.handle);
  }
}

/**
 * cuBLAS for one execution context: one handle bound to the context's
 * stream (re-bound whenever `stream.handle` changes, as it does when the SM
 * layout changes), with its workspace allocated from the context's budget.
 * Only on the CUDA backend.
 *
 * **Compute QoS.** For a BEST_EFFORT context, while any context holds a
 * compute reservation, `gemm` bounds how long one GEMM holds SMs that a
 * reserving context may need. While every reserving context has been idle
 * for `idleMs` (its stream empty and no GEMM of its own issued), the GEMM
 * runs whole on a second stream over every SM (borrowing the reserved
 * SMs), at most `maxBorrowedQueued` at once, ordered with the context's
 * stream by events (work queued on the context's stream later still runs
 * after it). Otherwise it runs on the shared SMs as pieces along N of at
 * most `maxPieceFlops` each (separate GemmEx calls, so the GPU can start
 * the reserving context's kernels on shared SMs between them). See
 * `setGemmQos()`.
 *
 * @example
 * ```ts ignore
 * import { createContext, initialize, MB, QoSPolicy } from "@gpusched/core";
 * import { Cublas } from "@gpusched/core/cublas";
 * initialize({ backend: "cuda" });
 * const llm = createContext("llm", { maxVram: 512 * MB, qos: QoSPolicy.GUARANTEED, compute: 0.25 });
 * const a = llm.alloc(16 * 4096 * 2), b = llm.alloc(4096 * 4096 * 2), c = llm.alloc(16 * 4096 * 2);
 * Cublas.for(llm).gemm({ m: 16, n: 4096, k: 4096, a, b, c, type: "bf16", transA: false });
 * await llm.stream.synchronize();
 * ```
 */
export class Cublas {
  /** The context it works for. */
  readonly context: ExecutionContext;
  readonly #sched: Scheduler;
  readonly #lib: CublasLibrary;
  readonly #main: BoundHandle;
  readonly #workspace: PoolBlock;
  #borrow: Borrowing | undefined;
  #alive = true;
  /** Pieces launched on the borrowing stream, for benchmarks and tests. */
  borrowedPieces = 0;
  /** GemmEx calls made. */
  pieces = 0;

  /**
   * The context's handle, made on first use.
   *
   * @throws {TypeError} when ctx is not an ExecutionContext
   * @throws {SchedulerError} on the host backend (naming it), when cuBLAS cannot be loaded, or for a destroyed context
   * @throws {VramBudgetExceededError} when the workspace does not fit in its budget
   */
  static for(ctx: ExecutionContext, options?: CublasOptions): Cublas {
    if (!(ctx instanceof ExecutionContext)) {
      throw new TypeError(
        `Cannot make a cuBLAS handle: ctx must be an ExecutionContext, got ${show(ctx)}`,
      );
    }
    let blas = handles.get(ctx);
    if (blas === undefined || !blas.#alive) {
      blas = new Cublas(ctx, options);
      handles.set(ctx, blas);
    }
    return blas;
  }

  private constructor(ctx: ExecutionContext, options?: CublasOptions) {
    const doing = `Cannot make a cuBLAS handle for context ${show(ctx.name)}`;
    const sched = getScheduler();
    ctx.assertAlive(doing);
    const opts = requireOptions<CublasOptions>(options, doing);
    const workspaceBytes = opts.workspaceBytes === undefined
      ? 32 * MB
      : requirePositiveInteger(opts.workspaceBytes, "workspaceBytes", doing);
    if (sched.backend !== "cuda") {
      throw new SchedulerError(
        `${doing}: cuBLAS runs on the CUDA backend only, this scheduler runs the ${sched.backend} backend`,
      );
    }
    this.context = ctx;
    this.#sched = sched;
    this.#lib = loadCublas().symbols;
    this.#workspace = ctx.alloc(workspaceBytes);
    try {
      makeDeviceCurrent(ctx.device); // a cuBLAS handle belongs to the current device
      this.#main = new BoundHandle(this.#lib);
    } catch (error) {
      this.#workspace.free();
      throw error;
    }
  }

  /**
   * Queues C = alpha * op(A) * op(B) + beta * C on the context's stream
   * (column-major, as cuBLAS), accumulating in fp32.
   *
   * @throws {TypeError | RangeError} for bad arguments (naming them), buffers too small, sizes past
   *   int32, or a buffer of another device than the context's (a RangeError naming it and both devices)
   * @throws {NativeError} when cuBLAS refuses
   */
  gemm(options: GemmOptions): void {
    const doing = `Cannot queue a GEMM on context ${show(this.context.name)}`;
    this.#assertAlive(doing);
    const g = parseGemm(options, doing, this.context.device);
    const layout = ComputeLayout.peek(this.#sched, this.context.device);
    // Pieces of earlier gemmAsync calls still held go first: stream order.
    if (layout !== undefined) devices.get(layout)?.gate.flush(this);
    if (layout === undefined || !layout.hasReservations) return this.#launch(g, 0, g.n, false);
    this.#markOwnerActive(layout);
    if (this.context.qos !== QoSPolicy.BEST_EFFORT) return this.#launch(g, 0, g.n, false);
    // Owners idle: the whole GEMM on every SM (borrowing theirs); else in bounded pieces on the shared SMs.
    if (qos.borrow && ownersIdle(layout) && this.#borrowRoom()) {
      this.#launch(g, 0, g.n, true);
    } else {
      const pieceN = this.#pieceColumns(g, undefined);
      for (let first = 0; first < g.n; first += pieceN) {
        this.#launch(g, first, Math.min(pieceN, g.n - first), false);
      }
    }
  }

  /**
   * Like `gemm`, but for a BEST_EFFORT context while a reservation exists
   * the GEMM goes through the device's launch gate: its pieces (sized by
   * `pieceUs` from measured durations, or by `maxPieceFlops`) start in
   * order, at most `activeInFlight` at once on the device while an owner
   * is active and `idleInFlight` while every owner is idle; each piece
   * runs on every SM (borrowing) when the owners are idle at its start,
   * on the shared SMs otherwise, ordered with the context's stream by
   * events. Resolves once every piece is queued on the device: work queued
   * on the context's stream after that runs after the GEMM (a `gemm` call
   * of the same context starts its held pieces first). Elsewhere it
   * queues at once, as `gemm`. Keep the buffers allocated until it
   * resolves: a piece whose buffer was freed rejects (and the rest of the
   * GEMM with it) instead of launching.
   *
   * @throws {TypeError | RangeError} (rejects) for bad arguments, as `gemm`
   * @throws {SchedulerError} (rejects) when the handle, context or scheduler is gone before its pieces start
   */
  gemmAsync(options: GemmOptions): Promise<void> {
    let g: ParsedGemm;
    let layout: ComputeLayout | undefined;
    try {
      const doing = `Cannot queue a GEMM on context ${show(this.context.name)}`;
      this.#assertAlive(doing);
      g = parseGemm(options, doing, this.context.device);
      layout = ComputeLayout.peek(this.#sched, this.context.device);
      if (
        layout === undefined || !layout.hasReservations ||
        this.context.qos !== QoSPolicy.BEST_EFFORT
      ) {
        this.gemm(options);
        return Promise.resolve();
      }
    } catch (error) {
      return Promise.reject(error);
    }
    const state = deviceQos(layout, this.#sched);
    const pieceN = this.#pieceColumns(g, state);
    const pieces = [];
    for (let first = 0; first < g.n; first += pieceN) {
      const n = Math.min(pieceN, g.n - first);
      pieces.push(() => this.#gatedPiece(g, first, n, layout, state));
    }
    return state.gate.submit(this, pieces);
  }

  /** Columns per piece of a BEST_EFFORT GEMM: by measured speed (`pieceUs`) or by `maxPieceFlops`. */
  #pieceColumns(g: ParsedGemm, state: DeviceQos | undefined): number {
    return pieceColumns(g.n, 2 * g.m * g.k, qos.maxPieceFlops, qos.pieceUs, state?.speed.usPerFlop);
  }

  /** One piece started by the gate: borrowing chosen now; resolves when it completes. */
  #gatedPiece(
    g: ParsedGemm,
    first: number,
    n: number,
    layout: ComputeLayout,
    state: DeviceQos,
  ): Promise<unknown> {
    this.#assertAlive(`Cannot start a held GEMM piece of context ${show(this.context.name)}`);
    const borrow = qos.borrow && ownersIdle(layout) && this.#borrowRoom();
    const stream = borrow ? this.#borrowing().stream : this.context.stream;
    const start = this.#sched.createEvent({ timing: true });
    const end = this.#sched.createEvent({ timing: true });
    try {
      if (borrow) {
        // The borrowing stream waits for the context's work first (in #launch); time from there.
        this.#launch(g, first, n, true, start, end);
      } else {
        start.record(stream);
        this.#launch(g, first, n, false);
        end.record(stream);
      }
    } catch (error) {
      start.destroy();
      end.destroy();
      throw error;
    }
    const flops = 2 * g.m * n * g.k;
    return end.synchronize().then(() => {
      const ms = start.elapsedMs(end);
      // Borrowed pieces ran on more SMs: only the shared SMs' speed sizes pieces.
      if (!borrow && ms !== undefined) state.speed.add(ms * 1000, flops);
    }).finally(() => {
      start.destroy();
      end.destroy();
    });
  }

  /** An owner's own GEMMs say it is active, sooner than sampling its stream would. */
  #markOwnerActive(layout: ComputeLayout): void {
    if (this.context.smCount <= 0) return;
    for (const r of layout.reservations()) {
      if (r.stream === this.context.stream) ownerActiveAt.set(r, performance.now());
    }
  }

  /** Destroys the handle and frees its workspace; `Cublas.for()` makes a new one. Idempotent. */
  destroy(): void {
    if (!this.#alive) return;
    this.#alive = false;
    handles.delete(this.context);
    for (const ref of liveDevices) {
      ref.deref()?.gate.cancel(
        this,
        `the cuBLAS handle of context ${show(this.context.name)} was destroyed`,
      );
    }
    if (this.#sched.active) {
      this.#main.destroy();
      if (this.#borrow) {
        this.#borrow.handle.destroy();
        for (const ev of this.#borrow.queued) ev.destroy();
        this.#borrow.stream.destroy();
      }
      if (this.context.alive) this.#workspace.free();
    }
  }

  #assertAlive(doing: string): void {
    if (this.#alive && (!this.context.alive || !this.#sched.active)) this.destroy();
    if (!this.#alive) {
      throw new SchedulerError(
        `${doing}: its cuBLAS handle was destroyed (or its context or scheduler)`,
      );
    }
  }

  /** Whether fewer than `maxBorrowedQueued` borrowed GEMMs are still queued. */
  #borrowRoom(): boolean {
    const b = this.#borrowing();
    b.queued = b.queued.filter((ev) => {
      if (!ev.query()) return true;
      ev.destroy();
      return false;
    });
    return b.queued.length < qos.maxBorrowedQueued;
  }

  #borrowing(): Borrowing {
    if (this.#borrow === undefined) {
      // Outside the layout (the scheduler does not move it): partition 0 is every SM.
      const stream = new Stream(this.#sched, 0, this.context.stream.priority, undefined, 0);
      makeDeviceCurrent(this.context.device);
      this.#borrow = { stream, handle: new BoundHandle(this.#lib), queued: [] };
    }
    return this.#borrow;
  }

  #launch(
    g: ParsedGemm,
    first: number,
    n: number,
    borrow: boolean,
    start?: GpuEvent,
    end?: GpuEvent,
  ): void {
    const main = this.context.stream;
    let stream = main;
    let handle = this.#main;
    const b = borrow ? this.#borrowing() : undefined;
    if (b !== undefined) {
      const ready = this.#sched.createEvent().record(main);
      ready.wait(b.stream);
      ready.destroy();
      stream = b.stream;
      handle = b.handle;
    }
    start?.record(stream);
    // Other libsched calls may have moved the CUDA device; launches go to the current one.
    if (this.#sched.devices.length > 1) makeDeviceCurrent(this.context.device);
    handle.bind(stream, this.#workspace);
    const bOffset = (g.transB ? first : first * g.ldb) * g.elementBytes;
    const cOffset = first * g.ldc * g.elementBytes;
    alphaBuf[0] = g.alpha;
    betaBuf[0] = g.beta;
    check(
      this.#lib.cublasGemmEx(
        handle.handle,
        g.transA ? 1 : 0,
        g.transB ? 1 : 0,
        g.m,
        n,
        g.k,
        new Uint8Array(alphaBuf.buffer),
        g.a.ptr,
        g.dataType,
        g.lda,
        Deno.UnsafePointer.offset(g.b.ptr, bOffset),
        g.dataType,
        g.ldb,
        new Uint8Array(betaBuf.buffer),
        Deno.UnsafePointer.offset(g.c.ptr, cOffset),
        g.dataType,
        g.ldc,
        COMPUTE_32F,
        GEMM_DEFAULT,
      ),
      "cublasGemmEx",
    );
    this.pieces++;
    if (b !== undefined) {
      end?.record(b.stream);
      const done = this.#sched.createEvent().record(b.stream);
      done.wait(main); // later work of the context runs after the borrowed piece
      b.queued.push(done);
      this.borrowedPieces++;
    }
  }
}

/** The second stream, over every SM, that BEST_EFFORT pieces borrow reserved SMs on. */
interface Borrowing {
  stream: Stream;
  handle: BoundHandle;
  /** Events after each borrowed piece not yet seen complete. */
  queued: GpuEvent[];
}
