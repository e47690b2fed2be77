/**
 * Compute isolation: how long a small latency-critical kernel takes, alone
 * and while other streams flood the device with long kernels.
 *
 * - plain streams: the victim at the greatest priority, the flood at the
 *   least, sharing all SMs (priorities only order the launch of new blocks,
 *   they never preempt running ones);
 * - partitions: the victim in a "latency" partition (compute 0.125), the
 *   flood in a "flood" partition (compute 0.75), each a green context;
 * - partition + outside flood: the flood on plain streams outside
 *   partitions, which the manager confines to the SMs no partition reserved.
 *
 * The victim is `gs_spin_ns` with one block per SM of the device, 100 us
 * each; the flood is two streams, each kept three kernels deep, of
 * 32 blocks per SM (every block slot of every SM), 2 ms each. The victim's
 * time is GPU time between timing events recorded around it on its stream,
 * so it includes waiting for SMs but not the host's launch or wake-up.
 * The flood side's throughput (kernels completed per second, no victim) is
 * counted on the whole GPU and in its partition, to compare with its SM share.
 *
 * Run: `deno task bench:partition` (CUDA when a device is usable;
 * GPUSCHED_BACKEND=host|cuda to force one; host figures mean nothing).
 * The last line repeats every figure as JSON.
 */
import { type GpuEvent, PartitionLimits, PartitionManager, type Stream } from "../mod.ts";
import { localLibraryPath } from "../src/native/loader.ts";
import { benchScheduler } from "./_backend.ts";

const VICTIM_NS = 100_000n;
const FLOOD_NS = 2_000_000n;
const FLOOD_DEPTH = 3;
const FLOOD_STREAMS = 2;
const WARMUP = 20;
const SAMPLES = 400;
// Long enough that counting whole kernels (about 2 ms each) errs by under 1%.
const THROUGHPUT_MS = 1000;

const sched = benchScheduler();
const kernels = Deno.dlopen(
  localLibraryPath(sched.backend === "cuda" ? "libgskernels.so" : "libgskernels_host.so"),
  { gs_spin_ns: { parameters: ["pointer", "u64", "i32"], result: "i32" } } as const,
).symbols;
const victimBlocks = sched.device.smCount;
const floodBlocks = 32 * sched.device.smCount;
const { greatest, least } = sched.device.priorityRange;

function launch(stream: Stream, ns: bigint, blocks: number): void {
  // stream.handle is read at each launch: it changes when the SM layout does.
  const status = kernels.gs_spin_ns(stream.handle, ns, blocks);
  if (status !== 0) throw new Error(`gs_spin_ns failed with status ${status}`);
}

interface Summary {
  p50: number;
  p99: number;
  mean: number;
  max: number;
}

function summarize(us: number[]): Summary {
  const sorted = [...us].sort((a, b) => a - b);
  const rank = (p: number) => sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
  const mean = sorted.reduce((a, b) => a + b, 0) / sorted.length;
  return { p50: rank(50), p99: rank(99), mean, max: sorted[sorted.length - 1]! };
}

/** Victim kernel times in microseconds, one at a time. */
async function measure(victim: Stream): Promise<Summary> {
  const start = sched.createEvent({ timing: true });
  const end = sched.createEvent({ timing: true });
  const us: number[] = [];
  for (let i = 0; i < WARMUP + SAMPLES; i++) {
    start.record(victim);
    launch(victim, VICTIM_NS, victimBlocks);
    end.record(victim);
    await end.synchronize();
    if (i >= WARMUP) us.push(start.elapsedMs(end)! * 1000);
  }
  start.destroy();
  end.destroy();
  return summarize(us);
}

/** Keeps every stream FLOOD_DEPTH kernels deep until stop() resolves. */
function flood(streams: Stream[]): { stop(): Promise<void>; completed(): number } {
  let running = true;
  let completed = 0;
  const loops = streams.map(async (stream) => {
    const ring: GpuEvent[] = [];
    for (let i = 0; i < FLOOD_DEPTH; i++) {
      launch(stream, FLOOD_NS, floodBlocks);
      ring.push(sched.createEvent().record(stream));
    }
    for (let i = 0; running; i = (i + 1) % FLOOD_DEPTH) {
      await ring[i]!.synchronize();
      completed++;
      if (!running) break;
      launch(stream, FLOOD_NS, floodBlocks);
      ring[i]!.record(stream);
    }
    await stream.synchronize();
    for (const ev of ring) ev.destroy();
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
    },
    completed: () => completed,
  };
}

/**
 * Flood kernels completed per second with no victim running, counted over
 * THROUGHPUT_MS once the flood has filled the device: the flood side's
 * throughput, to compare a partition's with its SM share of the whole GPU.
 */
async function floodThroughput(streams: Stream[]): Promise<number> {
  const f = flood(streams);
  await new Promise((r) => setTimeout(r, 50));
  const c0 = f.completed(), t0 = performance.now();
  await new Promise((r) => setTimeout(r, THROUGHPUT_MS));
  const c1 = f.completed(), t1 = performance.now();
  await f.stop();
  return (c1 - c0) / ((t1 - t0) / 1000);
}

interface Scenario {
  alone: Summary;
  underFlood: Summary;
  p99Ratio: number;
}

