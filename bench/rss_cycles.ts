/**
 * RSS over initialize/shutdown cycles, one feature at a time, to find what
 * a shutdown does not give back (issue 10, item 17: 559 MiB over 180
 * cycles on CUDA). Prints, per feature, RSS after the warm-up cycles and
 * after the last, and the growth per cycle.
 *
 * Run: deno run --allow-ffi --allow-env=GPUSCHED_LIB,GPUSCHED_BACKEND bench/rss_cycles.ts
 *   [--cycles N] (add --v8-flags=--expose-gc to collect garbage before each reading)
 *   [--features none,buffers,pool,evict,partition,layouts,reserve,events,streams,sessions,
 *    metrics,staging,small,ring,ringsync,timing,all]
 *   [--every N] (also print a reading every N cycles, to tell growth that levels off from a leak)
 *   [--trim] (call glibc's malloc_trim(0) before each reading: what it gives back was free)
 *   [--yield] (return to the event loop after each cycle: see the note below)
 *   (run with -A for anonymous RSS and the count of mappings: Deno reads /proc/self only then)
 * (layouts: a partition of a different share each cycle, deleted again; reserve: a context with a
 * compute reservation, made and destroyed; staging: writes and reads through a pool's staging
 * buffers; small: the buffers feature with 64 KiB host arrays instead of 8 MiB; ring and timing:
 * the two halves of the events feature, recycled ring events and one awaited timing event;
 * ringsync: ring with a blocking synchronize, a cycle that never yields, as ring does on CUDA)
 *
 * Each reading shows RSS, V8's heap (used) and external memory, and glibc malloc's own
 * figures (malloc_info over every arena: bytes in use, free bytes held in its arenas): RSS that
 * grows while malloc's bytes in use do not is free memory the allocator keeps, not a leak.
 *
 * A loop of cycles that never waits for the event loop (metrics, sessions; events and ring on
 * CUDA, where the awaited event is already complete) is one V8 job: every object a WeakRef was
 * made for or deref'd in it stays alive until the job ends (V8's keep-during-job set), so the
 * JS heap grows with every cycle's scheduler even after gc(). `--yield` ends the job each cycle,
 * as any real program's event loop does (RELIABILITY.md, "RSS over host cycles").
 */
