/**
 * Budgets and reservations under adversarial use (issue 10, items 3-6, 10,
 * 12, 14, 18; issue 14 item 6): pressure handlers that re-enter the
 * scheduler, destroy the asking context or shut down; size-class rounding at
 * the edge of a budget; standalone pools against reservations; usage and
 * stats after restore and destroy; sessions closed out of order.
 */
import assert from "node:assert/strict";
import {
  AdmissionError,
  alloc,
  contextSession,
  createContext,
  currentContext,
  type DeviceBuffer,
  type ExecutionContext,
  getAvailableVram,
  getContextUsage,
  initialize,
  MB,
  MemoryPool,
  NoActiveSessionError,
  onMemoryPressure,
  QoSPolicy,
  SchedulerError,
  shutdown,
  VramBudgetExceededError,
} from "../mod.ts";
import { contextManager } from "../src/api.ts";
import { recordOf } from "../src/engine/pool_block.ts";
import { backendTest, lib, seededRandom, Status } from "./_helpers.ts";

/** Asserts the error is a VramBudgetExceededError naming ctx, with available < requested. */
function isBudgetError(ctx: ExecutionContext | undefined) {
  return (e: unknown) => {
    assert.ok(e instanceof VramBudgetExceededError, `expected VramBudgetExceededError, got ${e}`);
    if (ctx) assert.equal(e.context, ctx, "error.context is the ExecutionContext that asked");
    assert.ok(e.available < e.requested, `available ${e.available} < requested ${e.requested}`);
    return true;
  };
}

/** Σ claims ≤ limit and nobody over maxVram, read through the public API. */
function assertBudgets(limit: number, contexts: ExecutionContext[]): void {
  let claims = 0;
  for (const ctx of contexts) {
    if (!ctx.alive) continue;
    const u = getContextUsage(ctx);
    assert.ok(u.used <= u.max, `${ctx.name} holds ${u.used} > max ${u.max}`);
    assert.ok(u.peak >= u.used, `${ctx.name}: peak ${u.peak} < used ${u.used}`);
    claims += Math.max(u.used + u.cached, u.reserved);
  }
  assert.ok(claims <= limit, `claims ${claims} exceed the limit ${limit}`);
  assert.ok(contextManager().spare >= 0, "negative spare");
}

// ---------------------------------------------------------------- item 3

backendTest(
  "a pressure handler that allocates in the asking context cannot push it past maxVram",
  () => {
    const a = createContext("a", { maxVram: 48 * MB });
    const kept: DeviceBuffer[] = [a.alloc(8 * MB), a.alloc(32 * MB, { evictable: true })];
    let calls = 0;
    const off = onMemoryPressure((ctx) => {
      if (calls++ === 0) {
        // Re-entrant: these allocations evict the evictable buffer and fill the budget.
        kept.push(ctx.alloc(24 * MB), ctx.alloc(16 * MB));
      }
      return true;
    });
    try {
      assert.throws(() => a.alloc(16 * MB), isBudgetError(a));
      assert.equal(getContextUsage(a).used, 48 * MB, "exactly full, never above");
      assertBudgets(128 * MB, [a]);
    } finally {
      off();
    }
  },
  { hostMemory: 128 * MB },
);

backendTest(
  "a pressure handler that allocates in another context cannot push the device past its limit",
  () => {
    const a = createContext("a", { maxVram: 48 * MB });
    const b = createContext("b", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT });
    const held = [a.alloc(32 * MB), b.alloc(24 * MB, { evictable: true })];
    const off = onMemoryPressure((ctx) => {
      if (ctx === a) held.push(b.alloc(8 * MB)); // takes the spare bytes a was about to get
      return true;
    });
    try {
      const got = (() => {
        try {
          return a.alloc(16 * MB);
        } catch (e) {
          isBudgetError(a)(e);
          return undefined;
        }
      })();
      assertBudgets(64 * MB, [a, b]);
      if (got) {
        assert.equal(held[1]!.state, "evicted", "room was made by evicting, not by overdraft");
      }
    } finally {
      off();
    }
  },
  { hostMemory: 64 * MB },
);

