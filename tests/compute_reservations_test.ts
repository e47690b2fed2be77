import assert from "node:assert/strict";
import {
  AdmissionError,
  createContext,
  type ExecutionContext,
  GB,
  getAvailableVram,
  initialize,
  MB,
  onMemoryPressure,
  PartitionLimits,
  PartitionManager,
  QoSPolicy,
  type Scheduler,
  shutdown,
} from "../mod.ts";
import {
  backendTest,
  d2h,
  expectStatus,
  kernels,
  rawMallocAsync,
  rawPool,
  Status,
} from "./_helpers.ts";

const G = QoSPolicy.GUARANTEED;

/** SMs no reservation or partition holds, as a PartitionManager reports them. */
function sharedSms(): number {
  using manager = new PartitionManager();
  return manager.sharedSmCount;
}

function groupSms(sched: Scheduler, groups: number): number {
  return groups * sched.device.smGranularity;
}

backendTest("compute reserves whole SM groups on GUARANTEED and BURSTABLE contexts", (sched) => {
  const { smCount, smGranularity, smGroups } = sched.device;
  if (sched.backend === "host") assert.deepEqual([smCount, smGranularity, smGroups], [132, 8, 16]);
  const llm = createContext("llm", { maxVram: 64 * MB, qos: G, compute: 0.25 });
  assert.equal(llm.compute, 0.25);
  assert.equal(llm.smCount, groupSms(sched, Math.round(0.25 * smGroups)));
  if (sched.backend === "host") assert.equal(llm.smCount, 32);
  const tts = createContext("tts", { maxVram: 64 * MB, qos: QoSPolicy.BURSTABLE, compute: 0.01 });
  assert.equal(tts.compute, 0.01);
  assert.equal(tts.smCount, smGranularity, "at least one group");
  const bg = createContext("bg", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT });
  assert.equal(bg.compute, undefined);
  assert.equal(bg.smCount, 0);
  if (sched.backend === "host") {
    assert.equal(sharedSms(), 132 - 32 - 8, "the rest is shared (with the 4 SMs left over)");
  }
});

backendTest("bad compute values are refused naming compute, and change nothing", (sched) => {
  const before = getAvailableVram();
  for (const bad of [0, 1, 1.5, -0.25, NaN, Infinity, -Infinity]) {
    assert.throws(
      () => createContext("x", { maxVram: 64 * MB, qos: G, compute: bad }),
      (e: unknown) => e instanceof RangeError && /compute/.test(e.message),
      `compute ${bad}`,
    );
  }
  for (const bad of ["0.25", null, {}, true, 1n, [0.25]]) {
    assert.throws(
      () => createContext("x", { maxVram: 64 * MB, qos: G, compute: bad as unknown as number }),
      (e: unknown) => e instanceof TypeError && /compute/.test(e.message),
      `compute ${String(bad)}`,
    );
  }
  assert.throws(
    () => createContext("x", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT, compute: 0.25 }),
    (e: unknown) => e instanceof RangeError && /compute/.test(e.message),
  );
  assert.equal(getAvailableVram(), before, "no memory claimed");
  if (sched.device.smGranularity > 0) assert.equal(sharedSms(), sched.device.smCount);
  const x = createContext("x", { maxVram: 64 * MB, qos: G, compute: 0.25 });
  assert.ok(x.smCount > 0, "the name was left free");
});

backendTest(
  "a reservation leaving no group shared is an AdmissionError that changes nothing",
  (sched) => {
    const { smGroups } = sched.device;
    if (smGroups === 0) return;
    const a = createContext("a", { maxVram: 64 * MB, qos: G, compute: 0.5 });
    const b = createContext("b", { maxVram: 64 * MB, qos: G, compute: 7 / smGroups });
    assert.equal(a.smCount + b.smCount, groupSms(sched, smGroups - 1));
    const shared = sharedSms();
    const vram = getAvailableVram();
    assert.throws(
      () => createContext("c", { maxVram: 64 * MB, qos: QoSPolicy.BURSTABLE, compute: 0.01 }),
      (e: unknown) => e instanceof AdmissionError && /no group shared/.test(e.message),
    );
    assert.equal(sharedSms(), shared);
    assert.equal(getAvailableVram(), vram);
    assert.throws(
      () => createContext("c", { maxVram: 64 * MB, qos: G, compute: 0.99 }),
      AdmissionError,
    );
    // Destroying a reserving context gives its groups back.
    b.destroy();
    const c = createContext("c", { maxVram: 64 * MB, qos: G, compute: 0.25 });
    assert.equal(c.smCount, groupSms(sched, Math.round(0.25 * smGroups)));
    assert.throws(
      () => createContext("d", { maxVram: 64 * MB, qos: G, compute: 0.5 }),
      AdmissionError,
    );
    a.destroy();
    c.destroy();
    assert.equal(sharedSms(), sched.device.smCount, "no reservation left: the whole device");
  },
);

