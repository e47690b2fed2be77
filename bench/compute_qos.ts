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
 * - gate: the flood through `gemmAsync` (the launch gate): one piece of about
 *   300 µs (sized from measured durations) in flight while the victim is
 *   active, three while it is idle, each piece borrowing when it is idle;
 * - yield: through the gate, no piece starts while the victim has work queued
 *   (save one held 1 ms), pieces of about 100 µs one at a time on the shared
 *   SMs. The victim waits without blocking in these two rows, so that the
 *   gate can start pieces meanwhile.
 *
 * For each: victim step latency (CUDA events around the 8 GEMMs, the
 * launches queued behind a 300 us one-block spin so that host launch time
 * is not counted; `aloneHost`/`underFloodHost` without that gate) alone and
 * under the flood (p50/p99), flood throughput (GEMMs/s) with the victim
 * idle and with the victim stepping back to back. Ratios are against the
 * plain arrangement's victim alone and flood alone (the whole GPU); the
 * ungated ratio compares the steps timed without the spin in front.
 *
 * Run: `deno run --allow-ffi --allow-env=GPUSCHED_LIB,GPUSCHED_BACKEND,GPUSCHED_CUBLAS bench/compute_qos.ts`
 * (CUDA only; prints a table and a `json:` line for bench/gpu.ts). `--only=static,qos` runs
 * some arrangements (plain always runs, as the baseline); `--shares=0.375,0.5` adds the defaults
 * at larger reservations; `--sweep=16,64` adds static partitions with the victim on that many SMs
 * (the flood on the other groups); `--probe` only launches one GEMM of each kind in each place,
 * separated by short spin kernels, for `ncu`. An arrangement that fails is reported and skipped.
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
  type PoolBlock,
  QoSPolicy,
  type Scheduler,
} from "../mod.ts";
import { Cublas, type GemmQos, setGemmQos } from "../src/cublas/mod.ts";
import { localLibraryPath } from "../src/native/loader.ts";
import { parseArgs } from "node:util";
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
  /** The flood goes through the launch gate (`gemmAsync`), and the victim waits without blocking. */
  viaGate?: boolean;
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

  /** Like `finish`, without blocking the event loop (so the launch gate can work meanwhile). */
  async finishAsync(): Promise<number> {
    await this.#end.synchronize();
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
  readonly #viaGate: boolean;
  #queued: { ev?: GpuEvent; submitted: Promise<void> }[] = [];
  done = 0;

  /** `viaGate`: GEMMs go through `gemmAsync` (the launch gate) instead of `gemm`. */
  constructor(sched: Scheduler, ctx: ExecutionContext, viaGate = false) {
    this.#sched = sched;
    this.ctx = ctx;
    this.blas = Cublas.for(ctx);
    this.#viaGate = viaGate;
    this.#a = ctx.alloc(F * F * BF16);
    this.#b = ctx.alloc(F * F * BF16);
    this.#c = ctx.alloc(F * F * BF16);
  }

  /** Keeps `FLOOD_QUEUE` GEMMs queued (submitted to the gate, when via the gate); counts the ones completed. */
  topUp(): void {
    this.#queued = this.#queued.filter((q) => {
      if (q.ev === undefined || !q.ev.query()) return true;
      q.ev.destroy();
      this.done++;
      return false;
    });
    while (this.#queued.length < FLOOD_QUEUE) {
      const gemm = { m: F, n: F, k: F, a: this.#a, b: this.#b, c: this.#c, type: "bf16" as const };
      if (!this.#viaGate) {
        this.blas.gemm(gemm);
        const ev = this.#sched.createEvent().record(this.ctx.stream);
        this.#queued.push({ ev, submitted: Promise.resolve() });
        continue;
      }
      const entry: { ev?: GpuEvent; submitted: Promise<void> } = { submitted: Promise.resolve() };
      entry.submitted = this.blas.gemmAsync(gemm).then(() => {
        entry.ev = this.#sched.createEvent().record(this.ctx.stream);
      });
      this.#queued.push(entry);
    }
  }

  async drain(): Promise<void> {
    for (const q of this.#queued) {
      await q.submitted;
      q.ev!.synchronizeSync();
      q.ev!.destroy();
    }
    this.#queued = [];
  }
}

