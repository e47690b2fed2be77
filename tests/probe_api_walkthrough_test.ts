/**
 * API.md's code blocks, in order and as written, on the host backend with
 * its default simulated device (what an outside suite would run first),
 * with the promises each block's comments make asserted.
 */
import assert from "node:assert/strict";
import {
  alloc,
  contextSession,
  createContext,
  currentContext,
  destroyContext,
  formatPrometheus,
  GB,
  getAvailableVram,
  getContextUsage,
  getMetrics,
  getStream,
  initialize,
  KB,
  MB,
  MemoryPool,
  onMemoryPressure,
  PartitionConfig,
  PartitionLimits,
  PartitionManager,
  QoSPolicy,
  QosPolicyEvaluator,
  QosTaskMeta,
  recordEvent,
  SchedulerError,
  shutdown,
  waitEvent,
} from "../mod.ts";
import { caught } from "./_probe.ts";

Deno.test("[probe] API.md: units and lifecycle", () => {
  assert.equal(KB, 1024);
  assert.equal(MB, 1024 ** 2);
  assert.equal(GB, 1024 ** 3);
  const sched = initialize({ backend: "host", hostMemory: 8 * GB });
  assert.equal(sched.backend, "host");
  assert.ok(caught(() => initialize({ backend: "host" })) instanceof SchedulerError);
  shutdown();
  initialize({ backend: "host", memoryLimit: 8 * GB });
  assert.equal(getAvailableVram(), 8 * GB);
  shutdown();
  // backend "cuda" without a usable device: a clear error (skipped where CUDA works).
  const cuda = (() => {
    try {
      initialize({ backend: "cuda" });
      return undefined;
    } catch (e) {
      return e;
    }
  })();
  if (cuda === undefined) shutdown();
  else assert.ok(cuda instanceof Error && cuda.message.length > 10);
});

Deno.test("[probe] API.md: contexts, sessions, memory, streams, engine, in one scheduler", async () => {
  initialize({ backend: "host", hostMemory: 8 * GB });
  try {
    const llm = createContext("llm", { maxVram: 4 * GB, qos: QoSPolicy.GUARANTEED });
    const tts = createContext("tts", {
      maxVram: 2 * GB,
      baseVram: 1 * GB,
      qos: QoSPolicy.BURSTABLE,
    });
    const bg = createContext("background", { maxVram: 1 * GB, qos: QoSPolicy.BEST_EFFORT });
    const v = createContext("vision", { maxVram: 1 * GB });
    assert.equal(v.qos, QoSPolicy.BURSTABLE);
    assert.equal(v.baseVram, 0);
    assert.equal(typeof QoSPolicy.GUARANTEED, "string");
    destroyContext(bg);
    {
      using _ctx = createContext("scoped", { maxVram: 1 * MB });
    }
    assert.equal(getMetrics().contexts.some((c) => c.name === "scoped"), false);
    assert.ok(llm.stream.priority < tts.stream.priority, "GUARANTEED most urgent");

    {
      using _s = contextSession(llm);
      const buf = alloc(256 * MB);
      assert.equal(buf.context, llm);
      assert.equal(getContextUsage(llm).used, 256 * MB);
      buf.free();
    }
    const text = await contextSession(llm, async (ctx) => {
      assert.equal(currentContext(), llm);
      await new Promise((r) => setTimeout(r, 1));
      assert.equal(currentContext(), llm);
      return ctx.name;
    });
    assert.equal(text, "llm");

    const buf = llm.alloc(64 * MB, { evictable: true });
    assert.equal(buf.size, 64 * MB);
    assert.equal(buf.context, llm);
    assert.ok(buf.ptr !== null);
    const hostBytes = new Uint8Array(1024).fill(3);
    await buf.write(hostBytes, { offset: 10 });
    const back = new Uint8Array(1024);
    await buf.read(back, { offset: 10 });
    assert.deepEqual(back, hostBytes);
    buf.free();
    buf.free();
    const u = getContextUsage(llm);
    for (const k of ["used", "max", "base", "reserved", "peak", "cached", "evicted"] as const) {
      assert.equal(typeof u[k], "number", k);
    }
    assert.equal(u.max, 4 * GB);
    assert.equal(u.reserved, 4 * GB);
    const off = onMemoryPressure((_ctx, requested, available) => available > requested * 0.5);
    off();

    const stream = getStream(llm);
    assert.equal(typeof stream.id, "number");
    assert.equal(typeof stream.priority, "number");
    await stream.synchronize();
    stream.synchronizeSync();
    assert.equal(stream.query(), true);
    const ev = recordEvent(llm);
    waitEvent(tts, ev);
    await ev.synchronize();
    assert.equal(ev.query(), true);

    const pool = new MemoryPool({ quota: 100 * MB, enableEviction: true });
    const block = pool.allocate(4096);
    assert.equal(block.state, "resident");
    assert.equal(typeof block.id, "number");
    const evb = pool.allocate(1 * MB, { evictable: true });
    pool.free(block);
    const s = pool.stats();
    for (
      const k of [
        "quota",
        "allocatedBytes",
        "cachedBytes",
        "activeBlocks",
        "freeBlocks",
        "evictedBlocks",
        "allocationCount",
        "reuseCount",
        "evictionCount",
        "peakBytes",
      ] as const
    ) assert.equal(typeof s[k], "number", k);
    assert.equal(s.quota, 100 * MB);
    assert.equal(s.activeBlocks, 1);
    evb.free();

    const evaluator = new QosPolicyEvaluator({ totalMemory: 8 * GB, totalBandwidth: 1.0 });
    const task = QosTaskMeta.guaranteed("inference-1", "LLM Inference", 256 * MB);
    QosTaskMeta.burstable("b", "B", 256 * MB, { base: 64 * MB });
    QosTaskMeta.bestEffort("e", "E", 256 * MB);
    const r = evaluator.evaluate(task);
    assert.equal(r.admitted, true);
    assert.equal(r.decision, "admit");
    assert.equal(typeof r.priority, "number");
    evaluator.admit(task);
    evaluator.release("inference-1");

    const manager = new PartitionManager(new PartitionConfig({ totalMemory: 8 * GB }));
    manager.createPartition(
      "inference",
      "Inference Partition",
      new PartitionLimits().memory(4 * GB).compute(0.5),
    );
    manager.createPartition(
      "training",
      "Training Partition",
      new PartitionLimits().memory(4 * GB).compute(0.5),
    );
    const info = manager.getPartition("inference")!;
    assert.equal(info.memoryLimit, 4 * GB);
    assert.equal(info.computeLimit, 0.5);
    assert.equal(typeof info.smCount, "number");
    manager.deletePartition("training");
    assert.deepEqual(manager.listPartitions().map((p) => p.id), ["inference"]);

    const m = getMetrics();
    assert.deepEqual(Object.keys(m.devices[0]!).sort(), [
      "available",
      "index",
      "memoryLimit",
      "name",
    ]);
    const c = m.contexts[0]!;
    for (
      const k of ["name", "qos", "device", "used", "max", "reserved", "cached", "evicted", "peak"]
    ) assert.ok(k in c, k);
    assert.deepEqual(Object.keys(c.counters).sort(), [
      "allocationFailures",
      "allocations",
      "evictions",
      "pressureEvents",
      "restores",
    ]);
    assert.ok(formatPrometheus(m).endsWith("\n"));
    assert.ok(formatPrometheus().includes("gpusched_device_available_bytes"));
  } finally {
    shutdown();
  }
});

