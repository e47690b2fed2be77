/**
 * The GPU performance proof in one command. `deno task bench:gpu` runs every
 * measurement, each in a process of its own (one process holds one
 * scheduler), writing its output under `out/bench/`; then this script reads
 * those files, collects the figures into `out/bench/results.json` and prints
 * one table of results against the targets.
 *
 * - isolation: bench/partition_latency.ts (its `json:` line), against the
 *   PyTorch stream-priority peer bench/peers/isolation_peer.py;
 * - eviction: bench/eviction_bandwidth.ts (its `json:` line);
 * - allocation, waiting, contexts, QoS: the `deno bench` suites, through
 *   `deno bench --json`, with bench/peers/alloc_peers.py (PyTorch's caching
 *   allocator and CuPy's memory pool) for allocation;
 * - scale: bench/scale_bench.ts (`deno bench --json`).
 *
 * The task, not this script, starts the measurements: Deno lets a script
 * spawn a process with LD_LIBRARY_PATH set (GPU machines set it for the
 * driver) only under an unrestricted --allow-run, and the measurements need
 * it, so this script needs only --allow-read=out --allow-write=out.
 *
 * Run: `deno task bench:gpu` (builds libsched first). Backend auto, so CUDA
 * where a device is usable; GPUSCHED_BACKEND=host|cuda is passed through.
 * A peer that cannot run (no python3, no PyTorch or CuPy, no GPU) is
 * reported as not run with its reason; a gpusched measurement that left no
 * figures makes this script exit with status 1 after writing what it has.
 *
 * @module
 */

const OUT_DIR = "out/bench";

/** What one measurement wrote. */
interface StepRun {
  ok: boolean;
  file: string;
  stdout: string;
  error?: string;
}

/** One `deno bench --json` result, as Deno 2.9 writes it (times in ns). */
interface BenchResult {
  name: string;
  group: string | null;
  avg: number;
  p75: number;
  p99: number;
  min: number;
  n: number;
}

/** A row of the printed table. */
interface Row {
  area: string;
  measure: string;
  gpusched: string;
  peer: string;
  target: string;
  met: "yes" | "no" | "n/a" | "not run";
}

/** Reads what the task's step wrote to out/bench/<file>; a missing file is a failed step. */
async function readStep(file: string): Promise<StepRun> {
  try {
    const stdout = await Deno.readTextFile(`${OUT_DIR}/${file}`);
    return { ok: stdout.trim().length > 0, file, stdout };
  } catch (e) {
    return { ok: false, file, stdout: "", error: String(e) };
  }
}

/** The object on the last `json: ` line of a step's output, or an error naming why not. */
function jsonLine(step: StepRun): Record<string, unknown> {
  const line = step.stdout.split("\n").reverse().find((l) => l.startsWith("json: "));
  if (!line) return { error: `no json line in ${OUT_DIR}/${step.file}` };
  try {
    return JSON.parse(line.slice("json: ".length));
  } catch (e) {
    return { error: `bad json line in ${OUT_DIR}/${step.file}: ${e}` };
  }
}

/**
 * The results of `deno bench --json`. Benchmarks log to stdout too (the
 * backend line), so the report is the text from the first line that is a
 * lone "{" (nested objects are indented).
 */
