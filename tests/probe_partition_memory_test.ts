/**
 * Adversarial tests of enforced partition memory limits (README "SM
 * partitions": memory limits are enforced; API.md PartitionManager),
 * written from API.md and README.md only.
 */
import assert from "node:assert/strict";
import {
  AdmissionError,
  createContext,
  destroyContext,
  getAvailableVram,
  getContextUsage,
  getMetrics,
  initialize,
  MB,
  onMemoryPressure,
  PartitionConfig,
  PartitionLimits,
  PartitionManager,
  QoSPolicy,
  SchedulerError,
  shutdown,
} from "../mod.ts";
import {
  assertArgError,
  assertBudgetRefusal,
  BAD_VALUES,
  caught,
  outcome,
  probe,
  rejected,
} from "./_probe.ts";

function manager(memory: number, total = 128 * MB, device?: number): PartitionManager {
  const m = new PartitionManager(
    new PartitionConfig({ totalMemory: total, ...(device === undefined ? {} : { device }) }),
  );
  m.createPartition("p", "P", new PartitionLimits().memory(memory));
  return m;
}

probe("a GUARANTEED context in a partition can use its whole reservation, others cannot", () => {
  manager(32 * MB);
  const g = createContext("g", { maxVram: 24 * MB, qos: QoSPolicy.GUARANTEED, partition: "p" });
  const be = createContext("be", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT, partition: "p" });
  const small = be.alloc(8 * MB);
  assertBudgetRefusal(caught(() => be.alloc(1 * MB)), be, 1 * MB);
  // The reservation is real: g gets all 24 MiB while be holds its 8.
  const bufs = [g.alloc(16 * MB), g.alloc(8 * MB)];
  assert.equal(getContextUsage(g).used, 24 * MB);
  assertBudgetRefusal(caught(() => g.alloc(1 * MB)), g, 1 * MB); // its own maxVram
  for (const b of bufs) b.free();
  small.free();
});

probe("a partition's reservation is taken from the device too", () => {
  const before = getAvailableVram();
  manager(64 * MB);
  const g = createContext("g", { maxVram: 48 * MB, qos: QoSPolicy.GUARANTEED, partition: "p" });
  assert.equal(getAvailableVram(), before - 48 * MB);
  destroyContext(g);
  assert.equal(getAvailableVram(), before);
});

probe("a partition's limit does not make room that the device lacks", () => {
  // Device of 256 MiB; the partition may hold 128, but outside contexts took the device.
  manager(128 * MB, 256 * MB);
  const outside = createContext("outside", {
    maxVram: 256 * MB,
    qos: QoSPolicy.GUARANTEED,
  });
  void outside;
  const inside = createContext("inside", { maxVram: 64 * MB, partition: "p" });
  assertBudgetRefusal(caught(() => inside.alloc(1 * MB)), inside, 1 * MB);
  assert.throws(
    () => createContext("g", { maxVram: 1 * MB, qos: QoSPolicy.GUARANTEED, partition: "p" }),
    AdmissionError,
  );
});

probe("a cache held in a partition is released for an allocation outside it", () => {
  manager(128 * MB, 256 * MB);
  const inside = createContext("inside", { maxVram: 128 * MB, partition: "p" });
  const b = inside.alloc(128 * MB);
  b.free();
  const cached = getContextUsage(inside).cached;
  assert.ok(cached > 0 || getContextUsage(inside).used === 0);
  assert.equal(getAvailableVram(), 256 * MB, "cached memory counts as available");
  const outside = createContext("outside", { maxVram: 256 * MB });
  const big = outside.alloc(256 * MB);
  assert.equal(getContextUsage(inside).cached, 0);
  big.free();
});

probe("a cache held outside a partition is released for an allocation inside it", () => {
  manager(128 * MB, 256 * MB);
  const outside = createContext("outside", { maxVram: 256 * MB });
  outside.alloc(200 * MB).free();
  const inside = createContext("inside", { maxVram: 128 * MB, partition: "p" });
  const b = inside.alloc(128 * MB);
  assert.equal(getContextUsage(inside).used, 128 * MB);
  b.free();
});