backendTest(
  "handlers that free, register, unregister or shut down mid-allocation leave consistent budgets",
  () => {
    const a = createContext("a", { maxVram: 32 * MB });
    const victim = a.alloc(16 * MB);
    const offs: (() => void)[] = [];
    offs.push(onMemoryPressure(() => {
      victim.free(); // frees inside the handler: the allocation must see it
      offs.push(onMemoryPressure(() => true)); // registered meanwhile
      offs[0]!(); // unregisters itself
      return true;
    }));
    const b = a.alloc(24 * MB);
    assert.equal(getContextUsage(a).used, 24 * MB);
    assertBudgets(32 * MB, [a]);
    b.free();
    a.alloc(24 * MB);
    // A handler that shuts the scheduler down: a clear SchedulerError, nothing native touched after.
    offs.push(onMemoryPressure(() => {
      shutdown();
      return true;
    }));
    assert.throws(() => a.alloc(24 * MB), SchedulerError);
    assert.equal(a.alive, false);
    for (const off of offs) off();
  },
  { hostMemory: 32 * MB },
);

// ---------------------------------------------------------------- item 4

for (const path of ["quota", "device"] as const) {
  backendTest(
    `destroying the asking context in its handler (${path} path) is a clear error and leaks nothing`,
    (sched) => {
      const limit = sched.memoryLimit;
      const a = createContext("a", { maxVram: path === "quota" ? 32 * MB : 64 * MB });
      const other = createContext("other", {
        maxVram: 64 * MB,
        qos: path === "device" ? QoSPolicy.BEST_EFFORT : QoSPolicy.BURSTABLE,
      });
      const held = a.alloc(24 * MB);
      const pinned = other.alloc(path === "device" ? 32 * MB : 8 * MB);
      const off = onMemoryPressure((ctx) => {
        ctx.destroy();
        return true;
      });
      try {
        assert.throws(() => a.alloc(16 * MB), (e: unknown) => {
          assert.ok(e instanceof SchedulerError, `expected SchedulerError, got ${e}`);
          assert.ok(!(e instanceof TypeError));
          assert.match((e as Error).message, /destroyed/);
          return true;
        });
      } finally {
        off();
      }
      assert.equal(a.alive, false);
      assert.equal(held.freed, true);
      pinned.free();
      other.destroy();
      // Nothing leaked: what getAvailableVram() reports is what a context can really get.
      assert.equal(getAvailableVram(), limit);
      const all = createContext("all", { maxVram: limit, qos: QoSPolicy.GUARANTEED });
      all.alloc(limit);
      assert.equal(getContextUsage(all).used, limit);
    },
    { hostMemory: 64 * MB },
  );
}

// ---------------------------------------------------------------- item 5

backendTest(
  "a GUARANTEED context gets every allocation whose sizes sum to maxVram",
  () => {
    const cases: number[][] = [[50 * MB], [30 * MB, 20 * MB], [MB + 1, 49 * MB - 1], [
      12_345,
      50 * MB - 12_345,
    ]];
    const r = seededRandom(7);
    for (let n = 0; n < 3; n++) {
      const sizes: number[] = [];
      let left = 50 * MB;
      while (left > 0) {
        const s = Math.min(left, 1 + Math.floor(r() * 3 * MB));
        sizes.push(s);
        left -= s;
      }
      cases.push(sizes);
    }
    for (const sizes of cases) {
      using g = createContext("g", { maxVram: 50 * MB, qos: QoSPolicy.GUARANTEED });
      const bufs = sizes.map((s) => g.alloc(s));
      const u = getContextUsage(g);
      assert.ok(u.used <= u.max, `used ${u.used} <= max ${u.max}`);
      assert.throws(() => g.alloc(256), isBudgetError(g), "full means full");
      for (const b of bufs) b.free();
      // Cached memory of other sizes never stands in the way of the next fill.
      const again = sizes.slice().reverse().map((s) => g.alloc(s));
      for (const b of again) b.free();
    }
  },
  { hostMemory: 64 * MB },
);

backendTest(
  "size-class rounding never pushes a context past maxVram, and errors have available < requested",
  () => {
    const b = createContext("b", { maxVram: 50 * MB, qos: QoSPolicy.BEST_EFFORT });
    const x = b.alloc(30 * MB); // class 32 MiB
    const y = b.alloc(17 * MB); // class 20 MiB would cross: served exactly
    assert.ok(getContextUsage(b).used <= 50 * MB);
    assert.throws(() => b.alloc(4 * MB), isBudgetError(b));
    assert.throws(() => b.alloc(51 * MB), isBudgetError(b));
    x.free();
    y.free();
    b.alloc(50 * MB);
    assert.equal(getContextUsage(b).used, 50 * MB);
  },
  { hostMemory: 64 * MB },
);

