import assert from "node:assert/strict";
import { getScheduler, initialize, SchedulerError, shutdown } from "../mod.ts";
import { cudaSkipReason } from "./_helpers.ts";

const MiB = 1024 ** 2;

Deno.test("initialize validates every option, naming it and the value", () => {
  const cases: [
    unknown,
    ErrorConstructor | TypeErrorConstructor | RangeErrorConstructor,
    RegExp,
  ][] = [
    [null, TypeError, /options must be an object, got null/],
    [42, TypeError, /options must be an object, got 42/],
    [{ backend: "gpu" }, RangeError, /backend must be one of "auto", "cuda", "host", got "gpu"/],
    [{ backend: 1 }, TypeError, /backend must be a string, got 1/],
    [{ deviceId: -1 }, RangeError, /deviceId must be a non-negative integer, got -1/],
    [{ deviceId: 1.5 }, RangeError, /deviceId .* got 1.5/],
    [{ deviceId: NaN }, RangeError, /deviceId .* got NaN/],
    [{ deviceId: "0" }, TypeError, /deviceId must be a number, got "0"/],
    [
      { backend: "host", hostMemory: 0 },
      RangeError,
      /hostMemory must be a positive integer, got 0/,
    ],
    [{ backend: "host", hostMemory: Infinity }, RangeError, /hostMemory .* got Infinity/],
    [{ backend: "host", hostMemory: 8n }, TypeError, /hostMemory must be a number, got 8n/],
    [{ backend: "host", memoryLimit: -5 }, RangeError, /memoryLimit .* got -5/],
  ];
  for (const [options, kind, message] of cases) {
    assert.throws(() => initialize(options as never), (e: Error) => {
      assert.ok(e instanceof kind, `${Deno.inspect(options)} threw ${e.name}`);
      assert.match(e.message, /^Cannot initialize the scheduler: /);
      assert.match(e.message, message);
      return true;
    });
  }
  assert.throws(() => getScheduler(), SchedulerError, "nothing was left initialized");
});

Deno.test("memoryLimit above the device's memory is refused and leaves nothing initialized", () => {
  assert.throws(
    () => initialize({ backend: "host", hostMemory: 64 * MiB, memoryLimit: 65 * MiB }),
    /memoryLimit must not exceed the device's 67108864 bytes, got 68157440/,
  );
  const sched = initialize({ backend: "host", hostMemory: 64 * MiB, memoryLimit: 32 * MiB });
  assert.equal(sched.memoryLimit, 32 * MiB);
  shutdown();
});

Deno.test("initialize twice throws until shutdown; shutdown is idempotent", () => {
  const sched = initialize({ backend: "host", hostMemory: 64 * MiB });
  try {
    assert.equal(getScheduler(), sched);
    assert.throws(() => initialize({ backend: "host" }), {
      name: "SchedulerError",
      message: "Cannot initialize the scheduler: it is already initialized, call shutdown() first",
    });
  } finally {
    shutdown();
  }
  shutdown();
  sched.shutdown();
  assert.equal(sched.active, false);
  assert.throws(() => getScheduler(), /Scheduler is not initialized: call initialize\(\) first/);
  assert.throws(() => sched.createStream(), /Cannot create a stream: the scheduler was shut down/);
  assert.throws(() => sched.memoryInfo(), /the scheduler was shut down/);
  initialize({ backend: "host" }).shutdown();
});

Deno.test("the host backend describes a simulated device of the requested size", () => {
  using sched = initialize({ backend: "host", hostMemory: 512 * MiB });
  assert.equal(sched.backend, "host");
  assert.equal(sched.device.totalMemory, 512 * MiB);
  assert.equal(sched.memoryLimit, 512 * MiB);
  assert.deepEqual(sched.device.priorityRange, { least: 0, greatest: -5 });
  assert.deepEqual(sched.memoryInfo(), { free: 512 * MiB, total: 512 * MiB });
});

Deno.test("backend auto picks CUDA exactly when a device is usable", () => {
  using sched = initialize();
  assert.equal(sched.backend, cudaSkipReason === undefined ? "cuda" : "host");
});

Deno.test({
  name: `backend cuda without a usable device fails with the CUDA reason${
    cudaSkipReason === undefined ? " (skipped: a CUDA device is usable here)" : ""
  }`,
  ignore: cudaSkipReason === undefined,
  fn() {
    assert.throws(() => initialize({ backend: "cuda" }), (e: Error) => {
      assert.ok(e instanceof SchedulerError);
      assert.match(e.message, /^Cannot initialize the scheduler: no usable CUDA device: /);
      assert.ok(e.message.includes(cudaSkipReason!));
      return true;
    });
    assert.throws(() => getScheduler(), SchedulerError);
  },
});

Deno.test({
  name: `a CUDA device index past the last one is refused${
    cudaSkipReason !== undefined ? ` (skipped: ${cudaSkipReason})` : ""
  }`,
  ignore: cudaSkipReason !== undefined,
  fn() {
    assert.throws(
      () => initialize({ backend: "cuda", deviceId: 64 }),
      /CUDA device 64 does not exist/,
    );
  },
});
