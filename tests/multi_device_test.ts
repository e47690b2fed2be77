/**
 * Several devices (API.md "Several devices"): two simulated devices on the
 * host backend, and every visible device on CUDA when there are two or more
 * (ignored with the reason otherwise).
 */
import assert from "node:assert/strict";
import {
  AdmissionError,
  createContext,
  getAvailableVram,
  initialize,
  MB,
  MemoryPool,
  PartitionConfig,
  PartitionLimits,
  PartitionManager,
  QoSPolicy,
  recordEvent,
  type Scheduler,
  SchedulerError,
  shutdown,
  waitEvent,
} from "../mod.ts";
import { copyDeviceToDevice } from "../src/engine/native_memory.ts";
import { BackendId } from "../src/native/status_codes.ts";
import { backendTest, cudaSkipReason, kernels, lib, randomBytes, spin } from "./_helpers.ts";
import type { BackendName } from "../src/scheduler.ts";

function cudaDevices(): number {
  if (cudaSkipReason !== undefined) return 0;
  const out = new Int32Array(1);
  return lib().sched_device_count(BackendId.CUDA, out) === 0 ? out[0]! : 0;
}

const CUDA_SKIP = cudaSkipReason ??
  (cudaDevices() < 2 ? `${cudaDevices()} CUDA device(s), these tests need 2` : undefined);

/**
 * Registers `fn` on the host backend with two simulated devices of
 * `deviceMemory` bytes each (the limit on CUDA too), and on CUDA when at
 * least two devices are visible.
 */
function multiDeviceTest(
  name: string,
  fn: (sched: Scheduler, backend: BackendName) => void | Promise<void>,
  deviceMemory = 64 * MB,
): void {
  for (const backend of ["host", "cuda"] as const) {
    const skip = backend === "cuda" ? CUDA_SKIP : undefined;
    Deno.test({
      name: `[${backend}, several devices] ${name}${skip ? ` (skipped: ${skip})` : ""}`,
      ignore: skip !== undefined,
      async fn() {
        const sched = initialize({
          backend,
          hostDevices: 2,
          hostMemory: deviceMemory,
          memoryLimit: deviceMemory,
        });
        try {
          await fn(sched, backend);
        } finally {
          shutdown();
        }
      },
    });
  }
}

Deno.test("initialize({ hostDevices }) describes every simulated device; deviceId picks the default", () => {
  const sched = initialize({ backend: "host", hostDevices: 3, hostMemory: 32 * MB });
  try {
    assert.equal(sched.devices.length, 3);
    assert.equal(sched.device, sched.devices[0]);
    assert.deepEqual(sched.devices.map((d) => d.id), [0, 1, 2]);
    for (const d of sched.devices) assert.equal(d.totalMemory, 32 * MB);
    assert.deepEqual(sched.memoryLimits, [32 * MB, 32 * MB, 32 * MB]);
    assert.equal(sched.memoryInfo(2).total, 32 * MB);
    assert.throws(() => (sched.devices as unknown as unknown[]).push({}), TypeError); // frozen
  } finally {
    shutdown();
  }
  const second = initialize({ backend: "host", hostDevices: 2, deviceId: 1, hostMemory: 32 * MB });
  try {
    assert.equal(second.device, second.devices[1]);
    const ctx = createContext("on-default", { maxVram: MB });
    assert.equal(ctx.device, 1);
    assert.equal(ctx.stream.device, 1);
    assert.equal(createContext("on-zero", { maxVram: MB, device: 0 }).device, 0);
  } finally {
    shutdown();
  }
  // One device unless asked, as before.
  const one = initialize({ backend: "host", hostMemory: 32 * MB });
  try {
    assert.equal(one.devices.length, 1);
  } finally {
    shutdown();
  }
});

