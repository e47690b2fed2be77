/**
 * Who a refused allocation names: a standalone `MemoryPool` is named as a
 * pool (`Pool "kv"`), never as a context, and its error has no `context`;
 * a context's refusal keeps naming the context and carries it. Every path
 * that refuses is covered: past the quota, no room under the quota, and
 * the device refusing.
 */
import assert from "node:assert/strict";
import { createContext, MB, MemoryPool, VramBudgetExceededError } from "../mod.ts";
import { backendTest } from "./_helpers.ts";

function refusedAsPool(name: string, requested: number) {
  return (e: unknown) => {
    assert.ok(e instanceof VramBudgetExceededError, `expected VramBudgetExceededError, got ${e}`);
    assert.match(e.message, new RegExp(`^Pool "${name}" cannot allocate ${requested} bytes`));
    assert.doesNotMatch(e.message, /Context/);
    assert.equal(e.context, undefined);
    assert.equal(e.contextName, name);
    assert.equal(e.requested, requested);
    assert.ok(e.available < requested);
    return true;
  };
}

backendTest("a standalone pool past its quota is named as a pool, default name", () => {
  using pool = new MemoryPool({ quota: 4 * MB });
  assert.throws(() => pool.allocate(5 * MB), refusedAsPool("pool", 5 * MB));
});

backendTest("a standalone pool without room under its quota is named as a pool", () => {
  using pool = new MemoryPool({ quota: 8 * MB, name: "kv" });
  const kept = pool.allocate(6 * MB);
  assert.throws(() => pool.allocate(3 * MB), refusedAsPool("kv", 3 * MB));
  kept.free();
});

backendTest("a standalone pool the device refuses is named as a pool", () => {
  // The quota is above what the scheduler manages: the device's limit refuses.
  using pool = new MemoryPool({ quota: 64 * MB, name: "big" });
  const kept = pool.allocate(12 * MB);
  assert.throws(() => pool.allocate(12 * MB), refusedAsPool("big", 12 * MB));
  kept.free();
}, { hostMemory: 16 * MB });

backendTest("a context's refusal still names the context and carries it", () => {
  const llm = createContext("llm", { maxVram: 4 * MB });
  for (const size of [5 * MB, 3 * MB]) {
    const kept = size < 4 * MB ? llm.alloc(2 * MB) : undefined;
    assert.throws(() => llm.alloc(size), (e: unknown) => {
      assert.ok(e instanceof VramBudgetExceededError);
      assert.match(e.message, new RegExp(`^Context "llm" cannot allocate ${size} bytes`));
      assert.equal(e.context, llm);
      assert.equal(e.contextName, "llm");
      return true;
    });
    kept?.free();
  }
});