probe("a BURSTABLE base in a partition counts against the limit; growth above base too", () => {
  manager(32 * MB);
  const tts = createContext("tts", {
    maxVram: 32 * MB,
    baseVram: 16 * MB,
    qos: QoSPolicy.BURSTABLE,
    partition: "p",
  });
  const be = createContext("be", { maxVram: 32 * MB, qos: QoSPolicy.BEST_EFFORT, partition: "p" });
  const x = be.alloc(16 * MB);
  assertBudgetRefusal(caught(() => be.alloc(1 * MB)), be, 1 * MB);
  // tts has its 16 MiB reserved; past base it needs spare memory of the partition, of which
  // there is none while be holds 16 MiB.
  const y = tts.alloc(16 * MB);
  assertBudgetRefusal(caught(() => tts.alloc(1 * MB)), tts, 1 * MB);
  x.free();
  const z = tts.alloc(8 * MB); // be's cache released for tts
  assert.ok(getContextUsage(tts).used + getContextUsage(be).used <= 32 * MB);
  y.free();
  z.free();
});

probe("eviction inside a partition brings evictable data back bit-exact", async () => {
  manager(32 * MB);
  const be = createContext("be", { maxVram: 32 * MB, qos: QoSPolicy.BEST_EFFORT, partition: "p" });
  const g = createContext("g", { maxVram: 32 * MB, qos: QoSPolicy.GUARANTEED, partition: "p" });
  void g;
  // GUARANTEED reserves all 32: be has nothing.
  assertBudgetRefusal(caught(() => be.alloc(1 * MB)), be, 1 * MB);
  destroyContext(g);
  const ev = be.alloc(16 * MB, { evictable: true });
  const pattern = new Uint8Array(16 * MB).map((_, i) => (i * 7 + 3) & 0xff);
  await ev.write(pattern);
  // A GUARANTEED creation in the partition needs be's bytes: be is evicted.
  const g2 = createContext("g2", { maxVram: 24 * MB, qos: QoSPolicy.GUARANTEED, partition: "p" });
  const gb = g2.alloc(24 * MB);
  assert.equal(getContextUsage(be).evicted, 16 * MB);
  assert.equal(getContextUsage(be).used, 0);
  // be cannot come back while g2 holds 24 of 32.
  await assert.rejects(() => ev.resident());
  gb.free();
  destroyContext(g2);
  const back = new Uint8Array(16 * MB);
  await ev.read(back);
  assert.deepEqual(back, pattern);
  assert.equal(getContextUsage(be).evicted, 0);
});

probe("a pressure handler that returns false evicts nothing in the partition", async () => {
  manager(32 * MB);
  const be = createContext("be", { maxVram: 32 * MB, qos: QoSPolicy.BEST_EFFORT, partition: "p" });
  const ev = be.alloc(24 * MB, { evictable: true });
  await ev.write(new Uint8Array(16).fill(5));
  const g = createContext("g", { maxVram: 32 * MB, partition: "p" });
  const off = onMemoryPressure(() => false);
  try {
    assertBudgetRefusal(caught(() => g.alloc(16 * MB)), g, 16 * MB);
  } finally {
    off();
  }
  assert.equal(getContextUsage(be).evicted, 0);
  assert.equal(getContextUsage(be).used, 24 * MB);
  // With no handler the scheduler makes room.
  const b = g.alloc(16 * MB);
  assert.equal(getContextUsage(be).evicted, 24 * MB);
  b.free();
  const seen = new Uint8Array(16);
  await ev.read(seen);
  assert.deepEqual([...seen], new Array(16).fill(5));
});

probe("a handler that creates a context taking the partition's room: the limit still holds", () => {
  manager(32 * MB);
  const a = createContext("a", { maxVram: 32 * MB, partition: "p" });
  const held = a.alloc(24 * MB);
  let thief: ReturnType<typeof createContext> | undefined;
  const off = onMemoryPressure((ctx) => {
    if (ctx === a && thief === undefined) {
      held.free();
      // Someone else takes the room that was just made, inside the handler.
      thief = createContext("thief", {
        maxVram: 32 * MB,
        qos: QoSPolicy.GUARANTEED,
        partition: "p",
      });
    }
    return true;
  });
  try {
    assertBudgetRefusal(caught(() => a.alloc(16 * MB)), a, 16 * MB);
  } finally {
    off();
  }
  assert.ok(thief !== undefined);
  assert.equal(getContextUsage(a).used, 0);
});