Deno.test("[probe] API.md: compute reservations, several devices and sleep", async () => {
  const sched = initialize({ backend: "host", hostDevices: 2, hostMemory: 8 * GB });
  try {
    const llm = createContext("llm", {
      maxVram: 4 * GB,
      qos: QoSPolicy.GUARANTEED,
      compute: 0.25,
    });
    assert.equal(llm.compute, 0.25);
    assert.ok(llm.smCount >= sched.device.smGranularity);
    assert.equal(llm.smCount % sched.device.smGranularity, 0);
    assert.equal(sched.devices.length, 2);
    assert.equal(sched.device, sched.devices[0]);
    const a = createContext("llm1", { maxVram: 4 * GB, device: 1 });
    const b = createContext("vision", { maxVram: 1 * GB, device: "auto" });
    assert.equal(typeof b.device, "number");
    assert.equal(getAvailableVram(1), 8 * GB);
    waitEvent(a, recordEvent(b));
    const src = b.alloc(4096), dst = a.alloc(4096);
    await src.write(new Uint8Array(4096).fill(8));
    await dst.copyFrom(src);
    await dst.copyFrom(src, { srcOffset: 0, offset: 0, bytes: 1024 });
    const out = new Uint8Array(4096);
    await dst.read(out);
    assert.ok(out.every((x) => x === 8));
    new PartitionManager(new PartitionConfig({ totalMemory: 1 * GB, device: 1 }));

    const buf = llm.alloc(1 * MB);
    await buf.write(new Uint8Array(16).fill(1));
    const before = buf.ptr;
    await llm.sleep();
    assert.equal(llm.sleeping, true);
    const u = getContextUsage(llm);
    assert.equal(u.used, 0);
    assert.equal(u.reserved, 0);
    assert.equal(u.evicted, 1 * MB);
    await llm.wake();
    assert.ok(Deno.UnsafePointer.equals(buf.ptr, before));
  } finally {
    shutdown();
  }
});