backendTest(
  "another context's cached memory is available without asking the pressure handlers",
  () => {
    const a = createContext("a", { maxVram: 64 * MB });
    a.alloc(40 * MB).free();
    assert.equal(getContextUsage(a).cached, 40 * MB);
    assert.equal(getAvailableVram(), 64 * MB, "cached memory counts as available");
    const b = createContext("b", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT });
    const calls: number[] = [];
    const off = onMemoryPressure((_ctx, requested) => {
      calls.push(requested);
      return false;
    });
    try {
      const buf = b.alloc(60 * MB); // needs a's cache: released, not a pressure event
      assert.equal(buf.size, 60 * MB);
    } finally {
      off();
    }
    assert.deepEqual(calls, []);
    assert.equal(getContextUsage(a).cached, 0);
  },
  { hostMemory: 64 * MB },
);

// ---------------------------------------------------------------- item 6

backendTest(
  "a standalone MemoryPool draws from the same account and cannot take a reservation",
  (sched) => {
    const limit = sched.memoryLimit;
    const g = createContext("g", { maxVram: 48 * MB, qos: QoSPolicy.GUARANTEED });
    using pool = new MemoryPool({ quota: limit, name: "side" });
    assert.throws(() => pool.allocate(32 * MB), isBudgetError(undefined));
    const side = pool.allocate(16 * MB);
    assert.equal(getAvailableVram(), 0);
    g.alloc(48 * MB); // the whole reservation, with the pool holding the rest
    assert.throws(
      () => createContext("late", { maxVram: 8 * MB, qos: QoSPolicy.GUARANTEED }),
      AdmissionError,
    );
    g.destroy();
    assert.throws(
      () => createContext("big", { maxVram: limit, qos: QoSPolicy.GUARANTEED }),
      AdmissionError,
      "the pool's bytes are not reservable",
    );
    side.free();
    pool.trim();
    assert.equal(getAvailableVram(), limit);
    createContext("big", { maxVram: limit, qos: QoSPolicy.GUARANTEED }).alloc(limit);
  },
  { hostMemory: 64 * MB },
);

backendTest(
  "a standalone pool may use what contexts only cache",
  () => {
    const e = createContext("e", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT });
    e.alloc(48 * MB).free(); // cached, counts as available
    assert.equal(getAvailableVram(), 64 * MB);
    using pool = new MemoryPool({ quota: 64 * MB });
    pool.allocate(40 * MB);
    assert.equal(getContextUsage(e).cached, 0, "the cache was released for the pool");
  },
  { hostMemory: 64 * MB },
);

// ---------------------------------------------------------------- item 10

backendTest(
  "usage().peak is never below used, restores included",
  async () => {
    const a = createContext("a", { maxVram: 16 * MB });
    const ev = a.alloc(8 * MB, { evictable: true });
    await ev.write(new Uint8Array([1, 2, 3]));
    const b = a.alloc(10 * MB); // evicts ev
    assert.equal(ev.state, "evicted");
    b.free();
    a.alloc(6 * MB);
    await ev.resident(); // 14 MiB resident now, more than at any allocation
    const u = getContextUsage(a);
    assert.equal(u.used, 14 * MB);
    assert.ok(u.peak >= u.used, `peak ${u.peak} >= used ${u.used}`);
  },
  { hostMemory: 64 * MB },
);

