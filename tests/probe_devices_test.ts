/**
 * Adversarial tests of several simulated devices (API.md "Several
 * devices", README "Several devices"): placement, per-device limits,
 * copies and waits across devices, written from API.md and README.md only.
 */
import assert from "node:assert/strict";
import {
  AdmissionError,
  createContext,
  destroyContext,
  GB,
  getAvailableVram,
  getContextUsage,
  getMetrics,
  initialize,
  MB,
  MemoryPool,
  PartitionConfig,
  PartitionLimits,
  PartitionManager,
  QoSPolicy,
  recordEvent,
  SchedulerError,
  shutdown,
  waitEvent,
} from "../mod.ts";
import {
  assertArgError,
  assertBudgetRefusal,
  BAD_VALUES,
  caught,
  probe,
  rejected,
} from "./_probe.ts";

const TWO = { hostDevices: 2 };

function pattern(n: number, seed: number): Uint8Array {
  return new Uint8Array(n).map((_, i) => (i * 31 + seed) & 0xff);
}

Deno.test("[probe] initialize refuses bad hostDevices, memoryLimit arrays and deviceId", () => {
  const bad: [Record<string, unknown>, string][] = [
    [{ hostDevices: 0 }, "hostDevices"],
    [{ hostDevices: -1 }, "hostDevices"],
    [{ hostDevices: 65 }, "hostDevices"],
    [{ hostDevices: 1.5 }, "hostDevices"],
    [{ hostDevices: NaN }, "hostDevices"],
    [{ hostDevices: "2" }, "hostDevices"],
    [{ hostDevices: null }, "hostDevices"],
    [{ hostDevices: 2, memoryLimit: [1 * GB] }, "memoryLimit"],
    [{ hostDevices: 2, memoryLimit: [1 * GB, 1 * GB, 1 * GB] }, "memoryLimit"],
    [{ hostDevices: 2, memoryLimit: [1 * GB, -1] }, "memoryLimit"],
    [{ hostDevices: 2, memoryLimit: [1 * GB, NaN] }, "memoryLimit"],
    [{ hostDevices: 2, memoryLimit: [1 * GB, "1"] }, "memoryLimit"],
    [{ hostDevices: 2, memoryLimit: [] }, "memoryLimit"],
    [{ hostDevices: 2, deviceId: 2 }, "deviceId"],
    [{ hostDevices: 2, deviceId: -1 }, "deviceId"],
    [{ hostDevices: 2, deviceId: 0.5 }, "deviceId"],
    [{ hostDevices: 2, deviceId: "1" }, "deviceId"],
  ];
  for (const [options, option] of bad) {
    const e = caught(() => initialize({ backend: "host", hostMemory: 64 * MB, ...options }));
    assertArgError(e, option, JSON.stringify(options));
  }
  // None of them left a scheduler behind: initialize works, once.
  const sched = initialize({ backend: "host", hostDevices: 2, hostMemory: 64 * MB, deviceId: 1 });
  try {
    assert.equal(sched.devices.length, 2);
    assert.equal(sched.device, sched.devices[1]);
    assert.equal(createContext("x", { maxVram: 1 * MB }).device, 1);
    assert.ok(caught(() => initialize({ backend: "host" })) instanceof Error);
  } finally {
    shutdown();
  }
});

probe("getAvailableVram(device) refuses bad indices of every type, naming device", () => {
  for (const [label, value] of BAD_VALUES) {
    if (value === undefined) continue; // the default device
    assertArgError(caught(() => getAvailableVram(value as number)), "device", label);
  }
  assertArgError(caught(() => getAvailableVram(2)), "device", "2");
  assert.equal(getAvailableVram(undefined), getAvailableVram(0));
}, { ...TWO, memoryLimit: [64 * MB, 32 * MB] });

probe("memoryLimit by device: each device's budget is its own", () => {
  assert.equal(getAvailableVram(0), 64 * MB);
  assert.equal(getAvailableVram(1), 32 * MB);
  assert.throws(
    () => createContext("big", { maxVram: 33 * MB, qos: QoSPolicy.GUARANTEED, device: 1 }),
    AdmissionError,
  );
  const g = createContext("g", { maxVram: 32 * MB, qos: QoSPolicy.GUARANTEED, device: 1 });
  assert.equal(getAvailableVram(1), 0);
  assert.equal(getAvailableVram(0), 64 * MB);
  const m = getMetrics();
  assert.deepEqual(m.devices.map((d) => d.memoryLimit), [64 * MB, 32 * MB]);
  assert.deepEqual(m.devices.map((d) => d.index), [0, 1]);
  assert.equal(m.contexts.find((c) => c.name === "g")?.device, 1);
  destroyContext(g);
  assert.equal(getAvailableVram(1), 32 * MB);
}, { ...TWO, memoryLimit: [64 * MB, 32 * MB] });