let spinKernel: { gs_spin_ns(stream: Deno.PointerValue, ns: bigint, blocks: number): number };
function spin(stream: Deno.PointerValue, ns: bigint): void {
  spinKernel ??= Deno.dlopen(
    localLibraryPath("libgskernels.so"),
    {
      gs_spin_ns: { parameters: ["pointer", "u64", "i32"], result: "i32" },
    } as const,
  ).symbols;
  if (spinKernel.gs_spin_ns(stream, ns, 1) !== 0) throw new Error("gs_spin_ns failed");
}
function gate(stream: Deno.PointerValue): void {
  spin(stream, GATE_NS);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function measure(sched: Scheduler, arr: Arrangement) {
  let victim: Victim | undefined;
  let flood: Flood | undefined;
  try {
    victim = new Victim(sched, arr.victim);
    flood = new Flood(sched, arr.flood, arr.viaGate);
    return await measureWith(arr, victim, flood);
  } catch (error) {
    // One arrangement failing (a launch refused, say) should not hide the others' figures.
    console.log(`arrangement ${arr.name} failed: ${(error as Error)?.stack ?? error}`);
    failed.push({ name: arr.name, error: String(error) });
    return undefined;
  } finally {
    try {
      victim?.blas.destroy();
      flood?.blas.destroy();
      arr.teardown();
    } catch (error) {
      console.log(`arrangement ${arr.name}: teardown failed too: ${error}`);
    }
  }
}
const failed: { name: string; error: string }[] = [];

async function measureWith(arr: Arrangement, victim: Victim, flood: Flood) {
  // Through the gate the victim must wait without blocking the event loop,
  // or held pieces could start only between steps.
  const finish = arr.viaGate ? () => victim.finishAsync() : () => Promise.resolve(victim.finish());
  // Warm: cuBLAS's heuristics, and the clocks (a flood first, then the victim).
  for (let i = 0; i < 4; i++) {
    flood.topUp();
    await flood.drain();
  }
  for (let i = 0; i < WARMUP; i++) victim.step();

  const alone = stats(Array.from({ length: STEPS }, () => victim.step(true)));
  const aloneHost = stats(Array.from({ length: STEPS }, () => victim.step()));

  // Flood with the victim idle: GEMMs/s over FLOOD_SECONDS.
  flood.topUp();
  await flood.drain();
  flood.done = 0;
  let t0 = performance.now();
  while (performance.now() - t0 < FLOOD_SECONDS * 1000) {
    flood.topUp();
    await sleep(0.5);
  }
  await flood.drain();
  const idleRate = (flood.done + FLOOD_QUEUE) / ((performance.now() - t0) / 1000);

  // Victim latency under the flood (gated steps).
  for (let i = 0; i < WARMUP; i++) {
    flood.topUp();
    victim.launch();
    await finish();
  }
  const under: number[] = [];
  while (under.length < STEPS) {
    flood.topUp();
    victim.launch(true);
    flood.topUp();
    under.push(await finish());
  }
  // Flood throughput with the victim stepping back to back (not gated).
  flood.done = 0;
  const underHost: number[] = [];
  t0 = performance.now();
  while (performance.now() - t0 < FLOOD_SECONDS * 1000) {
    flood.topUp();
    victim.launch();
    flood.topUp();
    underHost.push(await finish());
  }
  const busyElapsed = (performance.now() - t0) / 1000;
  const busyDone = flood.done;
  await flood.drain();
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
function arg(name: "only" | "shares" | "sweep"): string[] | undefined {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      only: { type: "string" },
      shares: { type: "string" },
      sweep: { type: "string" },
      probe: { type: "boolean" },
    },
    strict: false, // --backend is benchScheduler's
    allowPositionals: true,
  });
  const found = values[name];
  if (found === undefined) return undefined;
  if (typeof found !== "string") throw new RangeError(`--${name} needs a value: --${name}=a,b`);
  return found.split(",").filter((v) => v !== "");
}
const only = arg("only");
const wanted = (name: string) => only === undefined || only.includes(name);
const extraShares = (arg("shares") ?? []).map(Number);
for (const share of extraShares) {
  if (!(share > 0 && share < 1)) {
    throw new RangeError(`--shares: each must be in (0, 1), got ${share}`);
  }
}