backendTest(
  "MemoryPool.stats() after destroy() reports nothing live, evicted or requested",
  async () => {
    const pool = new MemoryPool({ quota: 8 * MB, enableEviction: true });
    const a = pool.allocate(4 * MB, { evictable: true });
    await a.write(new Uint8Array(16).fill(7));
    pool.allocate(6 * MB).free(); // evicts a
    assert.equal(pool.stats().evictedBlocks, 1);
    const restoredCopy = recordOf(a).hostCopy!.ptr;
    const restoring = a.resident(); // restore queued: its host copy goes back to the pool once the stream is done
    const c = pool.allocate(2 * MB, { evictable: true });
    await c.write(new Uint8Array(16).fill(9));
    pool.allocate(4 * MB).free(); // evicts c (a is pinned by nothing but more recent)
    const evicted = [a, c].filter((b) => b.state === "evicted");
    assert.ok(evicted.length > 0);
    const evictedCopies = evicted.map((b) => recordOf(b).hostCopy!.ptr);
    pool.destroy();
    await restoring.catch(() => {}); // its stream went with the pool
    // Really freed, at once: libsched no longer knows these pinned allocations.
    for (const ptr of [restoredCopy, ...evictedCopies]) {
      assert.equal(
        lib().sched_host_free(ptr),
        Status.INVALID_HANDLE,
        "host copy freed by destroy()",
      );
    }
    const s = pool.stats();
    assert.deepEqual(
      [s.allocatedBytes, s.requestedBytes, s.cachedBytes, s.activeBlocks, s.freeBlocks],
      [0, 0, 0, 0, 0],
    );
    assert.deepEqual([s.evictedBlocks, s.evictedHostBytes, s.evictableBytes, s.hostCacheBytes], [
      0,
      0,
      0,
      s.hostCacheBytes, // staging is the scheduler's, shared
    ]);
    assert.equal(getAvailableVram(), 64 * MB, "the pool's claims went back");
  },
  { hostMemory: 64 * MB },
);

// ---------------------------------------------------------------- item 12

backendTest("closing a sync session inside a nested async session leaves it closed", async () => {
  const a = createContext("a", { maxVram: 4 * MB });
  const b = createContext("b", { maxVram: 4 * MB });
  const s = contextSession(a);
  await contextSession(b, () => s[Symbol.dispose]());
  assert.equal(currentContext(), undefined, "a is not current any more");
  assert.throws(() => alloc(1024), NoActiveSessionError);
  // A sync session left open when the scheduler shuts down does not survive into the next one.
  const c = createContext("c", { maxVram: 4 * MB });
  contextSession(c);
  shutdown();
  initialize({ backend: "host" });
  assert.equal(currentContext(), undefined, "nor after shutdown() + initialize()");
  assert.throws(() => alloc(1024), NoActiveSessionError);
});

// ---------------------------------------------------------------- items 14, 18

backendTest(
  "a handler's non-boolean result is a TypeError that rejects the allocation; nothing is evicted",
  () => {
    const e = createContext("e", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT });
    const g = createContext("g", { maxVram: 32 * MB });
    const victims = [e.alloc(16 * MB, { evictable: true }), e.alloc(16 * MB, { evictable: true })];
    const own = g.alloc(16 * MB, { evictable: true });
    const results: unknown[] = [undefined, Promise.resolve(true), 1, "yes", null, {}];
    for (const result of results) {
      const off = onMemoryPressure(() => result as boolean);
      try {
        assert.throws(() => g.alloc(32 * MB), (err: unknown) => {
          isBudgetError(g)(err);
          assert.ok((err as Error).cause instanceof TypeError, `cause for ${String(result)}`);
          assert.match(((err as Error).cause as Error).message, /must return a boolean/);
          return true;
        });
      } finally {
        off();
      }
      for (const v of [...victims, own]) assert.equal(v.state, "resident", "nothing evicted");
    }
  },
  { hostMemory: 64 * MB },
);

backendTest(
  "a handler that refuses means nothing at all is evicted: quota, device and creation paths",
  () => {
    const e = createContext("e", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT });
    const evictables = [
      e.alloc(24 * MB, { evictable: true }),
      e.alloc(24 * MB, { evictable: true }),
    ];
    const asked: string[] = [];
    const off = onMemoryPressure((ctx) => {
      asked.push(ctx.name);
      return false;
    });
    try {
      // Quota path: e's own evictable buffers would make room under its maxVram.
      assert.throws(() => e.alloc(32 * MB), isBudgetError(e));
      // Device path: another context needs e's bytes.
      const b = createContext("b", { maxVram: 32 * MB });
      assert.throws(() => b.alloc(24 * MB), isBudgetError(b));
      // Creation path: a reservation that needs e's evictable bytes.
      assert.throws(
        () => createContext("g", { maxVram: 32 * MB, qos: QoSPolicy.GUARANTEED }),
        AdmissionError,
      );
      for (const v of evictables) assert.equal(v.state, "resident", "nothing evicted");
      assert.deepEqual(asked, ["e", "b", "g"]);
    } finally {
      off();
    }
    // Allowed: the same reservation now evicts.
    createContext("g", { maxVram: 32 * MB, qos: QoSPolicy.GUARANTEED });
    assert.ok(evictables.some((v) => v.state === "evicted"));
  },
  { hostMemory: 64 * MB },
);

