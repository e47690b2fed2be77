/**
 * Eviction bandwidth: spill 1 GiB of evictable blocks to pinned host memory
 * and restore it, against the device's plain pinned copy bandwidth
 * measured in the same run. Times come from timing events around the work
 * on the stream; each case runs warm-up rounds first (pinned buffers are
 * allocated once and reused), then the median of the measured rounds.
 *
 * Run: deno task bench:eviction (GPUSCHED_BACKEND=host|cuda to force a backend).
 */
import { GB, MB, MemoryPool } from "../mod.ts";
import { copyToDevice, copyToHost, pinnedAlloc } from "../src/native/memory.ts";
import { benchScheduler } from "./_backend.ts";

const TOTAL = 1 * GB;
const BLOCK = 64 * MB;
const ROUNDS = 5;
const WARMUP = 2;

const sched = benchScheduler();
const stream = sched.createStream();
const native = stream.nativeHandle("bench");

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function timed(work: () => void | Promise<void>): Promise<number> {
  const start = sched.createEvent({ timing: true }).record(stream);
  await work();
  const end = sched.createEvent({ timing: true }).record(stream);
  await end.synchronize();
  const ms = start.elapsedMs(end)!;
  start.destroy();
  end.destroy();
  return ms;
}

const gbps = (bytes: number, ms: number) => bytes / (ms / 1000) / 1e9;

// Baseline: one 1 GiB device buffer and one 1 GiB pinned buffer, plain copies.
const baselinePool = new MemoryPool({ quota: TOTAL + 64 * MB, stream });
const device = baselinePool.allocate(TOTAL);
const pinned = pinnedAlloc(TOTAL);
if (!pinned) throw new Error("Cannot allocate 1 GiB of pinned host memory");
const d2h: number[] = [], h2d: number[] = [];
for (let round = 0; round < WARMUP + ROUNDS; round++) {
  const down = await timed(() => copyToHost(pinned, device.ptr, 0, TOTAL, native));
  const up = await timed(() => copyToDevice(device.ptr, 0, pinned, TOTAL, native));
  if (round >= WARMUP) {
    d2h.push(down);
    h2d.push(up);
  }
}
baselinePool.destroy();

// gpusched: 16 evictable 64 MiB blocks with known contents, evicted and restored.
const pool = new MemoryPool({ quota: TOTAL, enableEviction: true, stream });
const blocks = Array.from(
  { length: TOTAL / BLOCK },
  () => pool.allocate(BLOCK, { evictable: true }),
);
const pattern = new Uint8Array(BLOCK).map((_, i) => (i * 13 + 7) & 0xff);
for (const block of blocks) await block.write(pattern);
const spill: number[] = [], restore: number[] = [];
for (let round = 0; round < WARMUP + ROUNDS; round++) {
  const out = await timed(() => void pool.evict(TOTAL));
  const back = await timed(() => {
    for (const block of blocks) void block.ptr; // restores, stream-ordered
  });
  if (round >= WARMUP) {
    spill.push(out);
    restore.push(back);
  }
}
const check = new Uint8Array(BLOCK);
await blocks[blocks.length - 1]!.read(check);
const intact = check.every((v, i) => v === pattern[i]);
const stats = pool.stats();
pool.destroy();

const rows = [
  ["pinned copy device -> host (baseline)", median(d2h)],
  ["pinned copy host -> device (baseline)", median(h2d)],
  ["gpusched spill (evict 16 x 64 MiB)", median(spill)],
  ["gpusched restore (16 x 64 MiB)", median(restore)],
] as const;
console.log(`eviction bandwidth, 1 GiB, ${ROUNDS} rounds after ${WARMUP} warm-up, median`);
console.log("| case | ms | GB/s | of baseline |");
console.log("| --- | --- | --- | --- |");
for (const [name, ms] of rows) {
  const base = name.includes("spill") ? median(d2h) : name.includes("restore") ? median(h2d) : ms;
  console.log(
    `| ${name} | ${ms.toFixed(2)} | ${gbps(TOTAL, ms).toFixed(2)} | ${
      (100 * base / ms).toFixed(0)
    }% |`,
  );
}
console.log(
  `data intact after ${stats.evictionCount} evictions and ${stats.restoreCount} restores: ${intact}`,
);
console.log(
  "json: " +
    JSON.stringify({
      date: new Date().toISOString(),
      backend: sched.backend,
      device: sched.device.name,
      bytes: TOTAL,
      block: BLOCK,
      ms: { d2h, h2d, spill, restore },
      intact,
    }),
);
sched.shutdown();
