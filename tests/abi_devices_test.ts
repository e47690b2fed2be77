/**
 * libsched's current-device model (sched.h "Several devices") on the host
 * backend's simulated devices, called raw.
 */
import assert from "node:assert/strict";
import { BackendId } from "../src/native/status_codes.ts";
import {
  d2h,
  expectStatus,
  h2d,
  lib,
  randomBytes,
  rawEvent,
  rawMallocAsync,
  rawPool,
  rawStream,
  Status,
} from "./_helpers.ts";

const MiB = 1024 ** 2;
const i32 = new Int32Array(1);
const ptrOut = new BigUint64Array(1);
const free = new BigUint64Array(1), total = new BigUint64Array(1);

function withDevices(n: number, capacity: number, fn: () => void): void {
  expectStatus(lib().sched_init_devices(BackendId.HOST, 0, n, BigInt(capacity)), Status.OK);
  try {
    fn();
  } finally {
    expectStatus(lib().sched_shutdown(), Status.OK);
  }
}

function setDevice(d: number): void {
  expectStatus(lib().sched_set_device(d), Status.OK, `sched_set_device(${d})`);
}

function freeOf(d: number): number {
  setDevice(d);
  expectStatus(lib().sched_mem_info(free, total), Status.OK);
  return Number(free[0]);
}

Deno.test("sched_init_devices validates its counts and the default device", () => {
  expectStatus(
    lib().sched_init_devices(BackendId.HOST, 0, 0, BigInt(MiB)),
    Status.INVALID_ARGUMENT,
  );
  expectStatus(
    lib().sched_init_devices(BackendId.HOST, 0, 65, BigInt(MiB)),
    Status.INVALID_ARGUMENT,
  );
  expectStatus(lib().sched_init_devices(BackendId.HOST, 2, 2, BigInt(MiB)), Status.NO_DEVICE);
  expectStatus(lib().sched_set_device(0), Status.NOT_INITIALIZED);
  withDevices(2, MiB, () => {
    expectStatus(lib().sched_device_count(BackendId.HOST, i32), Status.OK);
    assert.equal(i32[0], 2);
  });
  expectStatus(lib().sched_device_count(BackendId.HOST, i32), Status.OK);
  assert.equal(i32[0], 1, "one host device when not initialized");
});

Deno.test("each simulated device has its own capacity; objects remember their device", () => {
  withDevices(2, 4 * MiB, () => {
    expectStatus(lib().sched_get_device(i32), Status.OK);
    assert.equal(i32[0], 0);
    expectStatus(lib().sched_set_device(2), Status.INVALID_ARGUMENT);
    expectStatus(lib().sched_set_device(-1), Status.INVALID_ARGUMENT);
    expectStatus(lib().sched_get_device(i32), Status.OK);
    assert.equal(i32[0], 0, "a refused sched_set_device changes nothing");

    setDevice(1);
    const s1 = rawStream();
    const p1 = rawPool();
    const a = rawMallocAsync(p1, s1, 3 * MiB);
    expectStatus(lib().sched_stream_device(s1, i32), Status.OK);
    assert.equal(i32[0], 1);
    expectStatus(lib().sched_pointer_device(a, i32), Status.OK);
    assert.equal(i32[0], 1);
    assert.equal(freeOf(1), MiB);
    assert.equal(freeOf(0), 4 * MiB, "device 1's allocation costs device 0 nothing");
    // Device 1 is full; device 0 still gives its whole capacity.
    expectStatus(lib().sched_malloc_async(p1, s1, BigInt(2 * MiB), ptrOut), Status.OUT_OF_MEMORY);
    setDevice(0);
    const s0 = rawStream();
    const p0 = rawPool();
    const b = rawMallocAsync(p0, s0, 4 * MiB);
    // A pool allocates only on a stream of its own device.
    expectStatus(lib().sched_malloc_async(p1, s0, 16n, ptrOut), Status.INVALID_ARGUMENT);
    // Calls on handles act on the handle's device whatever the current one is.
    expectStatus(lib().sched_free_async(a, s1), Status.OK);
    expectStatus(lib().sched_stream_synchronize(s1), Status.OK);
    assert.equal(freeOf(1), 4 * MiB);
    expectStatus(lib().sched_free_async(b, s0), Status.OK);
    expectStatus(lib().sched_stream_synchronize(s0), Status.OK);
    assert.equal(freeOf(0), 4 * MiB);
  });
  // A new initialization starts every thread on its default device again.
  withDevices(1, MiB, () => {
    expectStatus(lib().sched_get_device(i32), Status.OK);
    assert.equal(i32[0], 0);
  });
});

Deno.test("events record on their own device's streams and are waited on from any device", () => {
  withDevices(2, 4 * MiB, () => {
    setDevice(0);
    const s0 = rawStream();
    const e0 = rawEvent();
    setDevice(1);
    const s1 = rawStream();
    expectStatus(lib().sched_event_record(e0, s1), Status.INVALID_ARGUMENT);
    expectStatus(lib().sched_event_record(e0, s0), Status.OK);
    expectStatus(lib().sched_stream_wait_event(s1, e0), Status.OK);
    expectStatus(lib().sched_stream_synchronize(s1), Status.OK);
    expectStatus(lib().sched_event_query(e0), Status.OK);
  });
});

Deno.test("device-to-device copies between simulated devices are bounds-checked and bit-exact", () => {
  withDevices(2, 8 * MiB, () => {
    expectStatus(lib().sched_device_can_access_peer(0, 1, i32), Status.OK);
    assert.equal(i32[0], 1);
    expectStatus(lib().sched_device_can_access_peer(0, 2, i32), Status.INVALID_ARGUMENT);
    setDevice(0);
    const s0 = rawStream();
    const a = rawMallocAsync(rawPool(), s0, MiB);
    setDevice(1);
    const s1 = rawStream();
    const b = rawMallocAsync(rawPool(), s1, MiB);
    const input = randomBytes(MiB, 11);
    expectStatus(h2d(a, input, s0), Status.OK);
    expectStatus(lib().sched_stream_synchronize(s0), Status.OK);
    expectStatus(lib().sched_memcpy_async(b, 0n, a, 0n, BigInt(MiB), 3, s1), Status.OK);
    expectStatus(
      lib().sched_memcpy_async(b, 1n, a, 0n, BigInt(MiB), 3, s1),
      Status.INVALID_ARGUMENT,
      "past the destination",
    );
    const output = new Uint8Array(MiB);
    expectStatus(d2h(output, b, s1), Status.OK);
    expectStatus(lib().sched_stream_synchronize(s1), Status.OK);
    assert.deepEqual(output, input);
  });
});
