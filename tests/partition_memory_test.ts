/**
 * Partition memory limits are enforced (issue 11): the contexts created in
 * a partition with `PartitionLimits().memory(n)` never hold more than `n`
 * bytes together. Their allocations claim through the partition's account
 * within the device's limit owner, and are refused as past a context's own
 * budget (`VramBudgetExceededError`, `available < requested`), their
 * reservations with `AdmissionError`. A `PartitionConfig` hands out no more
 * than the device's `memoryLimit`.
 */
import assert from "node:assert/strict";
import {
  AdmissionError,
  createContext,
  type DeviceBuffer,
  type ExecutionContext,
  getContextUsage,
  initialize,
  MB,
  onMemoryPressure,
  PartitionConfig,
  PartitionLimits,
  PartitionManager,
  QoSPolicy,
  SchedulerError,
  shutdown,
  VramBudgetExceededError,
} from "../mod.ts";
import { backendTest, seededRandom } from "./_helpers.ts";
import { multiDeviceTest } from "./_devices.ts";

const LIMIT = { hostMemory: 64 * MB };

/** Asserts a refusal of `ctx` for `requested` bytes, shaped as a budget refusal. */
function assertRefused(
  ctx: ExecutionContext,
  requested: number,
  fn: () => unknown,
): VramBudgetExceededError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof VramBudgetExceededError, `expected a refusal, got ${caught}`);
  assert.equal(caught.context, ctx);
  assert.equal(caught.requested, requested);
  assert.ok(caught.available < caught.requested, `available ${caught.available} < requested`);
  return caught;
}

function partitioned(memory: number, device?: number): PartitionManager {
  const manager = new PartitionManager(
    new PartitionConfig({ totalMemory: 32 * MB, ...(device === undefined ? {} : { device }) }),
  );
  manager.createPartition("p", "P", new PartitionLimits().memory(memory));
  return manager;
}

backendTest("allocations in a partition stop at its memory limit", () => {
  partitioned(8 * MB);
  const ctx = createContext("inside", { maxVram: 32 * MB, partition: "p" });
  const bufs: DeviceBuffer[] = [ctx.alloc(4 * MB), ctx.alloc(4 * MB)];
  const refusal = assertRefused(ctx, 1 * MB, () => ctx.alloc(1 * MB));
  assert.equal(refusal.available, 0);
  assert.equal(ctx.tallies.allocationFailures, 1);
  // Nothing already allocated was lost; freeing makes room again.
  assert.equal(getContextUsage(ctx).used, 8 * MB);
  bufs.pop()!.free();
  bufs.push(ctx.alloc(2 * MB), ctx.alloc(2 * MB));
  assertRefused(ctx, 512 * 1024, () => ctx.alloc(512 * 1024));
  // A context outside the partition is held by the device's limit only.
  const outside = createContext("outside", { maxVram: 32 * MB });
  using _big = outside.alloc(16 * MB);
  for (const buf of bufs) buf.free();
}, LIMIT);

backendTest("the contexts of a partition share its limit, and each other's caches", () => {
  partitioned(8 * MB);
  const a = createContext("a", { maxVram: 32 * MB, partition: "p" });
  const b = createContext("b", { maxVram: 32 * MB, partition: "p" });
  const first = a.alloc(6 * MB);
  const refusal = assertRefused(b, 4 * MB, () => b.alloc(4 * MB));
  assert.ok(refusal.available <= 2 * MB, `available ${refusal.available}`);
  first.free(); // cached by a: released for b, which shares the partition
  assert.equal(getContextUsage(a).cached, 6 * MB);
  using _b = b.alloc(4 * MB);
  assert.equal(getContextUsage(a).cached, 0);
}, LIMIT);