Deno.test("bad hostDevices, deviceId and memoryLimit are refused, naming the option, leaving nothing initialized", () => {
  const cases: [Record<string, unknown>, ErrorConstructor, RegExp][] = [
    [{ hostDevices: 0 }, RangeError, /hostDevices must be an integer from 1 to 64, got 0/],
    [{ hostDevices: 65 }, RangeError, /hostDevices must be an integer from 1 to 64, got 65/],
    [{ hostDevices: 1.5 }, RangeError, /hostDevices/],
    [{ hostDevices: "2" }, TypeError, /hostDevices must be a number/],
    [{ hostDevices: 2, deviceId: 2 }, RangeError, /deviceId must be below hostDevices \(2\)/],
    [{ hostDevices: 2, memoryLimit: [] }, RangeError, /memoryLimit must not be an empty array/],
    [
      { hostDevices: 2, memoryLimit: [MB] },
      RangeError,
      /memoryLimit must have one entry per device \(2\), got 1/,
    ],
    [
      { hostDevices: 2, memoryLimit: [MB, MB, MB] },
      RangeError,
      /one entry per device \(2\), got 3/,
    ],
    [
      { hostDevices: 2, memoryLimit: [MB, -1] },
      RangeError,
      /memoryLimit\[1\] must be a positive integer, got -1/,
    ],
    [{ hostDevices: 2, memoryLimit: [MB, 0] }, RangeError, /memoryLimit\[1\]/],
    [{ hostDevices: 2, memoryLimit: [MB, NaN] }, RangeError, /memoryLimit\[1\]/],
    [{ hostDevices: 2, memoryLimit: [MB, "1"] }, TypeError, /memoryLimit\[1\] must be a number/],
    [{ hostDevices: 2, memoryLimit: "1" }, TypeError, /memoryLimit must be a number or an array/],
    [
      { hostDevices: 2, hostMemory: 8 * MB, memoryLimit: [MB, 9 * MB] },
      RangeError,
      /memoryLimit\[1\] must not exceed device 1's 8388608 bytes, got 9437184/,
    ],
  ];
  for (const [options, kind, message] of cases) {
    assert.throws(() => initialize({ backend: "host", ...options } as never), (e: Error) => {
      assert.ok(e instanceof kind, `${Deno.inspect(options)}: got ${e.name}: ${e.message}`);
      assert.match(e.message, message);
      return true;
    });
    // Nothing was left initialized.
    initialize({ backend: "host", hostMemory: 8 * MB }).shutdown();
  }
});

multiDeviceTest(
  "memoryLimit by device: each device has its own budget and reservations",
  (sched) => {
    shutdown();
    initialize({
      backend: sched.backend,
      hostDevices: 2,
      hostMemory: 64 * MB,
      memoryLimit: [64 * MB, 32 * MB],
    });
    assert.equal(getAvailableVram(), 64 * MB);
    assert.equal(getAvailableVram(0), 64 * MB);
    assert.equal(getAvailableVram(1), 32 * MB);
    const g = createContext("g1", { maxVram: 32 * MB, qos: QoSPolicy.GUARANTEED, device: 1 });
    assert.equal(g.device, 1);
    assert.equal(getAvailableVram(1), 0);
    assert.equal(getAvailableVram(0), 64 * MB, "a reservation on device 1 costs device 0 nothing");
    assert.throws(
      () => createContext("g2", { maxVram: MB, qos: QoSPolicy.GUARANTEED, device: 1 }),
      AdmissionError,
    );
    // The same reservation fits on device 0, whose budget is its own.
    const g0 = createContext("g2", { maxVram: 32 * MB, qos: QoSPolicy.GUARANTEED, device: 0 });
    assert.equal(getAvailableVram(0), 32 * MB);
    // Allocations are charged to the device of their context.
    const be = createContext("be1", { maxVram: 16 * MB, qos: QoSPolicy.BEST_EFFORT, device: 1 });
    assert.throws(() => be.alloc(MB), { name: "VramBudgetExceededError" });
    const buf = g0.alloc(8 * MB);
    assert.equal(getAvailableVram(0), 32 * MB, "inside its reservation");
    buf.free();
    g.destroy();
    assert.equal(getAvailableVram(1), 32 * MB);
    be.alloc(MB).free();
    // Names are unique across devices.
    assert.throws(() => createContext("g2", { maxVram: MB, device: 1 }), /already in use/);
    for (const bad of [2, -1, 0.5]) {
      assert.throws(
        () => getAvailableVram(bad),
        (e: Error) => e instanceof RangeError && /device/.test(e.message),
      );
    }
    assert.throws(
      () => getAvailableVram("1" as never),
      (e: Error) => e instanceof TypeError && /device/.test(e.message),
    );
  },
);

