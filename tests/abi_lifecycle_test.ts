import assert from "node:assert/strict";
import { cudaSkipReason, expectStatus, lib, rawStream, Status } from "./_helpers.ts";
import { lastError } from "../src/native/unwrap.ts";
import { BackendId } from "../src/native/status_codes.ts";

const GiB = 1024 ** 3;

Deno.test("libsched reports its ABI version", () => {
  assert.equal(lib().sched_abi_version(), 2);
});

Deno.test("every call before sched_init fails with NOT_INITIALIZED and a message", () => {
  assert.equal(lib().sched_backend_active(), BackendId.NONE);
  expectStatus(
    lib().sched_stream_create(0, 0, new Uint32Array(1), new Int32Array(1)),
    Status.NOT_INITIALIZED,
  );
  assert.match(lastError(), /not initialized/);
  expectStatus(lib().sched_stream_query(1), Status.NOT_INITIALIZED);
  expectStatus(lib().sched_event_create(0, new Uint32Array(1)), Status.NOT_INITIALIZED);
  expectStatus(lib().sched_malloc(16n, new BigUint64Array(1)), Status.NOT_INITIALIZED);
  expectStatus(
    lib().sched_mem_info(new BigUint64Array(1), new BigUint64Array(1)),
    Status.NOT_INITIALIZED,
  );
  expectStatus(lib().sched_device_info_get(new Uint8Array(304)), Status.NOT_INITIALIZED);
  expectStatus(lib().sched_shutdown(), Status.OK, "shutdown when not initialized");
});

Deno.test("sched_init rejects unknown backends, bad devices and a zero host capacity", () => {
  expectStatus(lib().sched_init(0, 0, BigInt(GiB)), Status.INVALID_ARGUMENT);
  expectStatus(lib().sched_init(7, 0, BigInt(GiB)), Status.INVALID_ARGUMENT);
  expectStatus(lib().sched_init(BackendId.HOST, -1, BigInt(GiB)), Status.NO_DEVICE);
  expectStatus(lib().sched_init(BackendId.HOST, 1, BigInt(GiB)), Status.NO_DEVICE);
  assert.match(lastError(), /Host device 1 does not exist/);
  expectStatus(lib().sched_init(BackendId.HOST, 0, 0n), Status.INVALID_ARGUMENT);
  assert.equal(lib().sched_backend_active(), BackendId.NONE, "failed inits leave nothing running");
});

Deno.test("sched_init twice fails until sched_shutdown, then works again", () => {
  expectStatus(lib().sched_init(BackendId.HOST, 0, BigInt(GiB)), Status.OK);
  try {
    assert.equal(lib().sched_backend_active(), BackendId.HOST);
    expectStatus(lib().sched_init(BackendId.HOST, 0, BigInt(GiB)), Status.ALREADY_INITIALIZED);
    const stream = rawStream();
    expectStatus(lib().sched_shutdown(), Status.OK);
    expectStatus(lib().sched_stream_query(stream), Status.NOT_INITIALIZED, "stream after shutdown");
    expectStatus(lib().sched_init(BackendId.HOST, 0, BigInt(GiB)), Status.OK);
    expectStatus(
      lib().sched_stream_query(stream),
      Status.INVALID_HANDLE,
      "old handle in a new session",
    );
  } finally {
    lib().sched_shutdown();
  }
});

Deno.test("sched_device_count reports one host device and explains a missing CUDA device", () => {
  const count = new Int32Array(1);
  expectStatus(lib().sched_device_count(BackendId.HOST, count), Status.OK);
  assert.equal(count[0], 1);
  expectStatus(lib().sched_device_count(9, count), Status.INVALID_ARGUMENT);
  const status = lib().sched_device_count(BackendId.CUDA, count);
  if (cudaSkipReason === undefined) {
    expectStatus(status, Status.OK);
    assert.ok(count[0]! >= 1);
  } else {
    assert.notEqual(status, Status.OK);
    assert.ok(lastError().length > 0, "the failure carries CUDA's message");
  }
});

Deno.test("sched_last_error truncates to the buffer and reports the full length", () => {
  lib().sched_stream_query(1);
  const full = new Uint8Array(1024);
  const length = lib().sched_last_error(full, full.length);
  assert.ok(length > 8);
  const small = new Uint8Array(8);
  assert.equal(lib().sched_last_error(small, small.length), length);
  assert.equal(small[7], 0, "NUL-terminated");
  assert.deepEqual(small.subarray(0, 7), full.subarray(0, 7));
});