backendTest(
  "evictable buffers of lower classes in the partition make room, others do not",
  async () => {
    partitioned(8 * MB);
    const bg = createContext("bg", {
      maxVram: 32 * MB,
      qos: QoSPolicy.BEST_EFFORT,
      partition: "p",
    });
    const outside = createContext("outside", { maxVram: 32 * MB, qos: QoSPolicy.BEST_EFFORT });
    const tts = createContext("tts", { maxVram: 32 * MB, partition: "p" });
    const cache = bg.alloc(6 * MB, { evictable: true });
    const elsewhere = outside.alloc(6 * MB, { evictable: true });
    await cache.write(new Uint8Array(6 * MB).fill(3));
    using _tts = tts.alloc(4 * MB);
    assert.equal(cache.state, "evicted"); // the partition's own BEST_EFFORT buffer made room
    assert.equal(elsewhere.state, "resident"); // evicting outside would not have helped
    // Restoring needs room under the partition's limit again: refused while tts holds it.
    await assert.rejects(() => cache.resident(), VramBudgetExceededError);
    const seen = new Uint8Array(4);
    _tts.free();
    await cache.read(seen);
    assert.deepEqual([...seen], [3, 3, 3, 3]);
    cache.free();
    elsewhere.free();
  },
  LIMIT,
);

backendTest("reservations in a partition must fit its limit", () => {
  partitioned(8 * MB);
  assert.throws(
    () => createContext("huge", { maxVram: 9 * MB, qos: QoSPolicy.GUARANTEED, partition: "p" }),
    (e: Error) =>
      e instanceof AdmissionError &&
      /cannot reserve 9437184 bytes in partition "p", only 8388608 of its memory limit/.test(
        e.message,
      ),
  );
  const llm = createContext("llm", { maxVram: 6 * MB, qos: QoSPolicy.GUARANTEED, partition: "p" });
  assert.throws(
    () =>
      createContext("tts", {
        maxVram: 8 * MB,
        baseVram: 4 * MB,
        qos: QoSPolicy.BURSTABLE,
        partition: "p",
      }),
    AdmissionError,
  );
  // A reserved context allocates all of its reservation; the partition's others cannot take it.
  using _weights = llm.alloc(6 * MB);
  const bg = createContext("bg", { maxVram: 8 * MB, qos: QoSPolicy.BEST_EFFORT, partition: "p" });
  using _small = bg.alloc(2 * MB);
  assertRefused(bg, 1 * MB, () => bg.alloc(1 * MB));
  // Outside the partition the same reservation is admitted.
  createContext("big", { maxVram: 9 * MB, qos: QoSPolicy.GUARANTEED });
}, LIMIT);

backendTest("pressure handlers hear of partition refusals, with available < requested", () => {
  partitioned(4 * MB);
  const ctx = createContext("inside", { maxVram: 32 * MB, partition: "p" });
  using _held = ctx.alloc(3 * MB);
  const calls: [ExecutionContext, number, number][] = [];
  const off = onMemoryPressure((c, requested, available) => {
    calls.push([c, requested, available]);
    return false;
  });
  try {
    assertRefused(ctx, 2 * MB, () => ctx.alloc(2 * MB));
  } finally {
    off();
  }
  assert.equal(calls.length, 1);
  assert.equal(calls[0]![0], ctx);
  assert.ok(calls[0]![2] < calls[0]![1], `handler saw available ${calls[0]![2]}`);
}, LIMIT);

backendTest(
  "a sleeping context wakes only when its reservation fits the partition again",
  async () => {
    partitioned(8 * MB);
    const llm = createContext("llm", {
      maxVram: 4 * MB,
      qos: QoSPolicy.GUARANTEED,
      partition: "p",
    });
    const buf = llm.alloc(4 * MB);
    await buf.write(new Uint8Array(4 * MB).fill(9));
    await llm.sleep();
    const other = createContext("other", { maxVram: 32 * MB, partition: "p" });
    const taken = other.alloc(6 * MB);
    await assert.rejects(() => llm.wake(), AdmissionError);
    assert.equal(llm.sleeping, true);
    taken.free();
    other.destroy();
    await llm.wake();
    const seen = new Uint8Array(4);
    await buf.read(seen);
    assert.deepEqual([...seen], [9, 9, 9, 9]);
  },
  LIMIT,
);