async function scenario(victim: Stream, floodStreams: Stream[]): Promise<Scenario> {
  const alone = await measure(victim);
  const f = flood(floodStreams);
  await new Promise((r) => setTimeout(r, 20)); // let the flood fill the device
  const underFlood = await measure(victim);
  await f.stop();
  return { alone, underFlood, p99Ratio: underFlood.p99 / alone.p99 };
}

function floodStreams(make: () => Stream): Stream[] {
  return Array.from({ length: FLOOD_STREAMS }, make);
}

// 1. Plain streams, priorities only.
const plainVictim = sched.createStream({ priority: greatest });
const plainFloods = floodStreams(() => sched.createStream({ priority: least }));
const plain = await scenario(plainVictim, plainFloods);
const wholeGpuKps = await floodThroughput(plainFloods);
for (const s of [plainVictim, ...plainFloods]) s.destroy();

/** Milliseconds fn takes on the host. */
function timed(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

// 2. Victim and flood in partitions of their own.
const manager = new PartitionManager();
const layoutMs = [
  timed(() => manager.createPartition("latency", "Latency", new PartitionLimits().compute(0.125))),
  timed(() => manager.createPartition("flood", "Flood", new PartitionLimits().compute(0.75))),
];
const layout = {
  latency: manager.getPartition("latency")!.smCount,
  flood: manager.getPartition("flood")!.smCount,
  shared: manager.sharedSmCount,
  enforced: manager.enforced,
};
const victim = manager.createStream("latency", { priority: greatest });
const partitionFloods = floodStreams(() => manager.createStream("flood", { priority: least }));
const partitions = await scenario(victim, partitionFloods);
const partitionKps = await floodThroughput(partitionFloods);
for (const s of partitionFloods) s.destroy();

// 3. Victim in its partition, flood outside partitions (on the shared SMs).
// Deleting "flood" rebuilds the layout: the victim moves to a new green context.
manager.deletePartition("flood");
const sharedSms = manager.sharedSmCount;
const outsideFloods = floodStreams(() => sched.createStream({ priority: least }));
const outside = await scenario(victim, outsideFloods);
// A layout change while the device is flooded: does making green contexts wait for the flood?
const busy = flood(outsideFloods);
await new Promise((r) => setTimeout(r, 20));
const busyLayoutMs = timed(() => {
  manager.createPartition("extra", "Extra", new PartitionLimits().compute(0.125));
  manager.deletePartition("extra");
});
await busy.stop();
for (const s of [victim, ...outsideFloods]) s.destroy();
manager.close();

function row(name: string, r: Scenario): string {
  const f = (x: number) => x.toFixed(1).padStart(9);
  return `| ${name.padEnd(38)} | ${f(r.alone.p50)} | ${f(r.alone.p99)} | ${f(r.underFlood.p50)} | ${
    f(r.underFlood.p99)
  } | ${r.p99Ratio.toFixed(2).padStart(8)}x |`;
}

const victimText = `${victimBlocks} blocks x ${Number(VICTIM_NS) / 1000} us`;
const floodText = `${FLOOD_STREAMS} streams x ${FLOOD_DEPTH} deep, ${floodBlocks} blocks x ${
  Number(FLOOD_NS) / 1e6
} ms`;
console.log(`victim: ${victimText}; flood: ${floodText}; times in us, ${SAMPLES} samples each`);
console.log(
  `layout: latency ${layout.latency} SMs, flood ${layout.flood} SMs, shared ${layout.shared} SMs ` +
    `(${sharedSms} once "flood" is deleted); enforced: ${layout.enforced}`,
);
console.log(
  `layout changes (host time): ${layoutMs.map((ms) => ms.toFixed(2)).join(" ms, ")} ms idle; ` +
    `create + delete under the flood ${busyLayoutMs.toFixed(2)} ms`,
);
console.log(
  "| setup                                  | alone p50 |   p99     | flood p50 |   p99     | p99 ratio |",
);
const share = layout.flood / sched.device.smCount;
const throughput = {
  wholeGpuKps,
  partitionKps,
  smShare: share,
  ofShare: share > 0 ? partitionKps / (wholeGpuKps * share) : 0,
};
console.log(
  `flood throughput (no victim): whole GPU ${wholeGpuKps.toFixed(1)} kernels/s, ` +
    `its partition (${layout.flood} SMs, share ${share.toFixed(3)}) ${partitionKps.toFixed(1)} ` +
    `kernels/s = ${(100 * throughput.ofShare).toFixed(1)}% of what the share predicts`,
);
console.log(row(`plain streams, victim at priority ${greatest}`, plain));
console.log(row("partitions: victim's, flood's", partitions));
console.log(row("partition: victim's, flood outside", outside));
console.log(`json: ${
  JSON.stringify({
    date: new Date().toISOString(),
    backend: sched.backend,
    device: sched.device.name,
    smCount: sched.device.smCount,
    victim: victimText,
    flood: floodText,
    layout,
    sharedSmsWithoutFloodPartition: sharedSms,
    layoutMs,
    busyLayoutMs,
    plain,
    partitions,
    partitionOutsideFlood: outside,
    floodThroughput: throughput,
  })
}`);
