import assert from "node:assert/strict";
import {
  backendTest,
  d2h,
  expectStatus,
  kernels,
  lib,
  nativeOf,
  rawEvent,
  rawMallocAsync,
  rawPool,
  rawStream,
  spin,
  Status,
} from "./_helpers.ts";

backendTest(
  "sched_stream_create clamps priorities to the device range and reports them",
  (sched) => {
    const { least, greatest } = sched.device.priorityRange;
    const out = new Uint32Array(1), prio = new Int32Array(1);
    expectStatus(lib().sched_stream_create(greatest - 100, 0, out, prio), Status.OK);
    assert.equal(prio[0], greatest);
    expectStatus(lib().sched_stream_create(least + 100, 0, out, prio), Status.OK);
    assert.equal(prio[0], least);
    assert.notEqual(out[0], 0);
  },
);

backendTest(
  "stream handles that are zero, unknown or destroyed are rejected without a crash",
  () => {
    for (const bad of [0, 12345, 0xffffffff]) {
      expectStatus(lib().sched_stream_query(bad), Status.INVALID_HANDLE, `query ${bad}`);
      expectStatus(lib().sched_stream_synchronize(bad), Status.INVALID_HANDLE, `sync ${bad}`);
      expectStatus(lib().sched_stream_destroy(bad), Status.INVALID_HANDLE, `destroy ${bad}`);
    }
    const s = rawStream();
    expectStatus(lib().sched_stream_destroy(s), Status.OK);
    expectStatus(lib().sched_stream_destroy(s), Status.INVALID_HANDLE, "double destroy");
    expectStatus(lib().sched_stream_query(s), Status.INVALID_HANDLE, "query after destroy");
    expectStatus(lib().sched_stream_notify(s, 1), Status.INVALID_HANDLE, "notify after destroy");
    const reused = rawStream();
    assert.notEqual(reused, s, "a reused slot gets a new generation");
    expectStatus(lib().sched_stream_query(s), Status.INVALID_HANDLE, "old handle stays dead");
  },
);

backendTest("work on one stream runs in order", async (sched) => {
  const s = rawStream();
  const pool = rawPool();
  const n = 1 << 20;
  const buf = rawMallocAsync(pool, s, n * 4);
  const first = new Uint8Array(n * 4), second = new Uint8Array(n * 4);
  const native = nativeOf(s);
  // A long kernel, then a fill, a read, a memset and another read: each must
  // see exactly the state left by the operation queued before it.
  spin(sched.backend, native, 20);
  assert.equal(kernels(sched.backend).gs_fill_u32(native, buf, 7, BigInt(n)), 0);
  expectStatus(lib().sched_stream_query(s), Status.NOT_READY, "still busy right after queueing");
  // On CUDA a copy into pageable memory (a JS typed array) returns only when
  // done, so these two also wait for the spin; the order is what is checked.
  expectStatus(d2h(first, buf, s), Status.OK);
  expectStatus(lib().sched_memset_async(buf, 0n, 0xab, BigInt(n * 4), s), Status.OK);
  expectStatus(d2h(second, buf, s), Status.OK);
  expectStatus(lib().sched_stream_synchronize(s), Status.OK);
  expectStatus(lib().sched_stream_query(s), Status.OK);
  const words = new Uint32Array(first.buffer);
  for (const i of [0, 1, n >> 1, n - 1]) assert.equal(words[i], 7 + i);
  assert.ok(second.every((b) => b === 0xab));
  await Promise.resolve();
});

backendTest(
  "a stream waiting on an event runs only after the event's stream reached it",
  (sched) => {
    const producer = rawStream(), consumer = rawStream();
    const pool = rawPool();
    const buf = rawMallocAsync(pool, producer, 4096);
    expectStatus(lib().sched_memset_async(buf, 0n, 1, 4096n, producer), Status.OK);
    expectStatus(lib().sched_stream_synchronize(producer), Status.OK);
    const ready = rawEvent();
    spin(sched.backend, nativeOf(producer), 30);
    expectStatus(lib().sched_memset_async(buf, 0n, 2, 4096n, producer), Status.OK);
    expectStatus(lib().sched_event_record(ready, producer), Status.OK);
    expectStatus(lib().sched_stream_wait_event(consumer, ready), Status.OK);
    const seen = new Uint8Array(4096);
    expectStatus(d2h(seen, buf, consumer), Status.OK);
    expectStatus(lib().sched_stream_synchronize(consumer), Status.OK);
    assert.ok(seen.every((b) => b === 2), "the consumer saw the producer's second memset");
  },
);