backendTest(
  "destroying a partition's contexts gives their claims back to it and the device",
  (sched) => {
    const manager = partitioned(8 * MB);
    const before = sched.deviceAt().limitOwner.claimed;
    const ctx = createContext("inside", {
      maxVram: 8 * MB,
      qos: QoSPolicy.GUARANTEED,
      partition: "p",
    });
    ctx.alloc(2 * MB);
    ctx.destroy();
    assert.equal(sched.deviceAt().limitOwner.claimed, before);
    assert.equal(manager.memoryAccount("p")!.claimed, 0);
    // The whole limit is there again.
    createContext("again", { maxVram: 8 * MB, qos: QoSPolicy.GUARANTEED, partition: "p" })
      .destroy();
  },
  LIMIT,
);

Deno.test("a PartitionConfig hands out no more than the device's memoryLimit", () => {
  initialize({ backend: "host", hostMemory: 128 * MB, memoryLimit: 64 * MB });
  try {
    assert.throws(
      () => new PartitionManager(new PartitionConfig({ totalMemory: 65 * MB })),
      (e: Error) =>
        e instanceof RangeError &&
        /totalMemory must not exceed the memoryLimit of 67108864 bytes, got 68157440/.test(
          e.message,
        ),
    );
    const manager = new PartitionManager(new PartitionConfig({ totalMemory: 64 * MB }));
    assert.equal(manager.totalMemory, 64 * MB);
    manager.close();
    assert.equal(new PartitionManager().totalMemory, 64 * MB); // the default
  } finally {
    shutdown();
  }
});

multiDeviceTest("a partition's limit holds its own device's contexts only", (sched) => {
  partitioned(4 * MB, 1);
  const inside = createContext("inside", { maxVram: 32 * MB, device: 1, partition: "p" });
  const zero = createContext("zero", { maxVram: 32 * MB, device: 0 });
  using _a = inside.alloc(4 * MB);
  assertRefused(inside, 1 * MB, () => inside.alloc(1 * MB));
  using _b = zero.alloc(16 * MB);
  const one = createContext("one", { maxVram: 32 * MB, device: 1 });
  using _c = one.alloc(16 * MB);
  assert.equal(sched.deviceAt(1).limitOwner.claimed, 20 * MB);
  assert.equal(sched.deviceAt(0).limitOwner.claimed, 16 * MB);
});

backendTest("a partition without a memory limit leaves its contexts to the device's limit", () => {
  const manager = new PartitionManager(new PartitionConfig({ totalMemory: 32 * MB }));
  manager.createPartition("c", "Compute only", new PartitionLimits().compute(0.25));
  assert.equal(manager.memoryAccount("c"), undefined);
  const ctx = createContext("inside", { maxVram: 48 * MB, partition: "c" });
  using _big = ctx.alloc(40 * MB); // past the manager's totalMemory: no partition limit applies
}, LIMIT);