import {
  contextSession,
  createContext,
  destroyContext,
  formatPrometheus,
  getMetrics,
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
const every = at("every") >= 0 ? Number(args[at("every") + 1]) : 0;
const trim = at("trim") >= 0;
const yieldEach = at("yield") >= 0;
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
  if (feature === "buffers" || feature === "small" || all) {
    const ctx = createContext("b", { maxVram: 64 * MB });
    const bytes = feature === "small" ? 64 * KB : 8 * MB;
    const buf = ctx.alloc(bytes);
    await buf.write(new Uint8Array(bytes));
    await buf.read(new Uint8Array(bytes));
    ctx.alloc(1 * MB); // left for shutdown
  }
  if (feature === "streams" || all) {
    for (let i = 0; i < 8; i++) {
      const s = sched.createStream({ priority: i % 2 });
      await s.synchronize();
      if (i % 2 === 0) s.destroy(); // the rest left for shutdown
    }
  }
  if (feature === "sessions" || all) {
    const ctx = createContext("s", { maxVram: 16 * MB });
    for (let i = 0; i < 50; i++) {
      await contextSession(ctx, async (c) => {
        c.alloc(64 * KB).free();
        await Promise.resolve();
      });
    }
  }
  if (feature === "metrics" || all) {
    createContext("m", { maxVram: 4 * MB }).alloc(64 * KB);
    for (let i = 0; i < 20; i++) formatPrometheus(getMetrics());
  }
  if (feature === "staging" || all) {
    const pool = new MemoryPool({ quota: 16 * MB });
    const block = pool.allocate(2 * MB);
    const host = new Uint8Array(2 * MB);
    for (let i = 0; i < 4; i++) {
      await block.write(host);
      await block.read(host);
    }
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
  if (feature === "ring") {
    // The events feature's first half: recycled ring events, recorded and waited on.
    const a = createContext("x", { maxVram: 4 * MB }), b = createContext("y", { maxVram: 4 * MB });
    for (let i = 0; i < 1000; i++) waitEvent(b, recordEvent(a));
    await b.stream.synchronize();
  }
  if (feature === "ringsync") {
    // The ring as CUDA runs it: the stream is done by the time it is asked, so the cycle never
    // waits for the event loop (here made so on the host by a blocking synchronize).
    const a = createContext("x", { maxVram: 4 * MB }), b = createContext("y", { maxVram: 4 * MB });
    for (let i = 0; i < 1000; i++) waitEvent(b, recordEvent(a));
    b.stream.synchronizeSync();
  }
  if (feature === "timing") {
    // Its second half: one timing event, recorded and awaited (a completion watched natively).
    const a = createContext("x", { maxVram: 4 * MB });
    const t = sched.createEvent({ timing: true }).record(a.stream);
    await t.synchronize();
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
/** glibc's allocator, for malloc_info and malloc_trim (undefined where libc is not glibc). */
const libc = (() => {
  try {
    return Deno.dlopen("libc.so.6", {
      open_memstream: { parameters: ["pointer", "pointer"], result: "pointer" },
      fclose: { parameters: ["pointer"], result: "i32" },
      free: { parameters: ["pointer"], result: "void" },
      malloc_info: { parameters: ["i32", "pointer"], result: "i32" },
      malloc_trim: { parameters: ["usize"], result: "i32" },
    }).symbols;
  } catch {
    return undefined;
  }
})();

interface Reading {
  rss: number;
  heapUsed: number;
  external: number;
  /** malloc, every arena: bytes in use (mmapped chunks included), free bytes its arenas hold. */
  mallocUsed?: number;
  mallocFree?: number;
  /** From /proc/self (only with -A): anonymous RSS, and how many mappings. */
  rssAnon?: number;
  mappings?: number;
}

function procSelf(): { rssAnon: number; mappings: number } | undefined {
  try {
    const status = Deno.readTextFileSync("/proc/self/status");
    const kb = Number(/RssAnon:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
    const mappings = Deno.readTextFileSync("/proc/self/maps").split("\n").length - 1;
    return { rssAnon: kb * KB, mappings };
  } catch {
    return undefined; // not granted (Deno asks for -A to read /proc/self), or not Linux
  }
}

/**
 * glibc's totals over every arena, from malloc_info's XML (mallinfo2 counts
 * the main arena only, and libsched's threads allocate in their own).
 */
function mallocTotals(): { used: number; free: number } | undefined {
  if (!libc) return undefined;
  const text = new BigUint64Array(1), size = new BigUint64Array(1);
  const file = libc.open_memstream(Deno.UnsafePointer.of(text), Deno.UnsafePointer.of(size));
  if (!file) return undefined;
  libc.malloc_info(0, file);
  libc.fclose(file);
  const xml = Deno.UnsafePointerView.getCString(Deno.UnsafePointer.create(text[0]!)!);
  libc.free(Deno.UnsafePointer.create(text[0]!));
  // The totals follow the last </heap>.
  const totals = xml.slice(xml.lastIndexOf("</heap>"));
  const field = (re: RegExp) => Number(re.exec(totals)?.[1] ?? 0);
  const free = field(/<total type="fast" count="\d+" size="(\d+)"/) +
    field(/<total type="rest" count="\d+" size="(\d+)"/);
  const system = field(/<system type="current" size="(\d+)"/);
  const mmapped = field(/<total type="mmap" count="\d+" size="(\d+)"/);
  return { used: system - free + mmapped, free };
}

/** With --v8-flags=--expose-gc, collect first so JavaScript garbage is not counted. */
function read(): Reading {
  (globalThis as { gc?: () => void }).gc?.();
  if (trim) libc?.malloc_trim(0n);
  const { rss, heapUsed, external } = Deno.memoryUsage();
  const malloc = mallocTotals();
  const proc = procSelf();
  return {
    rss,
    heapUsed,
    external,
    ...(malloc && { mallocUsed: malloc.used, mallocFree: malloc.free }),
    ...proc,
  };
}

function show(r: Reading): string {
  const malloc = r.mallocUsed === undefined
    ? ""
    : `, malloc in use ${mib(r.mallocUsed)} free ${mib(r.mallocFree!)}`;
  const proc = r.rssAnon === undefined ? "" : `, anon ${mib(r.rssAnon)}, ${r.mappings} maps`;
  return `RSS ${mib(r.rss)} (heap ${mib(r.heapUsed)}, external ${mib(r.external)}${malloc}${proc})`;
}

const perCycle = (a: number, b: number) => `${((b - a) / cycles / KB).toFixed(0)}`;
for (const feature of features) {
  const warm = Math.max(3, Math.floor(cycles / 5));
  const next = async () => {
    await cycle(feature);
    if (yieldEach) await new Promise((resolve) => setTimeout(resolve, 0));
  };
  for (let i = 0; i < warm; i++) await next();
  const before = read();
  for (let i = 1; i <= cycles; i++) {
    await next();
    if (every > 0 && i % every === 0 && i < cycles) {
      console.log(`  ${feature} cycle ${i}: ${show(read())}`);
    }
  }
  const after = read();
  const malloc = before.mallocUsed === undefined
    ? ""
    : `, malloc in use ${perCycle(before.mallocUsed, after.mallocUsed!)}`;
  console.log(
    `${backend} ${feature}: ${show(before)} -> ${show(after)} MiB over ${cycles} cycles ` +
      `(KiB/cycle: RSS ${perCycle(before.rss, after.rss)}, heap ` +
      `${perCycle(before.heapUsed, after.heapUsed)}${malloc})`,
  );
}
