/**
 * RSS over initialize/shutdown cycles, one feature at a time, to find what
 * a shutdown does not give back (issue 10, item 17: 559 MiB over 180
 * cycles on CUDA). Prints, per feature, RSS after the warm-up cycles and
 * after the last, and the growth per cycle.
 *
 * Run: deno run --allow-ffi --allow-env=GPUSCHED_LIB,GPUSCHED_BACKEND bench/rss_cycles.ts
 *   [--cycles N] (add --v8-flags=--expose-gc to collect garbage before each reading)
 *   [--features none,buffers,pool,evict,partition,layouts,reserve,events,all]
 * (layouts: a partition of a different share each cycle, deleted again; reserve: a context with a
 * compute reservation, made and destroyed)
 */
import {
  createContext,
  destroyContext,
  initialize,
  KB,
  MB,
  MemoryPool,
  PartitionLimits,
  PartitionManager,
  QoSPolicy,
  recordEvent,
  shutdown,
  waitEvent,
} from "../mod.ts";

const args = Deno.args;
const at = (name: string) => args.indexOf(`--${name}`);
const cycles = at("cycles") >= 0 ? Number(args[at("cycles") + 1]) : 30;
const features =
  (at("features") >= 0 ? args[at("features") + 1]! : "none,buffers,pool,evict,partition,events,all")
    .split(",");
const envState = Deno.permissions.querySync({ name: "env", variable: "GPUSCHED_BACKEND" }).state;
const chosen = envState === "granted" ? Deno.env.get("GPUSCHED_BACKEND") : undefined;
const backend = chosen === "cuda" || chosen === "host" ? chosen : "auto";

let cycleIndex = 0;
async function cycle(feature: string): Promise<void> {
  cycleIndex++;
  const sched = initialize({ backend, hostMemory: 512 * MB, memoryLimit: 512 * MB });
  const all = feature === "all";
  if (feature === "buffers" || all) {
    const ctx = createContext("b", { maxVram: 64 * MB });
    const buf = ctx.alloc(8 * MB);
    await buf.write(new Uint8Array(8 * MB));
    await buf.read(new Uint8Array(8 * MB));
    ctx.alloc(1 * MB); // left for shutdown
  }
  if (feature === "pool" || all) {
    const pool = new MemoryPool({ quota: 16 * MB });
    const a = pool.allocate(256 * KB);
    await a.write(new Uint8Array(256 * KB));
    pool.allocate(100 * KB);
  }
  if (feature === "evict" || all) {
    const ctx = createContext("e", { maxVram: 64 * MB });
    const buf = ctx.alloc(8 * MB, { evictable: true });
    await buf.write(new Uint8Array(8 * MB));
    ctx.pool.evict(8 * MB);
    await buf.resident();
    ctx.pool.evict(8 * MB); // left evicted for shutdown
  }
  if (feature === "partition" || all) {
    const manager = new PartitionManager();
    manager.createPartition("p", "P", new PartitionLimits().compute(0.25));
    const s = sched.createStream({ partition: "p" });
    await s.synchronize();
  }
  if (feature === "layouts") {
    const manager = new PartitionManager();
    const share = [0.125, 0.25, 0.375][cycleIndex % 3]!;
    manager.createPartition("p", "P", new PartitionLimits().compute(share));
    const s = sched.createStream({ partition: "p" });
    await s.synchronize();
    s.destroy();
    manager.deletePartition("p");
  }
  if (feature === "reserve") {
    const ctx = createContext("r", { maxVram: 4 * MB, qos: QoSPolicy.GUARANTEED, compute: 0.125 });
    await ctx.stream.synchronize();
    destroyContext(ctx);
  }
  if (feature === "events" || all) {
    const a = createContext("x", { maxVram: 4 * MB }), b = createContext("y", { maxVram: 4 * MB });
    for (let i = 0; i < 1000; i++) waitEvent(b, recordEvent(a));
    const t = sched.createEvent({ timing: true }).record(a.stream);
    await t.synchronize();
  }
  shutdown();
}

const mib = (n: number) => (n / MB).toFixed(1);
/** With --v8-flags=--expose-gc, collect first so JavaScript garbage is not counted. */
function rss(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return Deno.memoryUsage().rss;
}
for (const feature of features) {
  const warm = Math.max(3, Math.floor(cycles / 5));
  for (let i = 0; i < warm; i++) await cycle(feature);
  const before = rss();
  for (let i = 0; i < cycles; i++) await cycle(feature);
  const after = rss();
  console.log(
    `${backend} ${feature}: RSS ${mib(before)} -> ${mib(after)} MiB over ${cycles} cycles ` +
      `(${((after - before) / cycles / KB).toFixed(0)} KiB/cycle)`,
  );
}
