import assert from "node:assert/strict";
import {
  AdmissionError,
  GB,
  initialize,
  MB,
  PartitionConfig,
  PartitionLimits,
  PartitionManager,
  type Scheduler,
  SchedulerError,
  shutdown,
  type Stream,
} from "../mod.ts";
import {
  backendTest,
  d2h,
  expectStatus,
  kernels,
  lib,
  rawMallocAsync,
  rawPool,
  spin,
  Status,
} from "./_helpers.ts";

/** SM groups the docs promise a share alone: round(share * smGroups), at least one. */
function expectedGroups(sched: Scheduler, share: number): number {
  const { smGranularity: g, smGroups } = sched.device;
  if (g === 0) return 0;
  return Math.min(Math.max(1, Math.round(share * smGroups)), smGroups);
}

function expectedSms(sched: Scheduler, share: number): number {
  return expectedGroups(sched, share) * sched.device.smGranularity;
}

function handleValue(stream: Stream): bigint {
  return Deno.UnsafePointer.value(stream.handle);
}

backendTest("two partitions of compute 0.5 both succeed, with their SMs reported", (sched) => {
  const manager = new PartitionManager(new PartitionConfig({ totalMemory: 8 * GB }));
  const half = new PartitionLimits().memory(4 * GB).compute(0.5);
  const inference = manager.createPartition("inference", "Inference Partition", half);
  const training = manager.createPartition("training", "Training Partition", half);
  const sms = expectedSms(sched, 0.5);
  if (sched.backend === "host") assert.equal(sms, 64, "64 of the simulated 132");
  for (const info of [inference, training]) {
    assert.equal(info.smCount, sms);
    assert.equal(info.memoryLimit, 4 * GB);
    assert.equal(info.computeLimit, 0.5);
    assert.equal(info.enforced, sched.backend === "cuda" && sched.device.smGranularity > 0);
  }
  assert.deepEqual(manager.getPartition("inference"), inference);
  assert.equal(manager.getPartition("inference")?.name, "Inference Partition");
  assert.equal(manager.availableMemory, 0);
  assert.equal(manager.availableCompute, 0);
  assert.ok(manager.sharedSmCount <= sched.device.smCount - 2 * sms || sms === 0);
  if (sched.backend === "host") assert.equal(manager.sharedSmCount, 4);
});

backendTest("memory, compute or SM groups summing past the total throw AdmissionError", (sched) => {
  const manager = new PartitionManager(new PartitionConfig({ totalMemory: 1 * GB }));
  manager.createPartition("a", "A", new PartitionLimits().memory(768 * MB).compute(0.6));
  const before = manager.listPartitions();
  assert.throws(
    () => manager.createPartition("b", "B", new PartitionLimits().compute(0.5)),
    (e: unknown) =>
      e instanceof AdmissionError &&
      /compute share of 0\.5 exceeds the 0\.4 unreserved/.test(e.message),
  );
  assert.throws(
    () => manager.createPartition("c", "C", new PartitionLimits().memory(512 * MB)),
    (e: unknown) => e instanceof AdmissionError && /memory of 536870912 bytes/.test(e.message),
  );
  assert.deepEqual(manager.listPartitions(), before, "a refused partition changes nothing");
  assert.equal(manager.availableMemory, 256 * MB);
  manager.deletePartition("a");

  // Seventeen partitions need seventeen groups (one each, at least): more than the 16.
  if (sched.device.smGroups > 0) {
    const tiny = 1 / (sched.device.smGroups + 1);
    for (let i = 0; i < sched.device.smGroups; i++) {
      manager.createPartition(`p${i}`, "P", new PartitionLimits().compute(tiny));
    }
    assert.throws(
      () => manager.createPartition("p-last", "P", new PartitionLimits().compute(tiny)),
      (e: unknown) =>
        e instanceof AdmissionError && /needs \d+ SMs in all \(groups of \d+\)/.test(e.message),
    );
    assert.equal(manager.listPartitions().length, sched.device.smGroups, "nothing changed");
  }
});