probe("createContext refuses bad devices of every type, naming device, creating nothing", () => {
  for (const [label, value] of BAD_VALUES) {
    if (value === undefined) continue;
    const e = caught(() => createContext("x", { maxVram: 1 * MB, device: value as number }));
    assertArgError(e, "device", label);
  }
  for (const value of [2, "Auto", "", "0"]) {
    assertArgError(
      caught(() => createContext("x", { maxVram: 1 * MB, device: value as number })),
      "device",
      String(value),
    );
  }
  assert.equal(getMetrics().contexts.length, 0);
  assert.equal(createContext("x", { maxVram: 1 * MB }).device, 0);
}, TWO);

probe("device auto: most unreserved memory after it, ties lowest, AdmissionError nowhere", () => {
  // Ties: both empty, lowest index.
  const a = createContext("a", { maxVram: 16 * MB, device: "auto", qos: QoSPolicy.BEST_EFFORT });
  assert.equal(a.device, 0);
  const g = createContext("g", { maxVram: 40 * MB, qos: QoSPolicy.GUARANTEED, device: "auto" });
  assert.equal(g.device, 0);
  const h = createContext("h", { maxVram: 40 * MB, qos: QoSPolicy.GUARANTEED, device: "auto" });
  assert.equal(h.device, 1);
  // 24 MiB unreserved on each: a BURSTABLE base of 20 goes to 0 (tie).
  const t = createContext("t", {
    maxVram: 64 * MB,
    baseVram: 20 * MB,
    qos: QoSPolicy.BURSTABLE,
    device: "auto",
  });
  assert.equal(t.device, 0);
  // 4 left on 0, 24 on 1: 8 fits only on 1.
  const u = createContext("u", { maxVram: 8 * MB, qos: QoSPolicy.GUARANTEED, device: "auto" });
  assert.equal(u.device, 1);
  const before = [getAvailableVram(0), getAvailableVram(1)];
  const e = caught(() =>
    createContext("v", { maxVram: 17 * MB, qos: QoSPolicy.GUARANTEED, device: "auto" })
  );
  assert.ok(e instanceof AdmissionError, `got ${e}`);
  assert.deepEqual([getAvailableVram(0), getAvailableVram(1)], before);
  assert.equal(getMetrics().contexts.some((c) => c.name === "v"), false);
  // Evictable best-effort usage does not count as reserved: "auto" sees past it.
  const be = createContext("be", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT, device: 1 });
  using _x = be.alloc(16 * MB, { evictable: true });
  const w = createContext("w", { maxVram: 16 * MB, qos: QoSPolicy.GUARANTEED, device: "auto" });
  assert.equal(w.device, 1);
  assert.equal(getContextUsage(be).evicted, 16 * MB);
}, { ...TWO, hostMemory: 64 * MB });

probe("copyFrom across devices is bit-exact, with offsets and the default length", async () => {
  const a = createContext("a", { maxVram: 64 * MB, device: 0 });
  const b = createContext("b", { maxVram: 64 * MB, device: 1 });
  const src = a.alloc(1 * MB + 17);
  const dst = b.alloc(2 * MB);
  const data = pattern(src.size, 5);
  await src.write(data);
  await dst.copyFrom(src);
  const out = new Uint8Array(src.size);
  await dst.read(out);
  assert.deepEqual(out, data);
  // Offsets: 100 bytes from src[1000..] to dst[7..]; default bytes = src.size - srcOffset.
  await dst.write(new Uint8Array(2 * MB));
  await dst.copyFrom(src, { srcOffset: 1000, offset: 7, bytes: 100 });
  const part = new Uint8Array(110);
  await dst.read(part);
  assert.deepEqual(part.subarray(7, 107), data.subarray(1000, 1100));
  assert.equal(part[6], 0);
  assert.equal(part[107], 0);
  await dst.copyFrom(src, { srcOffset: src.size - 3, offset: 2 * MB - 3 });
  const tail = new Uint8Array(3);
  await dst.read(tail, { offset: 2 * MB - 3 });
  assert.deepEqual(tail, data.subarray(src.size - 3));
}, TWO);