multiDeviceTest(
  'device: "auto" takes the device left with the most unreserved memory, ties to the lowest index',
  () => {
    const a = createContext("a", { maxVram: 40 * MB, qos: QoSPolicy.GUARANTEED, device: "auto" });
    assert.equal(a.device, 0, "a tie goes to the lowest index");
    const b = createContext("b", { maxVram: 40 * MB, qos: QoSPolicy.GUARANTEED, device: "auto" });
    assert.equal(b.device, 1);
    const c = createContext("c", { maxVram: 64 * MB, baseVram: 20 * MB, device: "auto" });
    assert.equal(c.device, 0, "24 MiB unreserved on both: the lowest index");
    const e = createContext("e", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT, device: "auto" });
    assert.equal(e.device, 1, "4 MiB unreserved on device 0, 24 on device 1");
    assert.throws(
      () => createContext("d", { maxVram: 30 * MB, qos: QoSPolicy.GUARANTEED, device: "auto" }),
      (err: Error) => err instanceof AdmissionError && /auto/.test(err.message),
    );
    // Nothing was made: the name is free, the budgets unchanged.
    assert.equal(getAvailableVram(0), 4 * MB);
    assert.equal(getAvailableVram(1), 24 * MB);
    const d = createContext("d", { maxVram: 20 * MB, qos: QoSPolicy.GUARANTEED, device: "auto" });
    assert.equal(d.device, 1);
    // A reservation freed on one device makes it the better choice.
    a.destroy();
    assert.equal(
      createContext("f", { maxVram: 10 * MB, qos: QoSPolicy.GUARANTEED, device: "auto" }).device,
      0,
    );
    // Bad device values name the option.
    const bad: [unknown, ErrorConstructor][] = [
      [2, RangeError],
      [-1, RangeError],
      [1.5, RangeError],
      ["1", TypeError],
      ["AUTO", TypeError],
      [null, TypeError],
    ];
    for (const [device, kind] of bad) {
      assert.throws(
        () => createContext("bad", { maxVram: MB, device: device as never }),
        (err: Error) => err instanceof kind && /device/.test(err.message),
        Deno.inspect(device),
      );
    }
    // Other bad options with "auto" still report themselves.
    assert.throws(
      () => createContext("bad", { maxVram: -1, device: "auto" }),
      (err: Error) => err instanceof RangeError && /maxVram/.test(err.message),
    );
  },
);

multiDeviceTest(
  "waitEvent orders a context's stream after another device's work",
  async (sched, backend) => {
    const producer = createContext("producer", { maxVram: 8 * MB, device: 0 });
    const consumer = createContext("consumer", { maxVram: 8 * MB, device: 1 });
    const count = 1024;
    const src = producer.alloc(count * 4);
    const dst = consumer.alloc(count * 4);
    await src.write(new Uint32Array(count));
    await dst.write(new Uint32Array(count));
    // The producer's fill runs late; without the wait the consumer's copy would read zeros.
    spin(backend, producer.stream.handle, 100);
    assert.equal(
      kernels(backend).gs_fill_u32(producer.stream.handle, src.ptr, 7, BigInt(count)),
      0,
    );
    const ready = recordEvent(producer);
    assert.equal(ready.device, 0);
    waitEvent(consumer, ready);
    copyDeviceToDevice(dst.ptr, 0, src.ptr, 0, count * 4, consumer.stream.nativeHandle("copy"));
    await consumer.stream.synchronize();
    const out = new Uint32Array(count);
    await dst.read(out);
    assert.ok(out.every((v, i) => v === 7 + i), `copy ran before the producer's fill: ${out[1]}`);
    // An event recorded on a stream of the other device moves there.
    const ev = sched.createEvent();
    ev.record(consumer.stream);
    assert.equal(ev.device, 1);
    ev.wait(producer.stream);
    await ev.synchronize();
    ev.destroy();
  },
);