const defaults = setGemmQos({});
if (Deno.args.includes("--probe")) {
  await probe();
  Deno.exit(0);
}

/**
 * `--probe`: one GEMM of each kind in each place, for `ncu` (which
 * serializes kernels: nothing runs concurrently here). A one-block 10 µs
 * spin kernel separates the cases, in the order printed.
 */
async function probe() {
  const cases: string[] = [];
  const mark = (label: string, ctx: ExecutionContext) => {
    cases.push(label);
    spin(ctx.stream.handle, 10_000n);
  };
  const victimGemm = (ctx: ExecutionContext) => {
    const x = ctx.alloc(TOKENS * D * BF16), y = ctx.alloc(TOKENS * D * BF16);
    const w = ctx.alloc(D * D * BF16);
    Cublas.for(ctx).gemm({ m: TOKENS, n: D, k: D, a: x, b: w, c: y, type: "bf16" });
  };
  const floodGemm = (ctx: ExecutionContext, blocks: { a?: PoolBlock } = {}) => {
    blocks.a ??= ctx.alloc(F * F * BF16);
    const c = ctx.alloc(F * F * BF16);
    Cublas.for(ctx).gemm({ m: F, n: F, k: F, a: blocks.a, b: blocks.a, c, type: "bf16" });
    return blocks;
  };
  const run = async (label: string, ctx: ExecutionContext, fn: () => void, q = {}) => {
    setGemmQos({ ...defaults, maxPieceFlops: 0, borrow: false, ...q });
    mark(label, ctx);
    fn();
    await ctx.stream.synchronize();
    setGemmQos(defaults);
  };
  {
    const { victim, flood } = contexts({}, {});
    await run("victim GEMM, whole GPU", victim, () => victimGemm(victim));
    await run("flood GEMM, whole GPU", flood, () => floodGemm(flood));
    Cublas.for(victim).destroy();
    Cublas.for(flood).destroy();
    victim.destroy();
    flood.destroy();
  }
  {
    const manager = new PartitionManager();
    manager.createPartition("v", "victim", new PartitionLimits().compute(0.25));
    manager.createPartition("f", "flood", new PartitionLimits().compute(0.75));
    const { victim, flood } = contexts({ partition: "v" }, { partition: "f" });
    const sms = `${manager.getPartition("v")!.smCount}/${manager.getPartition("f")!.smCount}`;
    await run(`victim GEMM, static partition (${sms})`, victim, () => victimGemm(victim));
    await run(`flood GEMM, static partition (${sms})`, flood, () => floodGemm(flood));
    Cublas.for(victim).destroy();
    Cublas.for(flood).destroy();
    victim.destroy();
    flood.destroy();
    manager.close();
  }
  {
    const { victim, flood } = contexts({ compute: 0.25 }, {});
    await run(`flood GEMM, shared SMs of a 0.25 reservation`, flood, () => floodGemm(flood));
    await run(`flood GEMM in 2048-column pieces, shared SMs`, flood, () => floodGemm(flood), {
      maxPieceFlops: defaults.maxPieceFlops,
    });
    await run(`victim GEMM, reservation (its 32 + shared)`, victim, () => victimGemm(victim));
    Cublas.for(victim).destroy();
    Cublas.for(flood).destroy();
    victim.destroy();
    flood.destroy();
  }
  console.log(`probe cases, in order, each after one 10 us spin kernel:`);
  cases.forEach((c, i) => console.log(`  ${i + 1}. ${c}`));
}