probe(
  "copyFrom refuses ranges outside either buffer and bad options, copying nothing",
  async () => {
    const a = createContext("a", { maxVram: 64 * MB, device: 0 });
    const b = createContext("b", { maxVram: 64 * MB, device: 1 });
    const src = a.alloc(4096);
    const dst = b.alloc(1024);
    await dst.write(new Uint8Array(1024).fill(9));
    await src.write(new Uint8Array(4096).fill(1));
    const outOfRange: Record<string, number>[] = [
      {}, // 4096 bytes into 1024
      { srcOffset: 4097 },
      { srcOffset: 0, bytes: 1025 },
      { offset: 1, bytes: 1024 },
      { offset: 1025, bytes: 0 },
      { srcOffset: 4000, bytes: 97 },
      { srcOffset: 2 ** 53, bytes: 1 },
    ];
    for (const options of outOfRange) {
      const e = await rejected(() => dst.copyFrom(src, options));
      assert.ok(e instanceof RangeError, `${JSON.stringify(options)}: got ${e}`);
    }
    for (const [label, value] of BAD_VALUES) {
      if (value === undefined) continue;
      for (const option of ["srcOffset", "offset", "bytes"]) {
        if (option === "bytes" && value === 2 ** 53) continue; // out of range, tested above
        const e = await rejected(() => dst.copyFrom(src, { bytes: 16, [option]: value }));
        assertArgError(e, option, `${option}: ${label}`);
      }
    }
    for (const bad of [undefined, null, {}, 1, "buf"]) {
      const e = await rejected(() => dst.copyFrom(bad as typeof src));
      assert.ok(e instanceof TypeError, `src ${String(bad)}: got ${e}`);
    }
    const out = new Uint8Array(1024);
    await dst.read(out);
    assert.ok(out.every((v) => v === 9), "a refused copy wrote nothing");
  },
  TWO,
);

probe("copyFrom within one buffer: overlapping ranges refused, disjoint ones copied", async () => {
  const a = createContext("a", { maxVram: 64 * MB });
  const buf = a.alloc(4096);
  const data = pattern(4096, 1);
  await buf.write(data);
  const e = await rejected(() => buf.copyFrom(buf, { srcOffset: 0, offset: 100, bytes: 200 }));
  assert.ok(e instanceof RangeError, `got ${e}`);
  await buf.copyFrom(buf, { srcOffset: 0, offset: 2048, bytes: 2048 });
  const out = new Uint8Array(4096);
  await buf.read(out);
  assert.deepEqual(out.subarray(2048), data.subarray(0, 2048));
  assert.deepEqual(out.subarray(0, 2048), data.subarray(0, 2048));
});

probe("copyFrom orders after earlier work on both streams and before later work", async () => {
  const a = createContext("a", { maxVram: 64 * MB, device: 0 });
  const b = createContext("b", { maxVram: 64 * MB, device: 1 });
  const n = 4 * MB;
  const src = a.alloc(n), dst = b.alloc(n);
  const first = pattern(n, 1), second = pattern(n, 2), third = pattern(n, 3);
  // Not awaited in between: the copy must see `first` in src and overwrite dst's `third`...
  const w1 = src.write(first);
  const w0 = dst.write(third);
  const copy = dst.copyFrom(src);
  // ...and later writes on either stream run after it.
  const w2 = src.write(second);
  await Promise.all([w0, w1, copy, w2]);
  const out = new Uint8Array(n);
  await dst.read(out);
  assert.deepEqual(out, first);
  await src.read(out);
  assert.deepEqual(out, second);
}, TWO);

probe("copyFrom from an evicted buffer restores it first", async () => {
  const be = createContext("be", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT, device: 0 });
  const src = be.alloc(32 * MB, { evictable: true });
  const data = pattern(32 * MB, 4);
  await src.write(data);
  const g = createContext("g", { maxVram: 64 * MB, qos: QoSPolicy.GUARANTEED, device: 0 });
  const gb = g.alloc(48 * MB);
  assert.equal(getContextUsage(be).evicted, 32 * MB);
  gb.free();
  destroyContext(g);
  const other = createContext("o", { maxVram: 64 * MB, device: 1 });
  const dst = other.alloc(32 * MB);
  await dst.copyFrom(src);
  const out = new Uint8Array(32 * MB);
  await dst.read(out);
  assert.deepEqual(out, data);
}, { ...TWO, hostMemory: 64 * MB });