// ---------------------------------------------------------------- items 15, 16

backendTest(
  "60 concurrent sessions near the limit: GUARANTEED allocations inside the reservation never fail",
  async () => {
    const guaranteed = [1, 2, 3, 4].map((i) =>
      createContext(`g${i}`, { maxVram: 32 * MB, qos: QoSPolicy.GUARANTEED })
    );
    const others = [
      createContext("b1", { maxVram: 64 * MB }),
      createContext("b2", { maxVram: 64 * MB, baseVram: 16 * MB }),
      createContext("e1", { maxVram: 96 * MB, qos: QoSPolicy.BEST_EFFORT }),
      createContext("e2", { maxVram: 96 * MB, qos: QoSPolicy.BEST_EFFORT }),
    ];
    const all = [...guaranteed, ...others];
    /** Bytes each GUARANTEED context's sessions hold or are about to: they share its reservation. */
    const promised = new Map<ExecutionContext, number>(guaranteed.map((g) => [g, 0]));
    const r = seededRandom(15);
    const sizes = [256 * 1024, MB, 2 * MB, 3 * MB + 4096, 4 * MB, 6 * MB, 8 * MB];
    const refusedGuaranteed: string[] = [];
    const session = (id: number) =>
      contextSession(all[id % all.length]!, async (ctx) => {
        const live: DeviceBuffer[] = [];
        const isG = promised.has(ctx);
        for (let step = 0; step < 40; step++) {
          const size = sizes[Math.floor(r() * sizes.length)]!;
          if (isG && promised.get(ctx)! + size > ctx.maxVram) {
            const b = live.shift();
            if (b) {
              promised.set(ctx, promised.get(ctx)! - b.size);
              b.free();
            }
            continue;
          }
          if (isG) promised.set(ctx, promised.get(ctx)! + size);
          try {
            const buf = alloc(size, { evictable: !isG && r() < 0.5 });
            live.push(buf);
            if (r() < 0.3) await buf.write(new Uint8Array(4096).fill(id));
          } catch (e) {
            if (isG) {
              promised.set(ctx, promised.get(ctx)! - size);
              const u = getContextUsage(ctx);
              refusedGuaranteed.push(`${ctx.name} refused ${size} with ${u.used} used: ${e}`);
            } else isBudgetError(ctx)(e);
          }
          if (live.length > 3 || r() < 0.3) {
            const b = live.splice(Math.floor(r() * live.length), 1)[0];
            if (b) {
              if (isG) promised.set(ctx, promised.get(ctx)! - b.size);
              b.free();
            }
          }
          if (r() < 0.2) await new Promise((done) => setTimeout(done, 0));
          assertBudgets(256 * MB, all);
        }
        for (const b of live) {
          if (isG) promised.set(ctx, promised.get(ctx)! - b.size);
          b.free();
        }
      });
    await Promise.all(Array.from({ length: 60 }, (_, id) => session(id)));
    assert.deepEqual(refusedGuaranteed, [], "GUARANTEED refused inside its reservation");
  },
  { hostMemory: 256 * MB },
);

backendTest(
  "an allocation past maxVram outright still calls the pressure handlers, then is refused whatever they say",
  () => {
    const a = createContext("a", { maxVram: 16 * MB });
    const kept = a.alloc(4 * MB, { evictable: true });
    const seen: [string, number, number][] = [];
    const off = onMemoryPressure((ctx, requested, available) => {
      seen.push([ctx.name, requested, available]);
      return true;
    });
    try {
      assert.throws(() => a.alloc(32 * MB), isBudgetError(a));
      assert.deepEqual(seen, [["a", 32 * MB, 12 * MB]]);
      assert.equal(
        kept.state,
        "resident",
        "nothing is evicted for a request no room could satisfy",
      );
      const thrower = onMemoryPressure(() => {
        throw new Error("shed load");
      });
      try {
        assert.throws(
          () => a.alloc(32 * MB),
          (e) =>
            isBudgetError(a)(e) && (e as Error).cause instanceof Error &&
            ((e as Error).cause as Error).message === "shed load",
        );
      } finally {
        thrower();
      }
    } finally {
      off();
    }
  },
  { hostMemory: 128 * MB },
);