probe("a handler that deletes the partition during an allocation in it", () => {
  const m = manager(16 * MB);
  const a = createContext("a", { maxVram: 64 * MB, partition: "p" });
  const held = a.alloc(12 * MB);
  let deleteError: unknown;
  const off = onMemoryPressure(() => {
    try {
      m.deletePartition("p");
    } catch (error) {
      deleteError = error;
    }
    return true;
  });
  const result = outcome(() => a.alloc(8 * MB)); // allowed to succeed or be refused
  off();
  // Either the delete is refused while contexts live in the partition, or the allocation
  // decides afresh; in no case may a context hold more than the limit it was promised while
  // the partition exists.
  if (m.getPartition("p") !== undefined) {
    assert.ok(getContextUsage(a).used <= 16 * MB, `used ${getContextUsage(a).used}`);
  }
  void deleteError;
  if (!(result instanceof Error)) (result as { free(): void }).free();
  held.free();
});

probe("deleting a partition that still has contexts changes nothing or frees them cleanly", () => {
  const m = manager(16 * MB);
  const a = createContext("a", { maxVram: 64 * MB, partition: "p" });
  const held = a.alloc(8 * MB);
  const before = getAvailableVram();
  let error: unknown;
  try {
    m.deletePartition("p");
  } catch (e) {
    error = e;
  }
  if (error !== undefined) {
    assert.ok(error instanceof Error);
    assert.ok(m.getPartition("p") !== undefined, "a refused delete keeps the partition");
    assert.equal(getContextUsage(a).used, 8 * MB);
    assertBudgetRefusal(caught(() => a.alloc(9 * MB)), a, 9 * MB);
  } else {
    assert.equal(m.getPartition("p"), undefined);
  }
  assert.equal(getAvailableVram(), before);
  held.free();
});

probe("an unknown partition is a RangeError naming partition, and creates nothing", () => {
  manager(16 * MB);
  const before = getMetrics().contexts.length;
  const e = caught(() => createContext("x", { maxVram: 1 * MB, partition: "nope" }));
  assertArgError(e, "partition");
  assert.ok((e as Error).message.includes("nope"));
  assert.equal(getMetrics().contexts.length, before);
  createContext("x", { maxVram: 1 * MB, partition: "p" }); // the name is free
});

probe("a partition of another device is refused for a context placed elsewhere", () => {
  manager(16 * MB, 128 * MB, 1);
  const e = caught(() => createContext("x", { maxVram: 1 * MB, partition: "p", device: 0 }));
  assert.ok(e instanceof RangeError || e instanceof AdmissionError, `got ${e}`);
  const ok = createContext("y", { maxVram: 32 * MB, partition: "p", device: 1 });
  using _b = ok.alloc(16 * MB);
  assertBudgetRefusal(caught(() => ok.alloc(1 * MB)), ok, 1 * MB);
}, { hostDevices: 2 });

probe("sleep releases a partition's claims; wake refused while the partition is full", async () => {
  manager(32 * MB);
  const a = createContext("a", { maxVram: 32 * MB, partition: "p" }); // BURSTABLE, base 0
  const buf = a.alloc(24 * MB);
  const data = new Uint8Array(24 * MB).map((_, i) => i % 251);
  await buf.write(data);
  const ptr = buf.ptr;
  await a.sleep();
  assert.equal(getContextUsage(a).used, 0);
  assert.equal(getContextUsage(a).evicted, 24 * MB);
  const b = createContext("b", { maxVram: 32 * MB, partition: "p" });
  const taken = b.alloc(16 * MB);
  const e = await rejected(() => a.wake());
  assert.ok(e instanceof AdmissionError, `got ${e}`);
  assert.equal(a.sleeping, true);
  assert.equal(getContextUsage(a).evicted, 24 * MB);
  assert.ok(getContextUsage(a).used + getContextUsage(b).used <= 32 * MB);
  taken.free();
  await a.wake();
  assert.ok(Deno.UnsafePointer.equals(buf.ptr, ptr));
  const back = new Uint8Array(24 * MB);
  await buf.read(back);
  assert.deepEqual(back, data);
});

