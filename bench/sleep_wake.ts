/**
 * Sleep and wake bandwidth, and what virtual memory costs an allocation.
 *
 * 1. An 8 GiB context (eight 1 GiB buffers; GPUSCHED_SLEEP_GIB to change)
 *    is put to sleep and woken; each way is timed on the host clock from the
 *    call to the resolved promise, so it includes mapping and unmapping, the
 *    copies and the completion. The first cycle allocates the pinned host
 *    buffers and is reported apart; the median of the next ones follows. In
 *    the same run: plain pinned copies of the same bytes, one stream, 1 GiB
 *    copies (the baseline the target is a share of).
 * 2. Cached ctx.alloc + free of 4 KiB and 64 MiB (no native call), and an
 *    uncached 64 MiB allocation that maps new physical memory (cache
 *    trimmed and unmaps flushed before each), against cudaMallocAsync +
 *    free of 64 MiB from a pool trimmed to 0 before each.
 *
 * Run: deno run --allow-ffi --allow-env=GPUSCHED_LIB,GPUSCHED_BACKEND bench/sleep_wake.ts
 * The last line is `json: {...}`.
 */
import { createContext, GB, MB, QoSPolicy } from "../mod.ts";
import { copyToDevice, copyToHost, pinnedAlloc, pinnedFree } from "../src/native/memory.ts";
import { vmmFlush } from "../src/native/vmm.ts";
import { lib } from "../src/native/loader.ts";
import { benchScheduler } from "./_backend.ts";

const state = Deno.permissions.querySync({ name: "env", variable: "GPUSCHED_SLEEP_GIB" }).state;
const GIB = Number(state === "granted" ? Deno.env.get("GPUSCHED_SLEEP_GIB") ?? 8 : 8);
const sched = benchScheduler();
const TOTAL = Math.min(GIB * GB, Math.floor(sched.memoryLimit / 2 / GB) * GB);
const BUFFER = 1 * GB;
const ROUNDS = 5;
const gbps = (bytes: number, ms: number) => bytes / (ms / 1000) / 1e9;
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
const results = {
  device: sched.device.name,
  backend: sched.backend,
  bytes: TOTAL,
  pinnedD2hGBps: 0,
  pinnedH2dGBps: 0,
  firstSleepMs: 0,
  firstWakeMs: 0,
  sleepMs: 0,
  wakeMs: 0,
  sleepGBps: 0,
  wakeGBps: 0,
  intact: false,
  cached4kNs: 0,
  cached64mNs: 0,
  uncached64mUs: 0,
  mallocAsync64mUs: 0,
  wakeQueuedMs: 0,
  map1gUs: 0,
};

// ---- 1a. plain pinned copies, same bytes, in this run
{
  const stream = sched.createStream();
  const native = stream.nativeHandle("bench");
  const ctx = createContext("baseline", { maxVram: TOTAL });
  const bufs = Array.from({ length: TOTAL / BUFFER }, () => ctx.alloc(BUFFER));
  const hosts = bufs.map(() => pinnedAlloc(BUFFER)!);
  const d2h: number[] = [], h2d: number[] = [];
  for (let round = 0; round < ROUNDS + 1; round++) {
    let t = performance.now();
    for (const [i, b] of bufs.entries()) copyToHost(hosts[i]!, b.ptr, 0, BUFFER, native);
    stream.synchronizeSync();
    const down = performance.now() - t;
    t = performance.now();
    for (const [i, b] of bufs.entries()) copyToDevice(b.ptr, 0, hosts[i]!, BUFFER, native);
    stream.synchronizeSync();
    const up = performance.now() - t;
    if (round > 0) {
      d2h.push(down);
      h2d.push(up);
    }
  }
  for (const h of hosts) pinnedFree(h);
  for (const b of bufs) b.free();
  ctx.destroy();
  stream.destroy();
  results.pinnedD2hGBps = gbps(TOTAL, median(d2h));
  results.pinnedH2dGBps = gbps(TOTAL, median(h2d));
  console.log(
    `plain pinned copies of ${TOTAL / GB} GiB: D2H ${results.pinnedD2hGBps.toFixed(1)} GB/s, ` +
      `H2D ${results.pinnedH2dGBps.toFixed(1)} GB/s`,
  );
}