backendTest("compute and partition exclude each other", () => {
  using manager = new PartitionManager();
  manager.createPartition("p", "P", new PartitionLimits().compute(0.25));
  assert.throws(
    () => createContext("x", { maxVram: 64 * MB, qos: G, compute: 0.25, partition: "p" }),
    (e: unknown) => e instanceof RangeError && /compute/.test(e.message),
  );
});

backendTest("reservations and static partitions draw from the same groups", (sched) => {
  if (sched.device.smGroups !== 16) return;
  const manager = new PartitionManager();
  manager.createPartition("half", "Half", new PartitionLimits().compute(0.5));
  assert.throws(
    () => createContext("r", { maxVram: 64 * MB, qos: G, compute: 0.5 }),
    AdmissionError,
    "8 + 8 groups would leave none shared",
  );
  const r = createContext("r", { maxVram: 64 * MB, qos: G, compute: 0.25 });
  assert.equal(r.smCount, 32);
  assert.equal(manager.getPartition("half")!.smCount, 64, "the partition keeps its SMs");
  if (sched.backend === "host") assert.equal(manager.sharedSmCount, 132 - 64 - 32);
  // 8 + 4 partition groups and 4 reserved: no group would stay shared.
  assert.throws(
    () => manager.createPartition("q", "Q", new PartitionLimits().compute(0.25)),
    (e: unknown) => e instanceof AdmissionError && /compute reservations/.test(e.message),
  );
  assert.deepEqual(manager.listPartitions().map((p) => p.id), ["half"]);
  manager.createPartition("q", "Q", new PartitionLimits().compute(0.2));
  assert.equal(manager.getPartition("q")!.smCount, 24);
  r.destroy();
  manager.createPartition("z", "Z", new PartitionLimits().compute(0.25));
  assert.deepEqual(manager.listPartitions().map((p) => p.smCount), [64, 24, 32]);
});

/** Writes and reads back through ctx, checking the bytes. */
async function roundTrip(ctx: ExecutionContext, seed: number): Promise<void> {
  using buf = ctx.alloc(1 * MB);
  const data = new Uint8Array(1 * MB).map((_, i) => (i * seed) & 0xff);
  await buf.write(data);
  const back = new Uint8Array(1 * MB);
  await buf.read(back);
  assert.deepEqual(back, data);
}

backendTest("streams keep working and in order while reservations come and go", async () => {
  const llm = createContext("llm", { maxVram: 256 * MB, qos: G, compute: 0.25 });
  const bg = createContext("bg", { maxVram: 256 * MB, qos: QoSPolicy.BEST_EFFORT });
  for (let i = 0; i < 6; i++) {
    const data = new Uint8Array(4 * MB).fill(i + 1);
    const buf = bg.alloc(4 * MB);
    const writing = buf.write(data); // queued before the layout changes
    const other = createContext(`r${i}`, { maxVram: 16 * MB, qos: G, compute: 0.125 });
    await writing;
    const back = new Uint8Array(4 * MB);
    await buf.read(back);
    assert.deepEqual(back, data, `round ${i}`);
    buf.free();
    await roundTrip(llm, i + 3);
    await roundTrip(other, i + 5);
    other.destroy();
  }
});

