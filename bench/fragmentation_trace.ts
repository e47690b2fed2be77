/**
 * Fragmentation on a mixed allocation trace, replayed on gpusched; the same
 * trace is replayed on PyTorch by bench/peers/fragmentation_peer.py.
 *
 * The trace (seeded, so every run and every replayer sees the same one):
 * model weights of 64-512 MiB loaded at the start, a third of them swapped
 * for other sizes halfway; KV caches of up to 16 concurrent sequences,
 * half paged (2 MiB blocks added as a sequence grows) and half contiguous
 * (regrown by 1.5x: allocate the larger buffer, then free the old one);
 * and short-lived activations of many sizes (4 KiB to 64 MiB, log-uniform)
 * each step, freed at the end of the step or the next one.
 *
 * Metric: peak device memory held / peak bytes live. For gpusched "held"
 * is the physical memory mapped under the pools (sched_vmm_usage) and,
 * separately, what the pool holds (live size classes plus its cache).
 *
 * Run: deno run --allow-ffi --allow-env=GPUSCHED_LIB,GPUSCHED_BACKEND --allow-write=out bench/fragmentation_trace.ts
 * It writes the trace to out/bench/frag_trace.json; the last line is `json: {...}`.
 */
import { createContext, type DeviceBuffer, GB, MB } from "../mod.ts";
import { vmmUsage } from "../src/native/vmm.ts";
import { benchScheduler } from "./_backend.ts";

/** [1, id, bytes] allocates; [0, id] frees. */
export type TraceOp = [1, number, number] | [0, number];

/** A deterministic mixed trace (see the module notes). */
export function generateTrace(seed = 7, steps = 1500): TraceOp[] {
  let s = seed >>> 0;
  const rand = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const between = (lo: number, hi: number) => Math.floor(lo + rand() * (hi - lo));
  const logUniform = (lo: number, hi: number) =>
    Math.max(256, Math.round(Math.exp(Math.log(lo) + rand() * (Math.log(hi) - Math.log(lo)))));
  const ops: TraceOp[] = [];
  let next = 1;
  const alloc = (bytes: number) => {
    ops.push([1, next, bytes]);
    return next++;
  };
  const free = (id: number) => ops.push([0, id]);

  let weights = Array.from({ length: 8 }, () => alloc(between(64, 512) * MB));
  interface Sequence {
    paged: boolean;
    blocks: number[];
    length: number;
    target: number;
    buffer?: { id: number; bytes: number };
  }
  const sequences: Sequence[] = [];
  let carried: number[] = [];
  for (let step = 0; step < steps; step++) {
    if (step === Math.floor(steps / 2)) {
      for (const id of weights.slice(0, 3)) free(id);
      weights = [
        ...weights.slice(3),
        ...Array.from({ length: 3 }, () => alloc(between(64, 512) * MB)),
      ];
    }
    if (sequences.length < 16 && rand() < 0.3) {
      sequences.push({ paged: rand() < 0.5, blocks: [], length: 0, target: between(8, 256) });
    }
    for (const seq of [...sequences]) {
      seq.length++;
      if (seq.paged) {
        if (seq.length % 4 === 1) seq.blocks.push(alloc(2 * MB));
      } else {
        const need = seq.length * 512 * 1024;
        if (!seq.buffer || seq.buffer.bytes < need) {
          const bytes = Math.max(need, Math.round((seq.buffer?.bytes ?? 0) * 1.5));
          const id = alloc(bytes);
          if (seq.buffer) free(seq.buffer.id);
          seq.buffer = { id, bytes };
        }
      }
      if (seq.length >= seq.target) {
        for (const id of seq.blocks) free(id);
        if (seq.buffer) free(seq.buffer.id);
        sequences.splice(sequences.indexOf(seq), 1);
      }
    }
    const now = Array.from({ length: between(3, 10) }, () => alloc(logUniform(4 * 1024, 64 * MB)));
    for (const id of carried) free(id);
    carried = [];
    for (const id of now) {
      if (rand() < 0.2) carried.push(id); // lives into the next step
      else free(id);
    }
  }
  for (const id of carried) free(id);
  for (const seq of sequences) {
    for (const id of seq.blocks) free(id);
    if (seq.buffer) free(seq.buffer.id);
  }
  for (const id of weights) free(id);
  return ops;
}

if (import.meta.main) {
  const sched = benchScheduler();
  const trace = generateTrace();
  await Deno.mkdir("out/bench", { recursive: true });
  await Deno.writeTextFile("out/bench/frag_trace.json", JSON.stringify(trace));
  const ctx = createContext("trace", { maxVram: Math.min(sched.memoryLimit, 100 * GB) });
  const live = new Map<number, DeviceBuffer>();
  const sizes = new Map<number, number>();
  let liveBytes = 0, peakLive = 0, peakMapped = 0, peakPool = 0;
  const device = sched.device.id;
  for (const op of trace) {
    if (op[0] === 1) {
      live.set(op[1], ctx.alloc(op[2]));
      sizes.set(op[1], op[2]);
      liveBytes += op[2];
      if (liveBytes > peakLive) peakLive = liveBytes;
      const mapped = vmmUsage(device).mapped;
      if (mapped > peakMapped) peakMapped = mapped;
      const pool = ctx.pool.allocatedBytes + ctx.pool.cachedBytes;
      if (pool > peakPool) peakPool = pool;
    } else {
      live.get(op[1])!.free();
      live.delete(op[1]);
      liveBytes -= sizes.get(op[1])!;
    }
  }
  const result = {
    ops: trace.length,
    peakLiveBytes: peakLive,
    peakMappedBytes: peakMapped,
    peakPoolBytes: peakPool,
    mappedOverLive: peakMapped / peakLive,
    poolOverLive: peakPool / peakLive,
  };
  console.log(
    `trace of ${trace.length} ops: peak live ${
      (peakLive / GB).toFixed(2)
    } GiB; gpusched peak mapped ` +
      `${(peakMapped / GB).toFixed(2)} GiB (${result.mappedOverLive.toFixed(3)}x), pool held ` +
      `${(peakPool / GB).toFixed(2)} GiB (${result.poolOverLive.toFixed(3)}x)`,
  );
  console.log(`json: ${JSON.stringify(result)}`);
  ctx.destroy();
}
