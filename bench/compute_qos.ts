/**
 * Work-conserving compute QoS with real work (issue 12): a GUARANTEED
 * "decode step" (8 bf16 cuBLAS GEMMs, 16x4096 @ 4096x4096, each with its
 * own weights) as the victim, and a BEST_EFFORT flood of 8192^3 bf16 GEMMs,
 * through `@gpusched/core/cublas`, in one run under each arrangement:
 *
 * - plain: no reservation, stream priorities only (the GUARANTEED band is
 *   the most urgent);
 * - static: PartitionManager partitions, victim 0.25 and flood 0.75;
 * - split: the victim's `compute: 0.25` reservation, the flood's GEMMs
 *   whole (no slicing, no borrowing): the green-context split alone;
 * - sliced: the same, with BEST_EFFORT GEMMs sliced along N (pieces of
 *   2048 columns for 8192^3) while the victim is active;
 * - borrow: whole GEMMs, borrowing every SM while the victim is idle;
 * - qos: sliced while the victim is active, borrowing while it is idle (the
 *   defaults).
 *
 * For each: victim step latency (CUDA events around the 8 GEMMs, the
 * launches queued behind a 300 us one-block spin so that host launch time
 * is not counted; `aloneHost`/`underFloodHost` without that gate) alone and
 * under the flood (p50/p99), flood throughput (GEMMs/s) with the victim
 * idle and with the victim stepping back to back. Ratios are against the
 * plain arrangement's victim alone and flood alone (the whole GPU).
 *
 * Run: `deno run --allow-ffi --allow-env=GPUSCHED_LIB,GPUSCHED_BACKEND,GPUSCHED_CUBLAS bench/compute_qos.ts`
 * (CUDA only; prints a table and a `json:` line for bench/gpu.ts). `--only=static,qos` runs
 * some arrangements (plain always runs, as the baseline); `--shares=0.375,0.5` adds the defaults
 * at larger reservations.
 *
 * @module
 */

import {
  createContext,
  type ExecutionContext,
  type GpuEvent,
  MB,
  PartitionLimits,
  PartitionManager,
  QoSPolicy,
  type Scheduler,
} from "../mod.ts";
import { Cublas, setGemmQos } from "../src/cublas/mod.ts";
import { localLibraryPath } from "../src/native/loader.ts";
import { benchScheduler } from "./_backend.ts";

const STEPS = 400;
const WARMUP = 50;
const FLOOD_SECONDS = 1.5;
const FLOOD_QUEUE = 3;
const D = 4096;
const TOKENS = 16;
const F = 8192;
const BF16 = 2;
const GATE_NS = 300_000n;

interface Stats {
  p50: number;
  p99: number;
  mean: number;
  n: number;
}

function stats(us: number[]): Stats {
  const s = [...us].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return {
    p50: at(0.5),
    p99: at(0.99),
    mean: s.reduce((a, b) => a + b, 0) / s.length,
    n: s.length,
  };
}

interface Arrangement {
  name: string;
  victim: ExecutionContext;
  flood: ExecutionContext;
  teardown(): void;
}

class Victim {
  readonly ctx: ExecutionContext;
  readonly blas: Cublas;
  readonly #x;
  readonly #y;
  readonly #weights;
  readonly #start: GpuEvent;
  readonly #end: GpuEvent;

  constructor(sched: Scheduler, ctx: ExecutionContext) {
    this.ctx = ctx;
    this.blas = Cublas.for(ctx);
    this.#x = ctx.alloc(TOKENS * D * BF16);
    this.#y = ctx.alloc(TOKENS * D * BF16);
    this.#weights = Array.from({ length: 8 }, () => ctx.alloc(D * D * BF16));
    this.#start = sched.createEvent({ timing: true });
    this.#end = sched.createEvent({ timing: true });
  }