// ---- 1b. sleep and wake of a context holding the same bytes
{
  const ctx = createContext("model", { maxVram: TOTAL, qos: QoSPolicy.GUARANTEED });
  const bufs = Array.from({ length: TOTAL / BUFFER }, () => ctx.alloc(BUFFER));
  const head = new Uint8Array(1 * MB).map((_, i) => (i * 31) & 0xff);
  for (const b of bufs) await b.write(head);
  const ptrs = bufs.map((b) => Deno.UnsafePointer.value(b.ptr));
  const sleeps: number[] = [], wakes: number[] = [], wakeSync: number[] = [];
  let first = { sleep: 0, wake: 0 };
  for (let round = 0; round < ROUNDS + 1; round++) {
    let t = performance.now();
    await ctx.sleep();
    const s = performance.now() - t;
    t = performance.now();
    // wake() maps every buffer and queues its copy before its first await.
    const waking = ctx.wake();
    const queued = performance.now() - t;
    await waking;
    const w = performance.now() - t;
    if (round > 0) wakeSync.push(queued);
    if (round === 0) first = { sleep: s, wake: w };
    else {
      sleeps.push(s);
      wakes.push(w);
    }
  }
  const back = new Uint8Array(head.length);
  let intact = true;
  for (const [i, b] of bufs.entries()) {
    await b.read(back);
    intact &&= back.every((v, j) => v === head[j]) && Deno.UnsafePointer.value(b.ptr) === ptrs[i];
  }
  results.firstSleepMs = first.sleep;
  results.firstWakeMs = first.wake;
  results.sleepMs = median(sleeps);
  results.wakeMs = median(wakes);
  results.sleepGBps = gbps(TOTAL, median(sleeps));
  results.wakeGBps = gbps(TOTAL, median(wakes));
  results.intact = intact;
  results.wakeQueuedMs = median(wakeSync);
  console.log(
    `sleep ${TOTAL / GB} GiB: ${median(sleeps).toFixed(1)} ms (${
      results.sleepGBps.toFixed(1)
    } GB/s, ` +
      `${(results.sleepGBps / results.pinnedD2hGBps * 100).toFixed(0)}% of pinned D2H); ` +
      `wake: ${median(wakes).toFixed(1)} ms (${results.wakeGBps.toFixed(1)} GB/s, ` +
      `${(results.wakeGBps / results.pinnedH2dGBps * 100).toFixed(0)}% of pinned H2D); ` +
      `first cycle (pinned buffers allocated) ${first.sleep.toFixed(0)} + ${
        first.wake.toFixed(0)
      } ms; ` +
      `bit-exact at the same addresses: ${intact}; wake's maps and queueing took ` +
      `${results.wakeQueuedMs.toFixed(1)} ms of it`,
  );
  ctx.destroy();
}

// ---- 2. allocation costs
{
  const ctx = createContext("alloc", { maxVram: 1 * GB });
  const pairs = (bytes: number, n: number) => {
    for (let i = 0; i < 10_000; i++) ctx.alloc(bytes).free();
    const t = performance.now();
    for (let i = 0; i < n; i++) ctx.alloc(bytes).free();
    return (performance.now() - t) * 1e6 / n;
  };
  results.cached4kNs = pairs(4096, 1_000_000);
  results.cached64mNs = pairs(64 * MB, 1_000_000);
  const uncached: number[] = [];
  for (let i = 0; i < 50; i++) {
    ctx.pool.trim();
    ctx.stream.synchronizeSync();
    vmmFlush(sched.device.id);
    const t = performance.now();
    const b = ctx.alloc(64 * MB);
    uncached.push((performance.now() - t) * 1000);
    b.free();
  }
  results.uncached64mUs = median(uncached);
  const big: number[] = [];
  for (let i = 0; i < 9; i++) {
    ctx.pool.trim();
    ctx.stream.synchronizeSync();
    vmmFlush(sched.device.id);
    const t = performance.now();
    const b = ctx.alloc(1 * GB - 64 * MB);
    big.push((performance.now() - t) * 1000);
    b.free();
  }
  results.map1gUs = median(big);
  // cudaMallocAsync of the same size from a pool trimmed to nothing before each.
  const stream = sched.createStream();
  const native = stream.nativeHandle("bench");
  const handle = new Uint32Array(1), out = new BigUint64Array(1);
  lib().sched_pool_create(0n, 0n, handle);
  const raw: number[] = [];
  for (let i = 0; i < 50; i++) {
    lib().sched_stream_synchronize(native);
    lib().sched_pool_trim(handle[0]!, 0n);
    const t = performance.now();
    lib().sched_malloc_async(handle[0]!, native, BigInt(64 * MB), out);
    raw.push((performance.now() - t) * 1000);
    lib().sched_free_async(Deno.UnsafePointer.create(out[0]!), native);
  }
  lib().sched_stream_synchronize(native);
  lib().sched_pool_destroy(handle[0]!);
  results.mallocAsync64mUs = median(raw);
  console.log(
    `ctx.alloc + free, cached: 4 KiB ${results.cached4kNs.toFixed(0)} ns, 64 MiB ` +
      `${results.cached64mNs.toFixed(0)} ns; uncached 64 MiB (maps new memory): ` +
      `${results.uncached64mUs.toFixed(1)} us vs cudaMallocAsync 64 MiB from a trimmed pool ` +
      `${results.mallocAsync64mUs.toFixed(1)} us; uncached 960 MiB ${
        results.map1gUs.toFixed(0)
      } us`,
  );
  ctx.destroy();
}
console.log(`json: ${JSON.stringify(results)}`);