multiDeviceTest(
  "copyFrom copies within a device and across devices, with offsets and defaults",
  async () => {
    const a = createContext("a", { maxVram: 16 * MB, device: 0 });
    const a2 = createContext("a2", { maxVram: 16 * MB, device: 0 });
    const b = createContext("b", { maxVram: 16 * MB, device: 1 });
    const n = 256 * 1024 + 3; // not a size class
    const data = randomBytes(n, 5);
    const src = a.alloc(n);
    await src.write(data);
    for (const dst of [a.alloc(n), a2.alloc(n), b.alloc(n)]) {
      await dst.copyFrom(src);
      const out = new Uint8Array(n);
      await dst.read(out);
      assert.deepEqual(out, data);
    }
    // Offsets and an explicit length, across devices.
    const dst = b.alloc(1000);
    await dst.write(new Uint8Array(1000));
    await dst.copyFrom(src, { srcOffset: 10, offset: 100, bytes: 500 });
    const out = new Uint8Array(1000);
    await dst.read(out);
    assert.deepEqual(out.subarray(100, 600), data.subarray(10, 510));
    assert.ok(
      out.subarray(0, 100).every((v) => v === 0) && out.subarray(600).every((v) => v === 0),
    );
    // bytes defaults to what is left of the source after srcOffset.
    const tail = b.alloc(100);
    await tail.copyFrom(src, { srcOffset: n - 100 });
    const t = new Uint8Array(100);
    await tail.read(t);
    assert.deepEqual(t, data.subarray(n - 100));
    // Zero bytes is a no-op, also at the very end.
    await tail.copyFrom(src, { srcOffset: n, bytes: 0 });
    // Non-overlapping ranges of one buffer.
    await src.copyFrom(src, { srcOffset: 0, offset: 1000, bytes: 1000 });
    const self = new Uint8Array(1000);
    await src.read(self, { offset: 1000 });
    assert.deepEqual(self, data.subarray(0, 1000));
  },
);

multiDeviceTest(
  "copyFrom waits for both streams' queued work, and later work waits for it",
  async (_s, backend) => {
    const a = createContext("a", { maxVram: 8 * MB, device: 0 });
    const b = createContext("b", { maxVram: 8 * MB, device: 1 });
    const n = 4096;
    const src = a.alloc(n);
    const dst = b.alloc(n);
    const first = randomBytes(n, 1);
    const second = randomBytes(n, 2);
    // A write still queued behind slow work on the source's stream is in the copy.
    spin(backend, a.stream.handle, 100);
    const written = src.write(first);
    await dst.copyFrom(src);
    await written;
    const out = new Uint8Array(n);
    await dst.read(out);
    assert.deepEqual(out, first, "the copy ran before the source's queued write");
    // The destination's stream is slow now: a write to the source queued
    // after copyFrom was called must not overtake the copy's read.
    spin(backend, b.stream.handle, 100);
    const copied = dst.copyFrom(src);
    const overwritten = src.write(second);
    await Promise.all([copied, overwritten]);
    await dst.read(out);
    assert.deepEqual(out, first, "a later write to the source overtook the copy");
  },
);

multiDeviceTest(
  "copyFrom restores evicted buffers and works on PoolBlocks of standalone pools",
  async () => {
    const a = createContext("a", { maxVram: 8 * MB, device: 0 });
    const b = createContext("b", { maxVram: 8 * MB, device: 1 });
    const n = MB;
    const data = randomBytes(n, 9);
    const src = a.alloc(n, { evictable: true });
    await src.write(data);
    const dst = b.alloc(n, { evictable: true });
    a.pool.evict(n);
    b.pool.evict(n);
    assert.equal(src.state, "evicted");
    assert.equal(dst.state, "evicted");
    await dst.copyFrom(src);
    const out = new Uint8Array(n);
    await dst.read(out);
    assert.deepEqual(out, data);
    // Standalone pool blocks and context buffers mix.
    const pool = new MemoryPool({ quota: 4 * MB, enableEviction: true });
    const block = pool.allocate(n);
    await block.copyFrom(dst);
    const fromBlock = new Uint8Array(n);
    await block.read(fromBlock);
    assert.deepEqual(fromBlock, data);
    const back = b.alloc(n);
    await back.copyFrom(block);
    await back.read(out);
    assert.deepEqual(out, data);
    pool.destroy();
  },
);