probe("copyFrom with a freed source or destination is refused", async () => {
  const a = createContext("a", { maxVram: 64 * MB, device: 0 });
  const b = createContext("b", { maxVram: 64 * MB, device: 1 });
  const src = a.alloc(1024), dst = b.alloc(1024);
  src.free();
  assert.ok((await rejected(() => dst.copyFrom(src))) instanceof Error);
  const src2 = a.alloc(1024);
  dst.free();
  assert.ok((await rejected(() => dst.copyFrom(src2))) instanceof Error);
}, TWO);

probe("freeing both buffers while a copy between them is in flight loses nothing", async () => {
  const a = createContext("a", { maxVram: 64 * MB, device: 0 });
  const b = createContext("b", { maxVram: 64 * MB, device: 1 });
  for (let i = 0; i < 50; i++) {
    const src = a.alloc(256 * 1024), dst = b.alloc(256 * 1024);
    const copy = dst.copyFrom(src);
    // Freeing now is either refused (pinned until the copy is done) or deferred.
    try {
      src.free();
    } catch (e) {
      assert.ok(e instanceof Error);
    }
    try {
      dst.free();
    } catch (e) {
      assert.ok(e instanceof Error);
    }
    await copy;
    src.free();
    dst.free();
  }
  assert.equal(getContextUsage(a).used, 0);
  assert.equal(getContextUsage(b).used, 0);
}, TWO);

probe("copyFrom from a sleeping context's buffer is a SchedulerError", async () => {
  const a = createContext("a", { maxVram: 64 * MB, device: 0 });
  const b = createContext("b", { maxVram: 64 * MB, device: 1 });
  const src = a.alloc(1024), dst = b.alloc(1024);
  await a.sleep();
  assert.ok((await rejected(() => dst.copyFrom(src))) instanceof SchedulerError);
  assert.ok((await rejected(() => src.copyFrom(dst))) instanceof SchedulerError);
  await a.wake();
  await dst.copyFrom(src);
}, TWO);

probe("copyFrom between pool blocks of two devices and a context buffer", async () => {
  const p0 = new MemoryPool({ quota: 8 * MB, device: 0 });
  const p1 = new MemoryPool({ quota: 8 * MB, device: 1 });
  const x = p0.allocate(4096), y = p1.allocate(4096);
  const ctx = createContext("c", { maxVram: 8 * MB, device: 1 });
  const z = ctx.alloc(4096);
  const data = pattern(4096, 9);
  await x.write(data);
  await y.copyFrom(x);
  await z.copyFrom(y);
  const out = new Uint8Array(4096);
  await z.read(out);
  assert.deepEqual(out, data);
  p0.destroy();
  p1.destroy();
}, TWO);

probe("waitEvent across devices orders the consumer after the producer", async () => {
  const a = createContext("a", { maxVram: 64 * MB, device: 0 });
  const b = createContext("b", { maxVram: 64 * MB, device: 1 });
  const n = 8 * MB;
  const src = a.alloc(n), dst = b.alloc(n);
  const data = pattern(n, 7);
  const written = src.write(data);
  const ev = recordEvent(a);
  waitEvent(b, ev);
  await Promise.all([written, ev.synchronize(), b.stream.synchronize()]);
  assert.equal(ev.query(), true);
  await dst.copyFrom(src);
  const out = new Uint8Array(n);
  await dst.read(out);
  assert.deepEqual(out, data);
  // Many waits both ways keep working.
  for (let i = 0; i < 1000; i++) {
    waitEvent(i % 2 ? a : b, recordEvent(i % 2 ? b : a));
  }
  await Promise.all([a.stream.synchronize(), b.stream.synchronize()]);
}, TWO);

probe("waitEvent refuses bad arguments without blocking anything", () => {
  const a = createContext("a", { maxVram: 64 * MB, device: 0 });
  const ev = recordEvent(a);
  for (const bad of [undefined, null, {}, 1, "ev"]) {
    assert.ok(caught(() => waitEvent(a, bad as typeof ev)) instanceof TypeError);
    assert.ok(caught(() => waitEvent(bad as typeof a, ev)) instanceof TypeError);
    assert.ok(caught(() => recordEvent(bad as typeof a)) instanceof TypeError);
  }
}, TWO);