backendTest("events report completion, time, and reject bad handles", (sched) => {
  const s = rawStream();
  const never = rawEvent();
  expectStatus(lib().sched_event_query(never), Status.OK, "an unrecorded event counts as complete");
  expectStatus(lib().sched_event_synchronize(never), Status.OK);
  expectStatus(lib().sched_stream_wait_event(s, never), Status.OK, "waiting on it is a no-op");

  const start = rawEvent(1), end = rawEvent(1);
  const ms = new Float32Array(1);
  expectStatus(
    lib().sched_event_elapsed_ms(start, end, ms),
    Status.INVALID_ARGUMENT,
    "never recorded",
  );
  expectStatus(lib().sched_event_record(start, s), Status.OK);
  spin(sched.backend, nativeOf(s), 20);
  expectStatus(lib().sched_event_record(end, s), Status.OK);
  expectStatus(lib().sched_event_query(end), Status.NOT_READY);
  expectStatus(lib().sched_event_synchronize(end), Status.OK);
  expectStatus(lib().sched_event_query(end), Status.OK);
  expectStatus(lib().sched_event_elapsed_ms(start, end, ms), Status.OK);
  assert.ok(ms[0]! >= 19, `elapsed ${ms[0]} ms covers the 20 ms spin`);
  expectStatus(lib().sched_event_elapsed_ms(never, end, ms), Status.INVALID_ARGUMENT, "no timing");

  expectStatus(lib().sched_event_create(2, new Uint32Array(1)), Status.INVALID_ARGUMENT, "flags");
  expectStatus(lib().sched_event_destroy(start), Status.OK);
  expectStatus(lib().sched_event_destroy(start), Status.INVALID_HANDLE, "double destroy");
  expectStatus(lib().sched_event_record(start, s), Status.INVALID_HANDLE);
  expectStatus(lib().sched_event_record(end, 0), Status.INVALID_HANDLE, "stream 0");
  expectStatus(lib().sched_stream_wait_event(s, 0), Status.INVALID_HANDLE, "event 0");
  expectStatus(lib().sched_event_notify(start, 1), Status.INVALID_HANDLE);
});

backendTest("an event destroyed while a stream waits on it still releases the stream", (sched) => {
  const a = rawStream(), b = rawStream();
  const e = rawEvent();
  spin(sched.backend, nativeOf(a), 20);
  expectStatus(lib().sched_event_record(e, a), Status.OK);
  expectStatus(lib().sched_stream_wait_event(b, e), Status.OK);
  expectStatus(lib().sched_event_destroy(e), Status.OK);
  expectStatus(lib().sched_stream_synchronize(b), Status.OK);
  expectStatus(lib().sched_stream_query(a), Status.OK, "b waited for a");
});

backendTest("a stream destroyed with queued work still runs it", (sched) => {
  const s = rawStream(), watcher = rawStream();
  const pool = rawPool();
  const buf = rawMallocAsync(pool, watcher, 256);
  expectStatus(lib().sched_stream_synchronize(watcher), Status.OK);
  const done = rawEvent();
  spin(sched.backend, nativeOf(s), 10);
  expectStatus(lib().sched_memset_async(buf, 0n, 9, 256n, s), Status.OK);
  expectStatus(lib().sched_event_record(done, s), Status.OK);
  expectStatus(lib().sched_stream_destroy(s), Status.OK);
  expectStatus(lib().sched_event_synchronize(done), Status.OK);
  const seen = new Uint8Array(256);
  expectStatus(d2h(seen, buf, watcher), Status.OK);
  expectStatus(lib().sched_stream_synchronize(watcher), Status.OK);
  assert.ok(seen.every((b) => b === 9));
});

backendTest("host functions run in stream order, by handle and by native stream", async () => {
  const s = rawStream();
  const order: number[] = [];
  const cb = Deno.UnsafeCallback.threadSafe(
    { parameters: ["pointer"], result: "void" } as const,
    (p) => void order.push(Number(Deno.UnsafePointer.value(p))),
  );
  try {
    expectStatus(
      lib().sched_launch_host_func(s, cb.pointer, Deno.UnsafePointer.create(1n)),
      Status.OK,
    );
    const native = nativeOf(s);
    const launchNative = Deno.dlopen(
      (await import("../src/native/loader.ts")).libraryPath(),
      {
        sched_launch_host_func_native: {
          parameters: ["pointer", "function", "pointer"],
          result: "i32",
        },
      } as const,
    );
    try {
      const f = launchNative.symbols.sched_launch_host_func_native;
      expectStatus(f(native, cb.pointer, Deno.UnsafePointer.create(2n)), Status.OK);
      expectStatus(f(null, cb.pointer, null), Status.INVALID_HANDLE, "null native stream");
      expectStatus(
        f(Deno.UnsafePointer.create(0x1000n), cb.pointer, null),
        Status.INVALID_HANDLE,
        "a pointer that is not a stream",
      );
    } finally {
      launchNative.close();
    }
    expectStatus(lib().sched_launch_host_func(s, null, null), Status.INVALID_ARGUMENT, "null fn");
    // The worker blocks in the callback until the event loop runs it, so wait without blocking.
    while (lib().sched_stream_query(s) !== Status.OK) await new Promise((r) => setTimeout(r, 1));
    assert.deepEqual(order, [1, 2]);
  } finally {
    cb.close();
  }
});