function benchResults(step: StepRun): BenchResult[] {
  const start = step.stdout.search(/^\{$/m);
  if (start < 0) return [];
  // A step killed halfway leaves a cut-off report: no figures, not a crash.
  let report;
  try {
    report = JSON.parse(step.stdout.slice(start)) as {
      benches: {
        name: string;
        group: string | null;
        results: { ok?: { avg: number; p75: number; p99: number; min: number; n: number } }[];
      }[];
    };
  } catch {
    return [];
  }
  return report.benches.flatMap((b) => {
    const ok = b.results[0]?.ok;
    return ok ? [{ name: b.name, group: b.group, ...ok }] : [];
  });
}

/** Formats nanoseconds for people. */
function ns(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return "-";
  if (v < 1_000) return `${v.toFixed(1)} ns`;
  if (v < 1_000_000) return `${(v / 1_000).toFixed(2)} µs`;
  return `${(v / 1_000_000).toFixed(2)} ms`;
}

const us = (v: number | undefined) => (v === undefined ? "-" : `${v.toFixed(1)} µs`);
const met = (
  ok: boolean | undefined,
): Row["met"] => (ok === undefined ? "not run" : ok ? "yes" : "no");
const num = (v: unknown): number | undefined => (typeof v === "number" ? v : undefined);
// The steps' JSON is read loosely: a missing field shows up as "-" or "not run", not a crash.
// deno-lint-ignore no-explicit-any
type Json = any;

// --- read what every step wrote ---------------------------------------------

const finished = new Date().toISOString();
const isolationRun = await readStep("isolation.txt");
const isolation: Json = jsonLine(isolationRun);
const evictionRun = await readStep("eviction.txt");
const eviction: Json = jsonLine(evictionRun);
const suitesRun = await readStep("suites.txt");
const suites = benchResults(suitesRun);
const scaleRun = await readStep("scale.txt");
const scale = benchResults(scaleRun);
const isolationPeer: Json = jsonLine(await readStep("isolation_peer.txt"));
const allocPeers: Json = jsonLine(await readStep("alloc_peers.txt"));

// The device the gpusched figures come from: the bench suites print it first.
const deviceLine = suitesRun.stdout.match(/^gpusched bench: (.*)$/m)?.[1] ?? "unknown";
const bench = (name: string) => suites.find((b) => b.name === name);

// --- the table -------------------------------------------------------------

const rows: Row[] = [];

// Isolation.
const part = isolation.partitions,
  plain = isolation.plain,
  outside = isolation.partitionOutsideFlood;
const torchFlood = num(isolationPeer.underFlood?.p99);
if (part) {
  rows.push({
    area: "isolation",
    measure: "urgent kernel p99 under flood / alone, partitioned",
    gpusched: `${part.p99Ratio.toFixed(2)}x (${us(part.underFlood.p99)} / ${us(part.alone.p99)})`,
    peer: "",
    target: "≤ 1.10x",
    met: met(part.p99Ratio <= 1.10),
  });
  rows.push({
    area: "isolation",
    measure: "same, flood on plain streams outside partitions",
    gpusched: `${outside.p99Ratio.toFixed(2)}x (${us(outside.underFlood.p99)})`,
    peer: "",
    target: "≤ 1.10x",
    met: met(outside.p99Ratio <= 1.10),
  });
  rows.push({
    area: "isolation",
    measure: "flood p99: raw streams (priorities) / partitioned",
    gpusched: `${(plain.underFlood.p99 / part.underFlood.p99).toFixed(1)}x better`,
    peer: `raw streams ${us(plain.underFlood.p99)} (${plain.p99Ratio.toFixed(1)}x alone)`,
    target: "≥ 5x",
    met: met(plain.underFlood.p99 / part.underFlood.p99 >= 5),
  });
  rows.push({
    area: "isolation",
    measure: "flood p99: PyTorch stream priority / partitioned",
    gpusched: torchFlood === undefined
      ? "-"
      : `${(torchFlood / part.underFlood.p99).toFixed(1)}x better`,
    peer: torchFlood === undefined
      ? `not run: ${isolationPeer.error}`
      : `PyTorch ${us(torchFlood)} (${isolationPeer.p99Ratio.toFixed(1)}x alone; ${
        us(isolationPeer.alone.p99)
      } alone)`,
    target: "≥ 5x",
    met: met(torchFlood === undefined ? undefined : torchFlood / part.underFlood.p99 >= 5),
  });
  const t = isolation.floodThroughput;
  if (t) {
    rows.push({
      area: "isolation",
      measure: "flood side (BEST_EFFORT) throughput in its partition / its SM share",
      gpusched: `${(100 * t.ofShare).toFixed(1)}% (${t.partitionKps.toFixed(1)} vs ${
        t.wholeGpuKps.toFixed(1)
      } kernels/s x ${t.smShare.toFixed(3)})`,
      peer: "",
      target: "≥ 90%",
      met: met(t.ofShare >= 0.9),
    });
  }
} else {
  rows.push({
    area: "isolation",
    measure: "partition_latency.ts",
    gpusched: String(isolation.error),
    peer: "",
    target: "",
    met: "not run",
  });
}

// Allocation: gpusched's p75 bounds its median from above (deno bench gives no median).
for (const size of ["4 KiB", "1 MiB", "64 MiB"]) {
  const mine = bench(`MemoryPool allocate + free, cached ${size}`);
  const raw = bench(`raw libsched malloc_async + free_async, ${size}`);
  const peers: [string, number][] = [];
  for (const name of ["pytorch", "cupy"]) {
    const v = num(allocPeers[name]?.[size]?.median_ns);
    if (v !== undefined) peers.push([name === "pytorch" ? "PyTorch" : "CuPy", v]);
  }
  peers.sort((a, b) => a[1] - b[1]);
  const fastest = peers[0];
  rows.push({
    area: "allocation",
    measure: `pool alloc + free, cached ${size}: avg (p75)`,
    gpusched: mine ? `${ns(mine.avg)} (${ns(mine.p75)})` : "-",
    peer: `raw libsched malloc_async + free_async ${ns(raw?.avg)}; ` +
      (peers.length
        ? peers.map(([n, v]) => `${n} ${ns(v)}`).join(", ") + " median"
        : `peers not run: ${allocPeers.pytorch?.error ?? allocPeers.error}`),
    target: "median ≤ 150 ns",
    met: met(mine ? mine.p75 <= 150 : undefined),
  });
  rows.push({
    area: "allocation",
    measure: `pool alloc + free ${size}: fastest peer median / gpusched p75`,
    gpusched: mine && fastest
      ? `${(fastest[1] / mine.p75).toFixed(1)}x faster than ${fastest[0]}`
      : "-",
    peer: fastest ? `${fastest[0]} ${ns(fastest[1])}` : "not run",
    target: "≥ 5x",
    met: met(mine && fastest ? fastest[1] / mine.p75 >= 5 : undefined),
  });
}
const ctxAlloc = bench("ctx.alloc + free, cached 64 KiB");
rows.push({
  area: "allocation",
  measure: "ctx.alloc + free through a context, cached 64 KiB: avg (p75)",
  gpusched: ctxAlloc ? `${ns(ctxAlloc.avg)} (${ns(ctxAlloc.p75)})` : "-",
  peer: "",
  target: "",
  met: "n/a",
});

// Waiting: the await path over the blocking floor, after the same short device op.
const awaited = bench("await stream.synchronize() after a 4-byte memset (notifier path)");
const blocking = bench("stream.synchronizeSync() after a 4-byte memset (blocking)");
const idle = bench("await stream.synchronize(), idle stream");
rows.push({
  area: "waiting",
  measure: "await after a 4-byte memset, minus blocking synchronize (avg)",
  gpusched: awaited && blocking
    ? `${awaited.avg >= blocking.avg ? "+" : "-"}${ns(Math.abs(awaited.avg - blocking.avg))} (${
      ns(awaited.avg)
    } vs ${ns(blocking.avg)})`
    : "-",
  peer: "",
  target: "≤ +20 µs",
  met: met(awaited && blocking ? awaited.avg - blocking.avg <= 20_000 : undefined),
});
rows.push({
  area: "waiting",
  measure: "await stream.synchronize(), idle stream: avg (p75)",
  gpusched: idle ? `${ns(idle.avg)} (${ns(idle.p75)})` : "-",
  peer: "",
  target: "",
  met: "n/a",
});
const many = bench("10,000 concurrent await event.synchronize() on pending events");
rows.push({
  area: "waiting",
  measure: "10,000 concurrent awaits on pending events: avg",
  gpusched: ns(many?.avg),
  peer: "",
  target: "",
  met: "n/a",
});
const session = bench("sync session enter + exit (using contextSession(ctx))");
rows.push({
  area: "contexts",
  measure: "sync session enter + exit: avg (p75)",
  gpusched: session ? `${ns(session.avg)} (${ns(session.p75)})` : "-",
  peer: "",
  target: "≤ 300 ns",
  met: met(session ? session.p75 <= 300 : undefined),
});

// Eviction.
if (eviction.ms) {
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
  const gbps = (ms: number) => (eviction.bytes / (ms / 1000) / 1e9).toFixed(1);
  for (const [name, mine, base] of [["spill", "spill", "d2h"], ["restore", "restore", "h2d"]]) {
    const m = median(eviction.ms[mine!]), b = median(eviction.ms[base!]);
    rows.push({
      area: "eviction",
      measure: `${name} 1 GiB (16 x 64 MiB) vs pinned copy`,
      gpusched: `${(100 * b / m).toFixed(0)}% (${gbps(m)} GB/s)`,
      peer: `pinned copy ${gbps(b)} GB/s`,
      target: "≥ 80%",
      met: met(b / m >= 0.8 && eviction.intact),
    });
  }
} else {
  rows.push({
    area: "eviction",
    measure: "eviction_bandwidth.ts",
    gpusched: String(eviction.error),
    peer: "",
    target: "",
    met: "not run",
  });
}

// Scale: every row of scale_bench, by group; flat cost is the claim.
for (const b of scale.filter((b) => !b.name.startsWith("setup:"))) {
  rows.push({
    area: "scale",
    measure: `${b.name}: avg (p75)`,
    gpusched: `${ns(b.avg)} (${ns(b.p75)})`,
    peer: "",
    target: "flat",
    met: "n/a",
  });
}
const scaleBackend = scaleRun.stdout.match(/^gpusched bench: (.*)$/m)?.[1];

// Compute QoS with real work (cuBLAS): bench/compute_qos.ts and its PyTorch peer.
const qosRun: Json = jsonLine(await readStep("compute_qos.txt"));
const qosPeer: Json = jsonLine(await readStep("compute_qos_peer.txt"));
if (Array.isArray(qosRun.arrangements)) {
  const by = (name: string): Json => qosRun.arrangements.find((a: Json) => a.name === name);
  const plainQos = by("plain"), best = by("qos"), split = by("split"), fixed = by("static");
  const x = (v: number) => `${v.toFixed(2)}x`;
  const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
  const peerUnder = num(qosPeer.underFlood?.p99);
  rows.push({
    area: "compute QoS",
    measure: "GUARANTEED decode p99 under GEMM flood / alone (no reservation), compute 0.25",
    gpusched: `${x(best.underP99Ratio)} (${us(best.underFlood.p99)}); split only ${
      x(split.underP99Ratio)
    }; static ${x(fixed.underP99Ratio)}; plain ${x(plainQos.underP99Ratio)}`,
    peer: peerUnder === undefined
      ? `not run: ${qosPeer.error}`
      : `PyTorch priorities ${us(peerUnder)} (${qosPeer.p99Ratio.toFixed(1)}x alone)`,
    target: "≤ 1.30x",
    met: met(best.underP99Ratio <= 1.30),
  });
  rows.push({
    area: "compute QoS",
    measure: "GUARANTEED decode p99 alone, compute 0.25 / no reservation",
    gpusched: `${x(best.aloneP99Ratio)} (${us(best.alone.p99)} vs ${
      us(plainQos.alone.p99)
    }); static ${x(fixed.aloneP99Ratio)}`,
    peer: "",
    target: "≤ 1.10x",
    met: met(best.aloneP99Ratio <= 1.10),
  });
  rows.push({
    area: "compute QoS",
    measure: "BEST_EFFORT flood throughput, GUARANTEED idle / whole GPU",
    gpusched: `${pct(best.floodIdleOfWhole)}; split only ${pct(split.floodIdleOfWhole)}; static ${
      pct(fixed.floodIdleOfWhole)
    }`,
    peer: num(qosPeer.floodIdleRate) === undefined
      ? ""
      : `PyTorch ${qosPeer.floodIdleRate.toFixed(0)}/s (gpusched whole GPU ${
        plainQos.floodIdleRate.toFixed(0)
      }/s)`,
    target: "≥ 95%",
    met: met(best.floodIdleOfWhole >= 0.95),
  });
  rows.push({
    area: "compute QoS",
    measure: "BEST_EFFORT flood throughput, GUARANTEED decoding back to back / whole GPU",
    gpusched: `${pct(best.floodBusyOfWhole)}; split only ${pct(split.floodBusyOfWhole)}; static ${
      pct(fixed.floodBusyOfWhole)
    }`,
    peer: num(qosPeer.floodBusyRate) === undefined
      ? ""
      : `PyTorch ${qosPeer.floodBusyRate.toFixed(0)}/s`,
    target: "≥ 80%",
    met: met(best.floodBusyOfWhole >= 0.8),
  });
} else {
  rows.push({
    area: "compute QoS",
    measure: "compute_qos.ts",
    gpusched: String(qosRun.error),
    peer: "",
    target: "",
    met: "not run",
  });
}

// --- write and print ---------------------------------------------------------

const steps = { isolationRun, evictionRun, suitesRun, scaleRun };
const results = {
  finished,
  device: deviceLine,
  scaleDevice: scaleBackend ?? null,
  command: "deno task bench:gpu",
  rows,
  isolation,
  isolationPeer,
  eviction,
  benches: suites,
  scale,
  allocPeers,
  computeQos: qosRun,
  computeQosPeer: qosPeer,
  steps: Object.fromEntries(
    Object.entries(steps).map(([k, s]) => [k, { ok: s.ok, file: `${OUT_DIR}/${s.file}` }]),
  ),
};
await Deno.mkdir(OUT_DIR, { recursive: true });
await Deno.writeTextFile(`${OUT_DIR}/results.json`, JSON.stringify(results, null, 2) + "\n");

const cols = ["area", "measure", "gpusched", "peer / baseline", "target", "met"];
const cells = rows.map((r) => [r.area, r.measure, r.gpusched, r.peer, r.target, r.met]);
const widths = cols.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i]!.length)));
const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
console.log(`gpusched GPU benchmarks, ${finished}; ${deviceLine}`);
if (scaleBackend && scaleBackend !== deviceLine) console.log(`scale rows: ${scaleBackend}`);
console.log(line(cols));
console.log(line(widths.map((w) => "-".repeat(w))));
for (const r of cells) console.log(line(r));
console.log(`wrote ${OUT_DIR}/results.json`);

// A gpusched measurement failed when it left no figures (a peer may be missing).
const failed = [
  ...(isolation.error ? [isolationRun.file] : []),
  ...(eviction.error ? [evictionRun.file] : []),
  ...(suites.length ? [] : [suitesRun.file]),
  ...(scale.length ? [] : [scaleRun.file]),
];
if (failed.length) {
  console.error(`no figures in ${failed.map((f) => `${OUT_DIR}/${f}`).join(", ")}`);
  Deno.exit(1);
}