backendTest(
  "on CUDA a reserving context runs on its SMs and the shared ones; others on the shared",
  (sched) => {
    const llm = createContext("llm", { maxVram: 64 * MB, qos: G, compute: 0.25 });
    const plain = createContext("plain", { maxVram: 64 * MB, qos: QoSPolicy.BURSTABLE });
    const bg = createContext("bg", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT });
    const blocks = 8 * sched.device.smCount;
    const pool = rawPool();
    const seen = new Map<string, Set<number>>();
    for (const ctx of [llm, plain, bg]) {
      const stream = ctx.stream;
      const buf = rawMallocAsync(pool, stream.nativeHandle("test"), blocks * 4);
      assert.equal(kernels(sched.backend).gs_sm_ids(stream.handle, buf, blocks, 20_000n), 0);
      const ids = new Uint32Array(blocks);
      expectStatus(d2h(new Uint8Array(ids.buffer), buf, stream.nativeHandle("test")), Status.OK);
      stream.synchronizeSync();
      seen.set(ctx.name, new Set(ids));
    }
    if (sched.backend !== "cuda" || sched.device.smGranularity === 0) return;
    const shared = sharedSms();
    const llmIds = seen.get("llm")!;
    assert.ok(llmIds.size > shared, `llm used ${llmIds.size} SMs, more than the ${shared} shared`);
    assert.ok(llmIds.size <= shared + llm.smCount);
    for (const name of ["plain", "bg"]) {
      const ids = seen.get(name)!;
      assert.ok(ids.size <= shared, `${name} used ${ids.size} SMs, ${shared} are shared`);
      const inReserved = [...llmIds].filter((id) => ids.has(id)).length;
      assert.ok(ids.size - inReserved >= 0);
    }
    // The reserved SMs are the ones llm used that the others never touched.
    const others = new Set([...seen.get("plain")!, ...seen.get("bg")!]);
    const reservedSeen = [...llmIds].filter((id) => !others.has(id)).length;
    assert.ok(reservedSeen > 0, `${reservedSeen} SMs only llm ran on`);
  },
  { hostMemory: 1 * GB },
);

backendTest(
  "shutdown with reservations held, then a fresh scheduler has every SM shared",
  (sched) => {
    const llm = createContext("llm", { maxVram: 16 * MB, qos: G, compute: 0.5 });
    const manager = new PartitionManager();
    manager.createPartition("p", "P", new PartitionLimits().compute(0.25));
    shutdown();
    llm.destroy(); // after shutdown: a no-op, not an error
    const again = initialize({ backend: sched.backend });
    using m2 = new PartitionManager();
    assert.equal(m2.sharedSmCount, again.device.smCount);
    const big = createContext("llm", { maxVram: 16 * MB, qos: G, compute: 0.9 });
    assert.ok(big.smCount > 0 || again.device.smGranularity === 0);
  },
);

backendTest("reservations made and released many times leak no partition", (sched) => {
  const keep = createContext("keep", {
    maxVram: 16 * MB,
    qos: QoSPolicy.BURSTABLE,
    compute: 0.125,
  });
  for (let i = 0; i < 300; i++) {
    const share = [0.25, 0.5, 0.125][i % 3]!;
    const ctx = createContext(`r${i}`, { maxVram: 4 * MB, qos: G, compute: share });
    assert.equal(
      ctx.smCount,
      sched.device.smGranularity * Math.round(share * sched.device.smGroups),
    );
    ctx.destroy();
  }
  assert.equal(keep.smCount, 2 * sched.device.smGranularity);
  keep.destroy();
  if (sched.device.smGranularity > 0) assert.equal(sharedSms(), sched.device.smCount);
});

backendTest(
  "a pressure handler that destroys a reserving context gives its SMs back",
  async (sched) => {
    const victim = createContext("victim", { maxVram: 64 * MB, qos: G, compute: 0.5 });
    const hungry = createContext("hungry", { maxVram: 1 * GB, qos: QoSPolicy.BEST_EFFORT });
    let destroyed = false;
    const off = onMemoryPressure(() => {
      if (!destroyed) {
        destroyed = true;
        victim.destroy(); // its 64 MiB and its SM groups go back, from inside the allocation
      }
      return true;
    });
    try {
      const spare = getAvailableVram();
      const buf = hungry.alloc(spare + 32 * MB);
      assert.ok(destroyed && !victim.alive);
      await roundTrip(hungry, 7);
      buf.free();
    } finally {
      off();
    }
    if (sched.device.smGranularity > 0) assert.equal(sharedSms(), sched.device.smCount);
    const next = createContext("next", { maxVram: 16 * MB, qos: G, compute: 0.9 });
    assert.ok(next.smCount > 0 || sched.device.smGranularity === 0);
  },
  { hostMemory: 256 * MB },
);