const results = [];
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
/** Static partitions: the victim on `victimSms` SMs (whole groups of 8), the flood on the other groups. */
async function staticRow(name: string, victimSms: number, q: Partial<GemmQos> = {}) {
  const groups = sched.device.smGroups;
  const g = victimSms / sched.device.smGranularity;
  if (!Number.isInteger(g) || g < 1 || g >= groups) {
    throw new RangeError(
      `--sweep: SM counts must be whole groups below the device's, got ${victimSms}`,
    );
  }
  setGemmQos({ ...defaults, maxPieceFlops: 0, borrow: false, ...q });
  const manager = new PartitionManager();
  manager.createPartition("v", "victim", new PartitionLimits().compute(g / groups));
  manager.createPartition("f", "flood", new PartitionLimits().compute((groups - g) / groups));
  const { victim, flood } = contexts({ partition: "v" }, { partition: "f" });
  const given = manager.getPartition("v")!.smCount;
  const r = await measure(sched, {
    name,
    victim,
    flood,
    teardown: () => (victim.destroy(), flood.destroy(), manager.close()),
  });
  setGemmQos(defaults);
  return r && { ...r, victimSms: given };
}
if (wanted("static")) results.push(await staticRow("static", 32));
// The victim on N SMs of its own, the flood on the rest: what the SM count alone buys.
for (const sms of (arg("sweep") ?? []).map(Number)) {
  results.push(await staticRow(`static@${sms}`, sms));
}
const layoutMs: number[] = [];
const rows: [string, Partial<GemmQos>, number, boolean][] = [
  ["split", { maxPieceFlops: 0, borrow: false }, 0.25, false],
  ["sliced", { maxPieceFlops: defaults.maxPieceFlops, borrow: false }, 0.25, false],
  ["borrow", { maxPieceFlops: 0, borrow: true }, 0.25, false],
  ["qos", { maxPieceFlops: defaults.maxPieceFlops, borrow: true }, 0.25, false],
  // Through the launch gate: one piece (about 300 µs, measured) in flight while
  // the victim is active, three while idle, each piece borrowing when it is idle.
  ["gate", { pieceUs: 300, activeInFlight: 1, idleInFlight: 3, borrow: true }, 0.25, true],
  // The gate yielding: no piece starts while the victim has work queued (idleMs 0),
  // save one after 1 ms held; one short piece (about 100 µs) at a time on the shared
  // SMs while it has none.
  [
    "yield",
    { pieceUs: 100, activeInFlight: 0, idleInFlight: 1, idleMs: 0, maxHoldMs: 1, borrow: false },
    0.25,
    true,
  ],
  ...extraShares.map((share) =>
    [`qos@${share}`, {}, share, false] as [string, Partial<GemmQos>, number, boolean]
  ),
];
for (const [name, q, share, viaGate] of rows) {
  if (!wanted(name.split("@")[0]!)) continue;
  setGemmQos({ ...defaults, ...q });
  const t = performance.now();
  const { victim, flood } = contexts({ compute: share }, {});
  layoutMs.push(performance.now() - t);
  results.push(
    await measure(sched, {
      name,
      victim,
      flood,
      viaGate,
      teardown: () => (victim.destroy(), flood.destroy()),
    }),
  );
}
setGemmQos(defaults);

// Layout-change cost while the device is busy: a new set of SMs makes green
// contexts (waiting for the device to drain); a set seen before is reused.
const busyLayoutMs: Record<string, number> = {};
try {
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
    await f.drain();
  }
  f.blas.destroy();
  victim.destroy();
  flood.destroy();
} catch (error) {
  console.log(`layout change with the flood queued: failed: ${error}`);
}

if (results[0] === undefined) {
  console.log(`json: ${JSON.stringify({ error: "the plain arrangement failed", failed })}`);
  Deno.exit(1);
}
const base = results[0];
const report = results.filter((r) => r !== undefined).map((r) => ({
  ...r,
  aloneP99Ratio: r.alone.p99 / base.alone.p99,
  aloneP50Ratio: r.alone.p50 / base.alone.p50,
  underP99Ratio: r.underFlood.p99 / base.alone.p99,
  // Without the 300 µs gate in front of each step: the victim's GEMMs start as they are launched,
  // so a policy cannot see the step coming before its GEMMs are queued.
  ungatedUnderP99Ratio: r.underFloodHost.p99 / base.aloneHost.p99,
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
    } flood ${f1(r.underFloodHost.p50)}/${f1(r.underFloodHost.p99)} (${
      r.ungatedUnderP99Ratio.toFixed(2)
    }x)`,
  );
}
console.log(`layout change (createContext with compute, ms): ${layoutMs.map(f1).join(", ")}`);
console.log(`layout change with the flood queued (ms): ${JSON.stringify(busyLayoutMs)}`);
const summary = {
  device: sched.device.name,
  arrangements: report,
  failed,
  layoutMs,
  busyLayoutMs,
};
console.log(`json: ${JSON.stringify(summary)}`);