probe("a pressure handler that puts the asker to sleep", async () => {
  manager(16 * MB);
  const a = createContext("a", { maxVram: 64 * MB, partition: "p" });
  const held = a.alloc(12 * MB);
  let slept: Promise<void> | undefined;
  const off = onMemoryPressure((ctx) => {
    if (ctx === a && slept === undefined) slept = a.sleep();
    return true;
  });
  const result = outcome(() => a.alloc(8 * MB)); // allowed to succeed or be refused
  off();
  // No context of the partition holds more than its limit at any time.
  assert.ok(getContextUsage(a).used <= 16 * MB);
  await slept?.catch(() => {});
  if (!(result instanceof Error)) (result as { free(): void }).free();
  if (a.sleeping) await a.wake();
  held.free();
});

probe("a pressure handler that shuts the scheduler down during a partition allocation", () => {
  manager(16 * MB);
  const a = createContext("a", { maxVram: 64 * MB, partition: "p" });
  a.alloc(12 * MB);
  const off = onMemoryPressure(() => {
    shutdown();
    return true;
  });
  void off;
  const e = caught(() => a.alloc(8 * MB));
  assert.ok(e instanceof SchedulerError, `got ${e}`);
});

probe("PartitionLimits.memory and .compute refuse bad values of every type", () => {
  for (const [label, value] of BAD_VALUES) {
    assertArgError(
      caught(() => new PartitionLimits().memory(value as number)),
      "memory",
      `memory(${label})`,
    );
    assertArgError(
      caught(() => new PartitionLimits().compute(value as number)),
      "compute",
      `compute(${label})`,
    );
  }
  // A bad value never silently drops a limit set before.
  const set = new PartitionLimits().memory(8 * MB).compute(0.5);
  assertArgError(caught(() => set.memory(undefined as unknown as number)), "memory");
  assertArgError(caught(() => set.compute(undefined as unknown as number)), "compute");
  assert.equal(set.memoryLimit, 8 * MB);
  assert.equal(set.computeLimit, 0.5);
  for (const share of [0, -0.1, 1.01, 2]) {
    assertArgError(caught(() => new PartitionLimits().compute(share)), "compute", `${share}`);
  }
});

probe("PartitionConfig refuses bad totalMemory and device values", () => {
  for (const [label, value] of BAD_VALUES) {
    if (value === undefined) continue; // the default
    assertArgError(
      caught(() => new PartitionManager(new PartitionConfig({ totalMemory: value as number }))),
      "totalMemory",
      `totalMemory ${label}`,
    );
    assertArgError(
      caught(() => new PartitionManager(new PartitionConfig({ device: value as number }))),
      "device",
      `device ${label}`,
    );
  }
  assertArgError(
    caught(() => new PartitionManager(new PartitionConfig({ device: 2 }))),
    "device",
    "device 2 of 2",
  );
  // Nothing was left half-made: a manager can still open on each device.
  new PartitionManager(new PartitionConfig({ device: 0 })).close();
  new PartitionManager(new PartitionConfig({ device: 1 })).close();
}, { hostDevices: 2 });

probe("createPartition refuses bad ids, names and limits, changing nothing", () => {
  const m = new PartitionManager(new PartitionConfig({ totalMemory: 64 * MB }));
  const limits = new PartitionLimits().memory(8 * MB);
  assertArgError(caught(() => m.createPartition("", "n", limits)), "id");
  for (const bad of [undefined, null, 1, {}, Symbol("s")]) {
    assert.ok(caught(() => m.createPartition(bad as string, "n", limits)) instanceof TypeError);
    assert.ok(
      caught(() => m.createPartition("x", "n", bad as PartitionLimits)) instanceof TypeError,
    );
  }
  assert.deepEqual(m.listPartitions(), []);
  assert.equal(m.availableMemory, 64 * MB);
  m.createPartition("x", "X", limits);
  const dup = caught(() => m.createPartition("x", "X", limits));
  assert.ok(dup instanceof Error);
  assert.equal(m.listPartitions().length, 1);
  assert.equal(m.availableMemory, 56 * MB);
});

probe("over-subscribed partition memory is an AdmissionError that changes nothing", () => {
  const m = new PartitionManager(new PartitionConfig({ totalMemory: 64 * MB }));
  m.createPartition("a", "A", new PartitionLimits().memory(40 * MB));
  assert.throws(
    () => m.createPartition("b", "B", new PartitionLimits().memory(25 * MB)),
    AdmissionError,
  );
  assert.equal(m.getPartition("b"), undefined);
  m.createPartition("b", "B", new PartitionLimits().memory(24 * MB));
  m.deletePartition("a");
  m.createPartition("c", "C", new PartitionLimits().memory(40 * MB));
});