multiDeviceTest("copyFrom refuses bad sources, options and ranges, changing nothing", async () => {
  const a = createContext("a", { maxVram: 8 * MB, device: 0 });
  const b = createContext("b", { maxVram: 8 * MB, device: 1 });
  const src = a.alloc(1000);
  const dst = b.alloc(500);
  const data = randomBytes(500, 3);
  await dst.write(data);
  const cases: [unknown, unknown, ErrorConstructor, RegExp][] = [
    [src, undefined, RangeError, /offset 0 \+ bytes 1000 exceeds the destination's 500 bytes/],
    [
      src,
      { srcOffset: 1001 },
      RangeError,
      /srcOffset 1001 is past the end of the source's 1000 bytes/,
    ],
    [
      src,
      { srcOffset: 900, bytes: 101 },
      RangeError,
      /srcOffset 900 \+ bytes 101 exceeds the source's 1000 bytes/,
    ],
    [
      src,
      { bytes: 10, offset: 491 },
      RangeError,
      /offset 491 \+ bytes 10 exceeds the destination's 500 bytes/,
    ],
    [src, { bytes: -1 }, RangeError, /bytes must be a non-negative integer/],
    [src, { bytes: 1.5 }, RangeError, /bytes/],
    [src, { srcOffset: "1" }, TypeError, /srcOffset must be a number/],
    [src, { offset: null }, TypeError, /offset/],
    [src, 5, TypeError, /options/],
    [new Uint8Array(10), { bytes: 1 }, TypeError, /src must be a device buffer/],
    [null, undefined, TypeError, /src must be a device buffer/],
    [dst, { srcOffset: 0, offset: 100, bytes: 200 }, RangeError, /overlap/],
  ];
  for (const [from, options, kind, message] of cases) {
    await assert.rejects(
      () => dst.copyFrom(from as never, options as never),
      (e: Error) => {
        assert.ok(e instanceof kind, `${Deno.inspect(options)}: got ${e.name}: ${e.message}`);
        assert.match(e.message, message);
        return true;
      },
    );
  }
  const out = new Uint8Array(500);
  await dst.read(out);
  assert.deepEqual(out, data, "nothing was copied");
  // Freed buffers on either side.
  const gone = a.alloc(100);
  gone.free();
  await assert.rejects(() => dst.copyFrom(gone, { bytes: 10 }), SchedulerError);
  const goneDst = b.alloc(100);
  goneDst.free();
  await assert.rejects(() => goneDst.copyFrom(src, { bytes: 10 }), SchedulerError);
  // Both buffers are pinned while the copy is in flight, then free again.
  const ok = dst.copyFrom(src, { bytes: 500 });
  assert.throws(() => src.free(), /pinned/);
  await ok;
  src.free();
  dst.free();
});

multiDeviceTest(
  "partitions are per device: one manager per device, contexts bind to their device's",
  () => {
    const one = new PartitionManager(new PartitionConfig({ totalMemory: 32 * MB, device: 1 }));
    assert.equal(one.device, 1);
    one.createPartition("infer", "Inference", new PartitionLimits().memory(16 * MB).compute(0.5));
    assert.throws(
      () => new PartitionManager(new PartitionConfig({ device: 1 })),
      (e: Error) =>
        e instanceof SchedulerError && /device 1 already has a PartitionManager/.test(e.message),
    );
    const zero = new PartitionManager(new PartitionConfig({ totalMemory: 32 * MB }));
    assert.equal(zero.device, 0);
    assert.equal(zero.listPartitions().length, 0);
    const ctx = createContext("on-one", { maxVram: MB, device: 1, partition: "infer" });
    assert.equal(ctx.stream.partition, "infer");
    assert.equal(ctx.stream.device, 1);
    assert.throws(
      () => createContext("on-zero", { maxVram: MB, device: 0, partition: "infer" }),
      (e: Error) => e instanceof RangeError && /unknown partition "infer"/.test(e.message),
    );
    // Memory over-subscription is per device.
    assert.throws(
      () => one.createPartition("big", "Big", new PartitionLimits().memory(17 * MB)),
      AdmissionError,
    );
    zero.createPartition("big", "Big", new PartitionLimits().memory(17 * MB));
    assert.throws(() => new PartitionConfig({ device: -1 }), RangeError);
    assert.throws(() => new PartitionConfig({ device: "1" as never }), TypeError);
    zero.close();
    assert.throws(
      () => new PartitionManager(new PartitionConfig({ device: 2 })),
      (e: Error) =>
        e instanceof RangeError &&
        /device must be a device index from 0 to 1, got 2/.test(e.message),
    );
    ctx.destroy();
    one.close();
  },
);

multiDeviceTest("streams and events are created on the device asked for", async (sched) => {
  const s = sched.createStream({ device: 1 });
  assert.equal(s.device, 1);
  assert.equal(sched.createStream().device, 0);
  assert.throws(
    () => sched.createStream({ device: 2 }),
    (e: Error) => e instanceof RangeError && /device/.test(e.message),
  );
  const ev = sched.createEvent({ device: 1 });
  assert.equal(ev.device, 1);
  ev.record(s);
  await ev.synchronize();
  assert.throws(() => sched.createEvent({ device: "0" as never }), TypeError);
  assert.throws(() => sched.memoryInfo(7), RangeError);
});

backendTest(
  "copyFrom on one device: contexts, offsets, ordering and bad ranges",
  async (_sched) => {
    const a = createContext("a", { maxVram: 16 * MB });
    const b = createContext("b", { maxVram: 16 * MB });
    const n = 3 * MB + 5;
    const data = randomBytes(n, 21);
    const src = a.alloc(n, { evictable: true });
    const written = src.write(data); // still queued when the copy is called
    const same = a.alloc(n);
    const other = b.alloc(n);
    await Promise.all([same.copyFrom(src), other.copyFrom(src), written]);
    for (const dst of [same, other]) {
      const out = new Uint8Array(n);
      await dst.read(out);
      assert.deepEqual(out, data);
    }
    const part = b.alloc(MB);
    await part.copyFrom(src, { srcOffset: 7, offset: 3, bytes: MB - 3 });
    const out = new Uint8Array(MB - 3);
    await part.read(out, { offset: 3 });
    assert.deepEqual(out, data.subarray(7, 7 + MB - 3));
    await assert.rejects(() => part.copyFrom(src), RangeError);
    await assert.rejects(() => part.copyFrom(src, { srcOffset: n + 1, bytes: 0 }), RangeError);
    await assert.rejects(() => part.copyFrom({} as never), TypeError);
  },
  { hostMemory: 64 * MB },
);

multiDeviceTest(
  "teardown while copyFrom is in flight: destroying either context or shutting down loses nothing",
  async (sched, backend) => {
    const a = createContext("a", { maxVram: 8 * MB, device: 0 });
    const b = createContext("b", { maxVram: 8 * MB, device: 1 });
    const src = a.alloc(MB), dst = b.alloc(MB);
    spin(backend, b.stream.handle, 50);
    const intoDestroyed = dst.copyFrom(src);
    b.destroy(); // the destination's context, mid-copy
    await intoDestroyed;
    const c = createContext("c", { maxVram: 8 * MB, device: 1 });
    const into = c.alloc(MB);
    spin(backend, c.stream.handle, 50);
    const fromDestroyed = into.copyFrom(src);
    a.destroy(); // the source's context, mid-copy
    await fromDestroyed;
    assert.equal(getAvailableVram(0), 64 * MB, "device 0 got everything back");
    const d = createContext("d", { maxVram: 8 * MB, device: 0 });
    const last = d.alloc(MB);
    spin(backend, c.stream.handle, 50);
    const pending = into.copyFrom(last);
    sched.shutdown();
    await pending;
    // A scheduler can start again on both devices.
    initialize({ backend, hostDevices: 2, hostMemory: 64 * MB, memoryLimit: 64 * MB });
  },
);