backendTest(
  "random allocations, frees, evictions and destroys never push a partition past its limit",
  async (sched) => {
    const limit = 12 * MB;
    const manager = partitioned(limit);
    const account = manager.memoryAccount("p")!;
    const random = seededRandom(20261201);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
    const kinds = [
      { maxVram: 6 * MB, qos: QoSPolicy.GUARANTEED },
      { maxVram: 16 * MB, baseVram: 2 * MB, qos: QoSPolicy.BURSTABLE },
      { maxVram: 16 * MB, qos: QoSPolicy.BEST_EFFORT },
    ];
    let named = 0;
    const inside: ExecutionContext[] = [];
    const outside = createContext("outside", { maxVram: 16 * MB, qos: QoSPolicy.BEST_EFFORT });
    const buffers: DeviceBuffer[] = [];
    let refusals = 0, evictions = 0;
    const claim = (ctx: ExecutionContext) => {
      const u = getContextUsage(ctx);
      return Math.max(u.used + u.cached, u.reserved);
    };
    for (let step = 0; step < 600; step++) {
      const roll = random();
      try {
        if (roll < 0.08 || inside.length === 0) {
          inside.push(createContext(`c${named++}`, { ...pick(kinds), partition: "p" }));
        } else if (roll < 0.12) {
          const ctx = pick(inside);
          inside.splice(inside.indexOf(ctx), 1);
          ctx.destroy();
        } else if (roll < 0.65) {
          const ctx = random() < 0.85 ? pick(inside) : outside;
          const size = pick([64 * 1024, 512 * 1024, 1 * MB, 3 * MB]);
          const buf = ctx.alloc(size, { evictable: random() < 0.5 });
          if (random() < 0.3) await buf.write(new Uint8Array(16).fill(step & 0xff));
          buffers.push(buf);
        } else if (roll < 0.9 && buffers.length > 0) {
          const buf = buffers.splice(Math.floor(random() * buffers.length), 1)[0]!;
          if (buf.context.alive) buf.free();
        } else if (buffers.length > 0) {
          const buf = pick(buffers);
          if (buf.context.alive && buf.state === "evicted") await buf.resident();
        }
      } catch (error) {
        if (!(error instanceof VramBudgetExceededError || error instanceof AdmissionError)) {
          throw error;
        }
        if (error instanceof VramBudgetExceededError) {
          assert.ok(error.available < error.requested);
        }
        refusals++;
      }
      if (buffers.some((b) => !b.freed && b.state === "evicted")) evictions++;
      const members = inside.filter((c) => c.alive);
      const sum = members.reduce((total, ctx) => total + claim(ctx), 0);
      assert.equal(account.claimed, sum, `step ${step}: the partition's account is its claims`);
      assert.ok(sum <= limit, `step ${step}: the partition holds ${sum} of ${limit} bytes`);
      const device = sched.deviceAt().limitOwner;
      assert.ok(device.claimed <= device.limit, `step ${step}: device past its limit`);
      assert.equal(
        device.claimed,
        sum + claim(outside),
        `step ${step}: the device's account is every context's claims`,
      );
    }
    assert.ok(refusals > 0, "the limit was never reached: the test would prove little");
    assert.ok(evictions > 0, "nothing was ever evicted: the test would prove little");
    for (const buf of buffers) buf.free();
  },
  LIMIT,
);

backendTest(
  "re-entrant handlers under a partition's limit: freeing makes room, destroying refuses cleanly",
  (sched) => {
    const manager = partitioned(4 * MB);
    const a = createContext("a", { maxVram: 32 * MB, partition: "p" });
    const b = createContext("b", { maxVram: 32 * MB, partition: "p" });
    let held: DeviceBuffer | undefined = a.alloc(3 * MB);
    // The handler frees a's buffer (and drops a's cache): the allocation of b then fits.
    let off = onMemoryPressure((ctx) => {
      if (ctx === b && held) {
        held.free();
        held = undefined;
        a.pool.trim();
      }
      return true;
    });
    using got = b.alloc(2 * MB);
    off();
    assert.equal(got.size, 2 * MB);
    // The handler destroys the asking context: refused with SchedulerError, nothing leaked.
    const c = createContext("c", { maxVram: 32 * MB, partition: "p" });
    off = onMemoryPressure((ctx) => {
      ctx.destroy();
      return true;
    });
    assert.throws(() => c.alloc(3 * MB), SchedulerError);
    off();
    assert.equal(c.alive, false);
    const account = manager.memoryAccount("p")!;
    assert.equal(account.claimed, getContextUsage(b).used + getContextUsage(b).cached);
    assert.ok(sched.deviceAt().limitOwner.claimed >= account.claimed);
    // A handler that allocates in the partition itself cannot push it past its limit.
    const d = createContext("d", { maxVram: 32 * MB, partition: "p" });
    off = onMemoryPressure((ctx) => {
      if (ctx === d) {
        try {
          a.alloc(1 * MB); // takes what d wanted
        } catch {
          // refused: fine too
        }
      }
      return true;
    });
    try {
      d.alloc(2 * MB);
    } catch (error) {
      assert.ok(error instanceof VramBudgetExceededError);
    }
    off();
    assert.ok(account.claimed <= 4 * MB, `the partition holds ${account.claimed} bytes`);
  },
  LIMIT,
);
