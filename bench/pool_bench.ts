/**
 * MemoryPool hot path: allocate + free of a cached block, from TypeScript,
 * against a raw libsched stream-ordered alloc + free of the same size in
 * the same run.
 *
 * Run: deno task bench (GPUSCHED_BACKEND=host|cuda to force a backend).
 */
import { MemoryPool } from "../mod.ts";
import { createNativePool, deviceAlloc, deviceFree } from "../src/native/memory.ts";
import { benchScheduler } from "./_backend.ts";

const sched = benchScheduler({ banner: false });
const stream = sched.createStream();
const native = stream.nativeHandle("bench");
const pool = new MemoryPool({ quota: 1024 * 1024 * 1024, stream });
const nativePool = createNativePool(0);

for (const size of [4096, 1024 * 1024, 64 * 1024 * 1024]) {
  const label = size >= 1024 * 1024 ? `${size / 1024 / 1024} MiB` : `${size / 1024} KiB`;
  pool.free(pool.allocate(size)); // warm the size class
  Deno.bench(`MemoryPool allocate + free, cached ${label}`, {
    group: `pool ${label}`,
    baseline: true,
  }, () => {
    pool.allocate(size).free();
  });
  Deno.bench(`raw libsched malloc_async + free_async, ${label}`, { group: `pool ${label}` }, () => {
    const ptr = deviceAlloc(nativePool, native, size);
    if (!ptr) throw new Error("device out of memory");
    deviceFree(ptr, native);
  });
}