  /**
   * Queues one step; returns nothing until `finish`. Gated: behind a short
   * one-block spin, so that the 8 launches are queued before the step
   * starts and its time is the GPU's alone (host launch jitter excluded).
   */
  launch(gated = false): void {
    if (gated) gate(this.ctx.stream.handle);
    this.#start.record(this.ctx.stream);
    for (let i = 0; i < 8; i++) {
      const [a, c] = i % 2 === 0 ? [this.#x, this.#y] : [this.#y, this.#x];
      this.blas.gemm({ m: TOKENS, n: D, k: D, a, b: this.#weights[i]!, c, type: "bf16" });
    }
    this.#end.record(this.ctx.stream);
  }

  /** Waits for the step and returns its GPU time in µs. */
  finish(): number {
    this.#end.synchronizeSync();
    return this.#start.elapsedMs(this.#end)! * 1000;
  }

  step(gated = false): number {
    this.launch(gated);
    return this.finish();
  }
}

class Flood {
  readonly ctx: ExecutionContext;
  readonly blas: Cublas;
  readonly #a;
  readonly #b;
  readonly #c;
  readonly #sched: Scheduler;
  #queued: GpuEvent[] = [];
  done = 0;

  constructor(sched: Scheduler, ctx: ExecutionContext) {
    this.#sched = sched;
    this.ctx = ctx;
    this.blas = Cublas.for(ctx);
    this.#a = ctx.alloc(F * F * BF16);
    this.#b = ctx.alloc(F * F * BF16);
    this.#c = ctx.alloc(F * F * BF16);
  }

  /** Keeps `FLOOD_QUEUE` GEMMs queued; counts the ones completed. */
  topUp(): void {
    this.#queued = this.#queued.filter((ev) => {
      if (!ev.query()) return true;
      ev.destroy();
      this.done++;
      return false;
    });
    while (this.#queued.length < FLOOD_QUEUE) {
      this.blas.gemm({ m: F, n: F, k: F, a: this.#a, b: this.#b, c: this.#c, type: "bf16" });
      this.#queued.push(this.#sched.createEvent().record(this.ctx.stream));
    }
  }

  drain(): void {
    for (const ev of this.#queued) {
      ev.synchronizeSync();
      ev.destroy();
    }
    this.#queued = [];
  }
}

let spinKernel: { gs_spin_ns(stream: Deno.PointerValue, ns: bigint, blocks: number): number };
function gate(stream: Deno.PointerValue): void {
  spinKernel ??= Deno.dlopen(
    localLibraryPath("libgskernels.so"),
    {
      gs_spin_ns: { parameters: ["pointer", "u64", "i32"], result: "i32" },
    } as const,
  ).symbols;
  if (spinKernel.gs_spin_ns(stream, GATE_NS, 1) !== 0) throw new Error("gs_spin_ns failed");
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function measure(sched: Scheduler, arr: Arrangement) {
  const victim = new Victim(sched, arr.victim);
  const flood = new Flood(sched, arr.flood);
  // Warm: cuBLAS's heuristics, and the clocks (a flood first, then the victim).
  for (let i = 0; i < 4; i++) {
    flood.topUp();
    flood.drain();
  }
  for (let i = 0; i < WARMUP; i++) victim.step();

  const alone = stats(Array.from({ length: STEPS }, () => victim.step(true)));
  const aloneHost = stats(Array.from({ length: STEPS }, () => victim.step()));

  // Flood with the victim idle: GEMMs/s over FLOOD_SECONDS.
  flood.topUp();
  flood.drain();
  flood.done = 0;
  let t0 = performance.now();
  while (performance.now() - t0 < FLOOD_SECONDS * 1000) {
    flood.topUp();
    await sleep(0.5);
  }
  flood.drain();
  const idleRate = (flood.done + FLOOD_QUEUE) / ((performance.now() - t0) / 1000);

  // Victim latency under the flood (gated steps).
  for (let i = 0; i < WARMUP; i++) {
    flood.topUp();
    victim.step();
  }
  const under: number[] = [];
  while (under.length < STEPS) {
    flood.topUp();
    victim.launch(true);
    flood.topUp();
    under.push(victim.finish());
  }
  // Flood throughput with the victim stepping back to back (not gated).
  flood.done = 0;
  const underHost: number[] = [];
  t0 = performance.now();
  while (performance.now() - t0 < FLOOD_SECONDS * 1000) {
    flood.topUp();
    victim.launch();
    flood.topUp();
    underHost.push(victim.finish());
  }
  const busyElapsed = (performance.now() - t0) / 1000;
  const busyDone = flood.done;
  flood.drain();
  const busyRate = busyDone / busyElapsed;
  const result = {
    name: arr.name,
    victimSms: arr.victim.smCount,
    alone,
    underFlood: stats(under),
    aloneHost,
    underFloodHost: stats(underHost),
    floodIdleRate: idleRate,
    floodBusyRate: busyRate,
    borrowedPieces: flood.blas.borrowedPieces,
    floodPieces: flood.blas.pieces,
  };
  victim.blas.destroy();
  flood.blas.destroy();
  arr.teardown();
  return result;
}

const sched = benchScheduler();
if (sched.backend !== "cuda") {
  console.log("compute_qos: needs the CUDA backend (cuBLAS); skipped");
  console.log(
    `json: ${JSON.stringify({ error: `backend ${sched.backend}: needs CUDA and cuBLAS` })}`,
  );
  Deno.exit(0);
}

function contexts(victimOpts: Record<string, unknown>, floodOpts: Record<string, unknown>) {
  const victim = createContext("victim", {
    maxVram: 512 * MB,
    qos: QoSPolicy.GUARANTEED,
    ...victimOpts,
  });
  const flood = createContext("flood", {
    maxVram: 1024 * MB,
    qos: QoSPolicy.BEST_EFFORT,
    ...floodOpts,
  });
  return { victim, flood };
}

/**
 * `--only=a,b` runs those arrangements (plain always, as the baseline);
 * `--shares=0.375,0.5` adds the defaults (qos) at those reservations.
 */
function arg(name: string): string[] | undefined {
  const found = Deno.args.find((a) => a.startsWith(`--${name}=`));
  return found?.slice(name.length + 3).split(",").filter((v) => v !== "");
}
const only = arg("only");
const wanted = (name: string) => only === undefined || only.includes(name);
const extraShares = (arg("shares") ?? []).map(Number);
for (const share of extraShares) {
  if (!(share > 0 && share < 1)) {
    throw new RangeError(`--shares: each must be in (0, 1), got ${share}`);
  }
}

const results = [];
const defaults = setGemmQos({});
{
  setGemmQos({ ...defaults, maxPieceFlops: 0, borrow: false });
  const { victim, flood } = contexts({}, {});
  results.push(
    await measure(sched, {
      name: "plain",
      victim,
      flood,
      teardown: () => (victim.destroy(), flood.destroy()),
    }),
  );
}
if (wanted("static")) {
  const manager = new PartitionManager();
  manager.createPartition("v", "victim", new PartitionLimits().compute(0.25));
  manager.createPartition("f", "flood", new PartitionLimits().compute(0.75));
  const { victim, flood } = contexts({ partition: "v" }, { partition: "f" });
  results.push(
    await measure(sched, {
      name: "static",
      victim,
      flood,
      teardown: () => (victim.destroy(), flood.destroy(), manager.close()),
    }),
  );
}
const layoutMs: number[] = [];
for (
  const [name, q, share] of [
    ["split", { maxPieceFlops: 0, borrow: false }, 0.25],
    ["sliced", { maxPieceFlops: defaults.maxPieceFlops, borrow: false }, 0.25],
    ["borrow", { maxPieceFlops: 0, borrow: true }, 0.25],
    ["qos", { maxPieceFlops: defaults.maxPieceFlops, borrow: true }, 0.25],
    ...extraShares.map((share) => [`qos@${share}`, {}, share] as const),
  ] as const
) {
  if (!wanted(name.split("@")[0]!)) continue;
  setGemmQos({ ...defaults, ...q });
  const t = performance.now();
  const { victim, flood } = contexts({ compute: share ?? 0.25 }, {});
  layoutMs.push(performance.now() - t);
  results.push(
    await measure(sched, {
      name,
      victim,
      flood,
      teardown: () => (victim.destroy(), flood.destroy()),
    }),
  );
}
setGemmQos(defaults);

// Layout-change cost while the device is busy: a new set of SMs makes green
// contexts (waiting for the device to drain); a set seen before is reused.
const busyLayoutMs: Record<string, number> = {};
{
  const { victim, flood } = contexts({}, {});
  const f = new Flood(sched, flood);
  for (const label of ["new sets, flood queued", "same sets again, flood queued"]) {
    f.topUp();
    const t = performance.now();
    const r = createContext("reserving", {
      maxVram: 64 * MB,
      qos: QoSPolicy.BURSTABLE,
      compute: 0.125,
    });
    busyLayoutMs[label] = performance.now() - t;
    r.destroy();
    f.drain();
  }
  f.blas.destroy();
  victim.destroy();
  flood.destroy();
}

const base = results[0]!;
const report = results.map((r) => ({
  ...r,
  aloneP99Ratio: r.alone.p99 / base.alone.p99,
  aloneP50Ratio: r.alone.p50 / base.alone.p50,
  underP99Ratio: r.underFlood.p99 / base.alone.p99,
  floodIdleOfWhole: r.floodIdleRate / base.floodIdleRate,
  floodBusyOfWhole: r.floodBusyRate / base.floodIdleRate,
}));
const f1 = (v: number) => v.toFixed(1);
console.log(
  "arrangement  SMs  alone p50/p99 us   flood p50/p99 us   p99/alone(plain)  flood idle  flood busy",
);
for (const r of report) {
  console.log(
    `${r.name.padEnd(11)} ${String(r.victimSms).padStart(4)}  ${f1(r.alone.p50)}/${
      f1(r.alone.p99)
    } (${r.aloneP99Ratio.toFixed(2)}x)  ${f1(r.underFlood.p50)}/${f1(r.underFlood.p99)}  ${
      r.underP99Ratio.toFixed(2)
    }x  ${(100 * r.floodIdleOfWhole).toFixed(1)}% (${f1(r.floodIdleRate)}/s)  ${
      (100 * r.floodBusyOfWhole).toFixed(1)
    }% (${
      f1(r.floodBusyRate)
    }/s)  borrowed ${r.borrowedPieces}/${r.floodPieces}  host-timed alone ${f1(r.aloneHost.p50)}/${
      f1(r.aloneHost.p99)
    } flood ${f1(r.underFloodHost.p50)}/${f1(r.underFloodHost.p99)}`,
  );
}
console.log(`layout change (createContext with compute, ms): ${layoutMs.map(f1).join(", ")}`);
console.log(`layout change with the flood queued (ms): ${JSON.stringify(busyLayoutMs)}`);
const summary = { device: sched.device.name, arrangements: report, layoutMs, busyLayoutMs };
console.log(`json: ${JSON.stringify(summary)}`);
