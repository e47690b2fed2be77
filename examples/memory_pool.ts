/**
 * The MemoryPool (API.md "Low-level engine"): size classes with free lists,
 * LRU eviction to pinned host memory, pins, and the stats to tune it.
 *
 * Run: deno run --allow-ffi examples/memory_pool.ts [--backend host|cuda]
 */
import { initialize, MB, MemoryPool, shutdown } from "../mod.ts";
import { type BackendChoice, backendFlag } from "./_backend.ts";

/** Runs the example; returns what it printed, for tests. */
export async function main(backend: BackendChoice = backendFlag()): Promise<string[]> {
  const lines: string[] = [];
  initialize({ backend });
  try {
    using pool = new MemoryPool({ quota: 100 * MB, enableEviction: true });
    const block = pool.allocate(4096);
    pool.free(block);
    pool.allocate(4000).free(); // same size class: reused without a native call

    const kv = [pool.allocate(30 * MB, { evictable: true })];
    await kv[0]!.write(new Uint8Array(30 * MB).fill(7));
    kv.push(
      pool.allocate(30 * MB, { evictable: true }),
      pool.allocate(30 * MB, { evictable: true }),
    );
    {
      using _pin = kv[0]!.pin(); // kv[0] stays resident whatever happens
      pool.allocate(30 * MB); // over the quota: evicts the least recently used unpinned block, kv[1]
    }
    void kv[2]!.ptr; // using a block (ptr, read, write) makes it the most recently used
    pool.allocate(30 * MB); // again: now kv[0] is the least recently used
    lines.push(`kv[0] ${kv[0]!.state}, kv[1] ${kv[1]!.state}, kv[2] ${kv[2]!.state}`);
    const back = new Uint8Array(30 * MB);
    await kv[0]!.read(back); // restored first, bit-exact
    lines.push(`kv[0] restored: ${back.every((v) => v === 7)}`);
    const s = pool.stats();
    lines.push(
      `allocations ${s.allocationCount}, reused ${s.reuseCount}, evictions ${s.evictionCount}, ` +
        `restores ${s.restoreCount}, peak ${s.peakBytes / MB} MiB`,
    );
  } finally {
    shutdown();
  }
  return lines;
}

if (import.meta.main) console.log((await main()).join("\n"));
