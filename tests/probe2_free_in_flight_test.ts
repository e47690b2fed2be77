/**
 * Freeing a buffer while its own transfer is in flight. API.md: `buf.free()`
 * is idempotent and also `[Symbol.dispose]`, so `using buf = alloc(...)`
 * works; README: frees are stream-ordered (like `cudaFreeAsync`), and the
 * bar: no leak in any order of calls. A `using` scope that starts a write
 * it does not await (fire-and-forget, as one does before launching a
 * kernel) ends with the buffer's dispose while the write is queued: that
 * must neither throw from the dispose nor leave the bytes charged forever,
 * since no reference to the buffer is left to free it later. Written from
 * API.md and README.md only.
 */
import assert from "node:assert/strict";
import { createContext, getContextUsage, MB, MemoryPool } from "../mod.ts";
import { attempt, probe } from "./_probe.ts";

probe(
  "a buffer disposed by `using` while its write is in flight is freed, not leaked",
  async () => {
    const ctx = createContext("c", { maxVram: 16 * MB });
    let writing: Promise<void> | undefined;
    const thrown = attempt(() => {
      using buf = ctx.alloc(1 * MB);
      writing = buf.write(new Uint8Array(1 * MB).fill(1));
    });
    await writing!.catch(() => {});
    assert.equal(getContextUsage(ctx).used, 0, "the disposed buffer's bytes came back");
    assert.equal(thrown, undefined, `the dispose threw ${thrown}`);
  },
  {},
  // Fails now: free() of a block with a transfer in flight throws SchedulerError ("it is
  // pinned (1 pin(s) or transfers in flight)") and nothing frees it later, so under `using`
  // the dispose throws and the buffer leaks. Fix belongs in the pool's release path
  // (src/engine/memory_pool.ts, src/memory/evictor.ts: the fixes helper's area this session):
  // a free with only transfers pinning the block should release it when they complete.
  { ignore: false },
);

probe("free() while a read or write is in flight never loses the bytes for good", async () => {
  const ctx = createContext("c", { maxVram: 16 * MB });
  for (let i = 0; i < 20; i++) {
    const buf = ctx.alloc(1 * MB);
    const transfer = i % 2
      ? buf.write(new Uint8Array(1 * MB).fill(i))
      : buf.read(new Uint8Array(1 * MB));
    const refused = attempt(() => buf.free());
    await transfer.catch(() => {});
    // Whether the first free was refused or deferred, one more free after the transfer
    // (idempotent) leaves nothing charged.
    if (refused !== undefined) assert.ok(refused instanceof Error);
    buf.free();
  }
  assert.equal(getContextUsage(ctx).used, 0);
});

probe("pool.free(block) with the block's write in flight: freed once it completes", async () => {
  const pool = new MemoryPool({ quota: 4 * MB });
  const block = pool.allocate(1 * MB);
  const writing = block.write(new Uint8Array(1 * MB).fill(2));
  pool.free(block);
  assert.equal(block.freed, true, "unusable at once");
  await writing;
  assert.equal(pool.stats().activeBlocks, 0);
  assert.equal(pool.stats().allocatedBytes, 0);
  pool.free(block); // idempotent
});