probe("one manager per device at a time; close() lets another open", () => {
  const m = new PartitionManager(new PartitionConfig({ totalMemory: 64 * MB }));
  assert.ok(
    caught(() => new PartitionManager(new PartitionConfig({ totalMemory: 64 * MB }))) instanceof
      Error,
  );
  m.close();
  m.close(); // idempotent, like every destroy
  const m2 = new PartitionManager(new PartitionConfig({ totalMemory: 64 * MB }));
  m2.createPartition("p", "P", new PartitionLimits().memory(8 * MB));
});

probe("a closed manager's partition no longer binds new contexts", () => {
  const m = manager(8 * MB);
  m.close();
  const e = caught(() => createContext("x", { maxVram: 1 * MB, partition: "p" }));
  assert.ok(e instanceof Error, `got ${e}`);
});

probe("a manager made before shutdown is dead after it; the next scheduler starts clean", () => {
  const m = manager(8 * MB);
  shutdown();
  assert.ok(
    caught(() => m.createPartition("q", "Q", new PartitionLimits())) instanceof SchedulerError,
  );
  assert.ok(caught(() => m.deletePartition("p")) instanceof SchedulerError);
  assert.ok(caught(() => m.createStream("p")) instanceof SchedulerError);
  // The next scheduler opens a manager on the same device, with the same partition id.
  initialize({ backend: "host", hostMemory: 256 * MB });
  const again = manager(8 * MB);
  const ctx = createContext("a", { maxVram: 64 * MB, partition: "p" });
  using _b = ctx.alloc(8 * MB);
  assertBudgetRefusal(caught(() => ctx.alloc(1 * MB)), ctx, 1 * MB);
  void again;
});

probe("a partition recreated with a smaller limit holds its contexts to the new one", () => {
  const m = new PartitionManager(new PartitionConfig({ totalMemory: 64 * MB }));
  m.createPartition("p", "P", new PartitionLimits().memory(32 * MB));
  const a = createContext("a", { maxVram: 64 * MB, partition: "p" });
  a.alloc(4 * MB).free();
  destroyContext(a);
  m.deletePartition("p");
  m.createPartition("p", "P", new PartitionLimits().memory(8 * MB));
  const b = createContext("b", { maxVram: 64 * MB, partition: "p" });
  using _x = b.alloc(8 * MB);
  assertBudgetRefusal(caught(() => b.alloc(1 * MB)), b, 1 * MB);
});

probe("metrics of partition contexts stay consistent with the limit", () => {
  manager(32 * MB);
  const a = createContext("a", { maxVram: 64 * MB, partition: "p" });
  const b = createContext("b", { maxVram: 64 * MB, partition: "p" });
  const xs = [a.alloc(8 * MB), b.alloc(8 * MB), a.alloc(8 * MB)];
  xs[0]!.free();
  b.alloc(16 * MB);
  const m = getMetrics();
  const total = m.contexts.reduce((s, c) => s + c.used + c.cached, 0);
  assert.ok(total <= 32 * MB, `used + cached ${total}`);
});

probe("totalMemory is checked against its own device's memoryLimit", () => {
  // Device 1's limit is 32 MiB: 33 is refused there, accepted on device 0.
  assertArgError(
    caught(() => new PartitionManager(new PartitionConfig({ totalMemory: 33 * MB, device: 1 }))),
    "totalMemory",
  );
  const m0 = new PartitionManager(new PartitionConfig({ totalMemory: 64 * MB, device: 0 }));
  const m1 = new PartitionManager(new PartitionConfig({ device: 1 }));
  assert.equal(m1.totalMemory, 32 * MB, "the default is the device's own limit");
  m0.createPartition("p", "P", new PartitionLimits().memory(64 * MB));
  assert.throws(
    () => m1.createPartition("p", "P", new PartitionLimits().memory(33 * MB)),
    AdmissionError,
  );
  m1.createPartition("p", "P", new PartitionLimits().memory(32 * MB));
  const ctx = createContext("c", { maxVram: 64 * MB, partition: "p", device: 1 });
  using _b = ctx.alloc(32 * MB);
  assertBudgetRefusal(caught(() => ctx.alloc(1 * MB)), ctx, 1 * MB);
}, { hostDevices: 2, hostMemory: 64 * MB, memoryLimit: [64 * MB, 32 * MB] });