backendTest(
  "a partition without a compute limit reserves no SMs and runs on the shared SMs",
  (sched) => {
    const manager = new PartitionManager();
    const tts = manager.createPartition("tts", "Speech", new PartitionLimits().memory(64 * MB));
    assert.equal(tts.smCount, 0);
    assert.equal(tts.computeLimit, undefined);
    assert.equal(tts.enforced, false);
    assert.equal(manager.sharedSmCount, sched.device.smCount, "no partition reserves SMs yet");
    assert.equal(manager.availableCompute, 1);
    const stream = manager.createStream("tts");
    assert.equal(stream.partition, "tts");

    manager.createPartition("llm", "LLM", new PartitionLimits().compute(0.75));
    assert.equal(manager.getPartition("tts")?.smCount, 0, "still none of its own");
    if (sched.device.smGranularity > 0) {
      assert.ok(manager.sharedSmCount < sched.device.smCount, "the shared SMs shrank");
    }
    spin(sched.backend, stream.handle, 1);
    stream.synchronizeSync();
    assert.ok(stream.query(), "its stream still works after moving to the shared SMs");
  },
);

backendTest("bad arguments throw TypeError or RangeError naming the option and value", (sched) => {
  assert.throws(() => new PartitionLimits().compute(0), RangeError);
  assert.throws(
    () => new PartitionLimits().compute(1.5),
    {
      name: "RangeError",
      message: "Cannot set partition limits: compute must be a fraction in (0, 1], got 1.5",
    },
  );
  assert.throws(
    () => new PartitionLimits().compute(NaN),
    /compute must be a fraction in \(0, 1\], got NaN/,
  );
  assert.throws(() => new PartitionLimits().compute("0.5" as unknown as number), TypeError);
  assert.throws(
    () => new PartitionLimits().memory(-1),
    {
      name: "RangeError",
      message: "Cannot set partition limits: memory must be a positive integer, got -1",
    },
  );
  assert.throws(
    () => new PartitionLimits().memory(1.5),
    /memory must be a positive integer, got 1.5/,
  );
  assert.throws(() => new PartitionLimits({ compute: 2 }), RangeError);
  assert.throws(
    () => new PartitionConfig({ totalMemory: 0 }),
    /Cannot create a partition config: totalMemory must be a positive integer, got 0/,
  );
  assert.throws(() => new PartitionConfig(5 as unknown as object), TypeError);
  assert.throws(
    () => new PartitionManager(new PartitionConfig({ totalMemory: sched.device.totalMemory + 1 })),
    /totalMemory must not exceed (the|device \d+'s) memoryLimit of \d+ bytes/,
  );
  assert.throws(() => new PartitionManager({} as PartitionConfig), TypeError);

  const manager = new PartitionManager();
  const limits = new PartitionLimits().compute(0.25);
  assert.throws(
    () => manager.createPartition("", "Empty", limits),
    {
      name: "RangeError",
      message: 'Cannot create a partition: id must be a non-empty string, got ""',
    },
  );
  assert.throws(() => manager.createPartition(7 as unknown as string, "Seven", limits), TypeError);
  assert.throws(() => manager.createPartition("x", "", limits), /name must be a non-empty string/);
  assert.throws(
    () => manager.createPartition("x", "X", { computeLimit: 0.5 } as PartitionLimits),
    { name: "TypeError", message: /limits must be a PartitionLimits, got \{"computeLimit":0.5\}/ },
  );
  assert.throws(() => manager.createStream("x", 3 as unknown as object), TypeError);
  assert.equal(manager.listPartitions().length, 0);
});

backendTest("duplicate ids are refused and deleting an unknown id throws", () => {
  const manager = new PartitionManager();
  manager.createPartition("llm", "LLM", new PartitionLimits().compute(0.25));
  assert.throws(
    () => manager.createPartition("llm", "Again", new PartitionLimits().compute(0.25)),
    { name: "RangeError", message: /Cannot create partition "llm": id must be unused/ },
  );
  assert.equal(manager.availableCompute, 0.75, "the duplicate reserved nothing");
  assert.throws(
    () => manager.deletePartition("nope"),
    {
      name: "RangeError",
      message: 'Cannot delete partition "nope": id must name a partition, got "nope"',
    },
  );
  manager.deletePartition("llm");
  assert.throws(() => manager.deletePartition("llm"), RangeError);
  assert.equal(manager.getPartition("llm"), undefined);
});

backendTest(
  "streams follow layout changes: same stream, new handle on CUDA, queued work kept in order",
  async (sched) => {
    const outside = sched.createStream();
    const manager = new PartitionManager();
    const handles = [handleValue(outside)];
    const pool = rawPool();
    const bytes = 1 << 16;
    const buf = rawMallocAsync(pool, outside.nativeHandle("test"), bytes);

    manager.createPartition("a", "A", new PartitionLimits().compute(0.25)); // the first one
    handles.push(handleValue(outside));
    const inA = manager.createStream("a");
    const aHandle = handleValue(inA);

    // Work queued on both streams, two layout changes, then more work. On
    // CUDA, making the new green contexts waits for the device to go idle
    // (the ABI tests hold work across a rebind instead); on the host the
    // spin still runs while its stream moves.
    spin(sched.backend, outside.handle, 30);
    expectStatus(
      lib().sched_memset_async(buf, 0n, 1, BigInt(bytes), outside.nativeHandle("test")),
      Status.OK,
    );
    spin(sched.backend, inA.handle, 30);
    manager.createPartition("b", "B", new PartitionLimits().compute(0.25));
    handles.push(handleValue(outside));
    manager.deletePartition("b");
    handles.push(handleValue(outside));
    expectStatus(
      lib().sched_memset_async(buf, 0n, 2, BigInt(bytes), outside.nativeHandle("test")),
      Status.OK,
    );
    const seen = new Uint8Array(bytes);
    expectStatus(d2h(seen, buf, outside.nativeHandle("test")), Status.OK);
    await outside.synchronize();
    await inA.synchronize();
    assert.ok(seen.every((v) => v === 2), "the memset queued after the changes ran last");

    if (sched.backend === "cuda" && sched.device.smGranularity > 0) {
      // Compared with the one replaced, which still existed when the next was made.
      for (let i = 1; i < handles.length; i++) {
        assert.notEqual(handles[i], handles[i - 1], `layout ${i} gave a new native stream`);
      }
      // Partitions keep their groups while others come and go: a's stream never moved.
      assert.equal(handleValue(inA), aHandle);
    } else {
      assert.equal(new Set(handles).size, 1, "host streams keep their worker");
    }
  },
);

backendTest("a partition with streams cannot be deleted, nor its manager closed", (sched) => {
  const manager = new PartitionManager();
  manager.createPartition("llm", "LLM", new PartitionLimits().compute(0.5));
  const stream = sched.createStream({ partition: "llm", priority: -5 });
  assert.equal(stream.partition, "llm");
  assert.throws(
    () => manager.deletePartition("llm"),
    (e: unknown) =>
      e instanceof SchedulerError &&
      /1 stream\(s\) still run in it, destroy them first/.test(e.message),
  );
  assert.throws(() => manager.close(), SchedulerError);
  stream.destroy();
  manager.deletePartition("llm");
  manager.close();
});

backendTest("streams name existing partitions only", (sched) => {
  assert.throws(
    () => sched.createStream({ partition: "llm" }),
    {
      name: "RangeError",
      message: /partition must name a partition .*got "llm" \(there is no PartitionManager\)/,
    },
  );
  const manager = new PartitionManager();
  assert.throws(() => manager.createStream("llm"), { name: "RangeError", message: /got "llm"/ });
  assert.throws(() => sched.createStream({ partition: 5 as unknown as string }), TypeError);
  assert.throws(() => sched.createStream({ partition: "" }), RangeError);
});

backendTest(
  "one manager per scheduler; close() gives the streams the whole device back",
  (sched) => {
    const first = new PartitionManager();
    assert.throws(
      () => new PartitionManager(),
      /already has a PartitionManager, close\(\) it first/,
    );
    const outside = sched.createStream();
    first.createPartition("a", "A", new PartitionLimits().compute(0.5));
    const partitioned = handleValue(outside);
    first.close();
    first.close(); // idempotent
    assert.throws(
      () => first.createPartition("b", "B", new PartitionLimits()),
      /the partition manager was closed/,
    );
    if (sched.backend === "cuda" && sched.device.smGranularity > 0) {
      assert.notEqual(handleValue(outside), partitioned, "moved back to a device-wide stream");
    }
    {
      using second = new PartitionManager();
      second.createPartition("a", "A", new PartitionLimits().compute(1));
      assert.equal(second.getPartition("a")?.smCount, expectedSms(sched, 1));
    }
    new PartitionManager().createPartition("c", "C", new PartitionLimits().compute(0.5));
    outside.synchronizeSync();
  },
);

backendTest(
  "kernels of a partition run only on its SMs, apart from every other partition",
  (sched) => {
    const manager = new PartitionManager();
    manager.createPartition("big", "Big", new PartitionLimits().compute(0.5));
    manager.createPartition("small", "Small", new PartitionLimits().compute(0.125));
    const streams = {
      big: manager.createStream("big"),
      small: manager.createStream("small"),
      outside: sched.createStream(),
    };
    const blocks = 4 * sched.device.smCount;
    const pool = rawPool();
    const seen = new Map<string, Set<number>>();
    for (const [name, stream] of Object.entries(streams)) {
      const buf = rawMallocAsync(pool, stream.nativeHandle("test"), blocks * 4);
      assert.equal(kernels(sched.backend).gs_sm_ids(stream.handle, buf, blocks, 20_000n), 0);
      const ids = new Uint32Array(blocks);
      expectStatus(d2h(new Uint8Array(ids.buffer), buf, stream.nativeHandle("test")), Status.OK);
      stream.synchronizeSync();
      seen.set(name, new Set(ids));
    }
    if (!manager.enforced) return; // the host's one "SM" (0) runs everything
    const limits = {
      big: manager.getPartition("big")!.smCount,
      small: manager.getPartition("small")!.smCount,
      outside: manager.sharedSmCount,
    };
    for (const [name, ids] of seen) {
      const limit = limits[name as keyof typeof limits];
      assert.ok(ids.size <= limit, `${name}: ${ids.size} SMs used, ${limit} given`);
      for (const [other, otherIds] of seen) {
        if (other === name) continue;
        const shared = [...ids].filter((id) => otherIds.has(id));
        assert.deepEqual(shared, [], `${name} and ${other} share SMs`);
      }
    }
  },
);

backendTest("shutting the scheduler down closes its manager", () => {
  const manager = new PartitionManager();
  manager.createPartition("a", "A", new PartitionLimits().compute(0.5));
  shutdown();
  assert.throws(() => manager.createPartition("b", "B", new PartitionLimits()), SchedulerError);
  // Closed as by close(): the partitions it had are gone with the scheduler.
  assert.deepEqual(manager.listPartitions(), []);
  assert.equal(manager.getPartition("a"), undefined);
  initialize({ backend: "host" });
  new PartitionManager().createPartition("a", "A", new PartitionLimits().compute(0.5));
});

Deno.test("a partition manager needs an initialized scheduler", () => {
  assert.throws(
    () => new PartitionManager(),
    /Scheduler is not initialized: call initialize\(\) first/,
  );
});

backendTest(
  "any set of compute shares summing to at most 1 is admitted, rounded by largest remainder",
  (sched) => {
    if (sched.device.smGroups !== 16) return;
    const cases: [number[], number[]][] = [
      [[0.6, 0.4], [80, 48]],
      [[0.7, 0.3], [88, 40]],
      [[0.9, 0.1], [112, 16]],
      [[0.1, 0.2, 0.7], [16, 24, 88]],
      [[1 / 3, 1 / 3, 1 / 3], [48, 40, 40]],
      [[0.5, 0.5], [64, 64]],
      [[0.25, 0.25, 0.25, 0.25], [32, 32, 32, 32]],
      [Array(10).fill(0.1), [16, 16, 16, 16, 16, 16, 8, 8, 8, 8]],
      [[0.3, 0.3], [40, 40]],
    ];
    for (const [shares, sms] of cases) {
      for (let round = 0; round < 2; round++) { // deterministic: the same again
        using manager = new PartitionManager();
        for (const [i, share] of shares.entries()) {
          manager.createPartition(`p${i}`, "P", new PartitionLimits().compute(share));
        }
        assert.deepEqual(manager.listPartitions().map((p) => p.smCount), sms, `${shares}`);
        const total = sms.reduce((a, b) => a + b, 0);
        if (sched.backend === "host") assert.equal(manager.sharedSmCount, 132 - total);
        for (const p of manager.listPartitions()) manager.deletePartition(p.id);
      }
    }
  },
);

backendTest("deleting a partition lets its share be partitioned again", () => {
  const manager = new PartitionManager();
  manager.createPartition("a", "A", new PartitionLimits().compute(0.7));
  manager.createPartition("b", "B", new PartitionLimits().compute(0.3));
  assert.throws(
    () => manager.createPartition("c", "C", new PartitionLimits().compute(0.01)),
    AdmissionError,
  );
  manager.deletePartition("b");
  manager.createPartition("c", "C", new PartitionLimits().compute(0.2));
  manager.createPartition("d", "D", new PartitionLimits().compute(0.1));
  assert.equal(manager.availableCompute < 1e-9, true);
});