probe("partition managers on two devices coexist, each with its own limits", () => {
  const m0 = new PartitionManager(new PartitionConfig({ totalMemory: 64 * MB, device: 0 }));
  const m1 = new PartitionManager(new PartitionConfig({ totalMemory: 64 * MB, device: 1 }));
  assert.equal(m0.device, 0);
  assert.equal(m1.device, 1);
  m0.createPartition("p", "P0", new PartitionLimits().memory(8 * MB));
  m1.createPartition("q", "Q1", new PartitionLimits().memory(16 * MB));
  const c1 = createContext("c1", { maxVram: 64 * MB, device: 1, partition: "q" });
  using _a = c1.alloc(16 * MB);
  assertBudgetRefusal(caught(() => c1.alloc(1 * MB)), c1, 1 * MB);
  const c0 = createContext("c0", { maxVram: 64 * MB, device: 0, partition: "p" });
  using _b = c0.alloc(8 * MB);
  assertBudgetRefusal(caught(() => c0.alloc(1 * MB)), c0, 1 * MB);
  // The same id on another device's manager is another partition.
  m1.createPartition("p", "P1", new PartitionLimits().memory(4 * MB));
}, TWO);

probe("a MemoryPool on device 1 takes from device 1's budget only", () => {
  const before0 = getAvailableVram(0);
  const pool = new MemoryPool({ quota: 32 * MB, device: 1 });
  const b = pool.allocate(16 * MB);
  assert.equal(getAvailableVram(0), before0);
  assert.ok(getAvailableVram(1) <= 64 * MB - 16 * MB);
  b.free();
  pool.destroy();
  for (const [label, value] of BAD_VALUES) {
    if (value === undefined) continue;
    assertArgError(
      caught(() => new MemoryPool({ quota: 1 * MB, device: value as number })),
      "device",
      label,
    );
  }
  assertArgError(caught(() => new MemoryPool({ quota: 1 * MB, device: 2 })), "device", "2");
}, { ...TWO, hostMemory: 64 * MB });

probe(
  "shutdown with copies in flight across devices, then initialize with one device",
  async () => {
    const a = createContext("a", { maxVram: 64 * MB, device: 0 });
    const b = createContext("b", { maxVram: 64 * MB, device: 1 });
    const src = a.alloc(16 * MB), dst = b.alloc(16 * MB);
    const pending = [
      src.write(pattern(16 * MB, 1)),
      dst.copyFrom(src),
      dst.read(new Uint8Array(16 * MB)),
    ];
    for (const p of pending) p.catch(() => {});
    shutdown();
    const results = await Promise.allSettled(pending);
    for (const r of results) {
      if (r.status === "rejected") assert.ok(r.reason instanceof Error, `${r.reason}`);
    }
    initialize({ backend: "host", hostMemory: 64 * MB });
    assert.ok(caught(() => src.ptr) instanceof SchedulerError);
    assert.ok((await rejected(() => dst.copyFrom(src))) instanceof SchedulerError);
    assertArgError(caught(() => createContext("c", { maxVram: 1 * MB, device: 1 })), "device");
    const c = createContext("a", { maxVram: 64 * MB }); // names are free again
    using _x = c.alloc(64 * MB);
  },
  TWO,
);

probe("device auto with a partition goes to a device that has the partition", () => {
  const m = new PartitionManager(new PartitionConfig({ totalMemory: 32 * MB, device: 1 }));
  m.createPartition("p", "P", new PartitionLimits().memory(8 * MB));
  // Device 0 has more room, but no partition "p": it failed with "unknown partition" before.
  createContext("hog", { maxVram: 8 * MB, qos: QoSPolicy.GUARANTEED, device: 1 });
  const ctx = createContext("c", { maxVram: 16 * MB, partition: "p", device: "auto" });
  assert.equal(ctx.device, 1);
  using _b = ctx.alloc(8 * MB);
  assertBudgetRefusal(caught(() => ctx.alloc(1 * MB)), ctx, 1 * MB);
  // A partition no device has is still a RangeError naming it.
  assertArgError(
    caught(() => createContext("d", { maxVram: 1 * MB, partition: "nope", device: "auto" })),
    "partition",
  );
}, { ...TWO, hostMemory: 64 * MB });
