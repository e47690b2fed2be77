import assert from "node:assert/strict";
import type { Scheduler } from "../mod.ts";
import {
  backendTest,
  d2h,
  expectStatus,
  gate,
  hold,
  lib,
  nativeOf,
  rawMallocAsync,
  rawPool,
  rawStream,
  spin,
  Status,
} from "./_helpers.ts";

interface RawSet {
  handles: Uint32Array;
  given: Uint32Array;
}

function createSet(counts: number[], expected: number = Status.OK): RawSet {
  const handles = new Uint32Array(counts.length + 1);
  const given = new Uint32Array(counts.length + 1);
  expectStatus(
    lib().sched_partition_create(Uint32Array.from(counts), counts.length, handles, given),
    expected,
    `sched_partition_create([${counts}])`,
  );
  return { handles, given };
}

function destroySet(set: RawSet): void {
  for (const h of set.handles) {
    if (h !== 0) expectStatus(lib().sched_partition_destroy(h), Status.OK);
  }
}

/** False (and checks the refusal) on a CUDA device that cannot partition SMs. */
function partitionable(sched: Scheduler): boolean {
  if (sched.device.smGranularity > 0) return true;
  createSet([8], Status.UNSUPPORTED);
  return false;
}

backendTest(
  "sched_partition_create gives whole SM groups in order and the rest to a last partition",
  (sched) => {
    if (!partitionable(sched)) return;
    const { smCount, smGranularity: g, smGroups } = sched.device;
    if (sched.backend === "host") {
      assert.deepEqual([smCount, g, smGroups], [132, 8, 16], "a simulated H100/H200");
    }
    const half = Math.floor(smGroups / 2) * g;
    const set = createSet([half, half]);
    assert.deepEqual([...set.given.subarray(0, 2)], [half, half]);
    assert.ok(set.handles[0] !== 0 && set.handles[1] !== 0 && set.handles[0] !== set.handles[1]);
    const rest = set.given[2]!;
    assert.ok(rest <= smCount - 2 * half, `the rest (${rest} SMs) is what remains`);
    assert.equal(set.handles[2] === 0, rest === 0, "a rest handle exactly when SMs remain");
    if (sched.backend === "host") assert.equal(rest, 4);

    // Counts are rounded up to whole groups; each call is a new, independent set.
    const rounded = createSet([1, g + 1]);
    assert.deepEqual([...rounded.given.subarray(0, 2)], [g, 2 * g]);
    assert.ok(!rounded.handles.some((h) => h !== 0 && set.handles.includes(h)));
    destroySet(set);
    destroySet(rounded);
  },
);

backendTest("sched_partition_create rejects bad requests without creating anything", (sched) => {
  if (!partitionable(sched)) return;
  const { smCount, smGranularity: g } = sched.device;
  const handles = new Uint32Array(3), given = new Uint32Array(3);
  expectStatus(
    lib().sched_partition_create(new Uint32Array(1), 0, handles, given),
    Status.INVALID_ARGUMENT,
    "n = 0",
  );
  expectStatus(
    lib().sched_partition_create(Uint32Array.from([8, 0]), 2, handles, given),
    Status.INVALID_ARGUMENT,
    "a zero count",
  );
  expectStatus(
    lib().sched_partition_create(Uint32Array.from([smCount, 8]), 2, handles, given),
    Status.INVALID_ARGUMENT,
    "more SMs than the device has",
  );
  expectStatus(
    lib().sched_partition_create(null, 1, handles, given),
    Status.INVALID_ARGUMENT,
    "null counts",
  );
  expectStatus(
    lib().sched_partition_create(Uint32Array.from([8]), 1, null, given),
    Status.INVALID_ARGUMENT,
    "null out_partitions",
  );
  // All SMs fit the sum check but not in whole groups when the count is no multiple.
  if (smCount % g !== 0) createSet([smCount], Status.INVALID_ARGUMENT);
  assert.deepEqual([...handles], [0, 0, 0], "outputs are written only on success");
  for (const bad of [0, 12345, 0xffffffff]) {
    expectStatus(lib().sched_partition_destroy(bad), Status.INVALID_HANDLE, `destroy ${bad}`);
  }
});

backendTest("a partition with streams bound to it cannot be destroyed", (sched) => {
  if (!partitionable(sched)) return;
  const set = createSet([sched.device.smGranularity]);
  const p = set.handles[0]!;
  const a = rawStream(0, p), b = rawStream(0, p);
  expectStatus(lib().sched_partition_destroy(p), Status.INVALID_ARGUMENT, "two streams bound");
  expectStatus(lib().sched_stream_destroy(a), Status.OK);
  expectStatus(lib().sched_partition_destroy(p), Status.INVALID_ARGUMENT, "one stream bound");
  expectStatus(lib().sched_stream_rebind(b, 0), Status.OK);
  expectStatus(lib().sched_partition_destroy(p), Status.OK, "none bound");
  expectStatus(lib().sched_partition_destroy(p), Status.INVALID_HANDLE, "double destroy");
  const out = new Uint32Array(1);
  expectStatus(
    lib().sched_stream_create(0, p, out, null),
    Status.INVALID_HANDLE,
    "a stream in a destroyed partition",
  );
  expectStatus(lib().sched_stream_create(0, 777, out, null), Status.INVALID_HANDLE, "unknown");
  expectStatus(lib().sched_stream_rebind(b, p), Status.INVALID_HANDLE, "rebind to a dead one");
  expectStatus(lib().sched_stream_rebind(0, 0), Status.INVALID_HANDLE, "rebind stream 0");
  if (set.handles[1] !== 0) expectStatus(lib().sched_partition_destroy(set.handles[1]!), Status.OK);
});

backendTest(
  "sched_stream_rebind keeps the stream's handle and the order of its queued work",
  (sched) => {
    if (!partitionable(sched)) return;
    const set = createSet([sched.device.smGranularity]);
    const s = rawStream();
    const pool = rawPool();
    const bytes = 1 << 16;
    const buf = rawMallocAsync(pool, s, bytes);
    const before = nativeOf(s);
    // Queued before the move: a wait on a closed gate, then a memset of 1.
    // Queued after: a memset of 2. Were the new native stream not ordered
    // after the old one, the 2 would land first and the 1 would win.
    const g = gate();
    hold(sched.backend, before, g);
    expectStatus(lib().sched_memset_async(buf, 0n, 1, BigInt(bytes), s), Status.OK);
    expectStatus(lib().sched_stream_rebind(s, set.handles[0]!), Status.OK);
    const after = nativeOf(s);
    if (sched.backend === "cuda") {
      assert.notEqual(
        Deno.UnsafePointer.value(after),
        Deno.UnsafePointer.value(before),
        "a CUDA stream cannot change green context: the native stream is new",
      );
    }
    expectStatus(
      lib().sched_stream_query(s),
      Status.NOT_READY,
      "the moved stream waits for the gate",
    );
    expectStatus(lib().sched_memset_async(buf, 0n, 2, BigInt(bytes), s), Status.OK);
    g.open();
    const seen = new Uint8Array(bytes);
    expectStatus(d2h(seen, buf, s), Status.OK);
    expectStatus(lib().sched_stream_synchronize(s), Status.OK);
    assert.ok(seen.every((v) => v === 2), "the memset queued after the move ran last");
    expectStatus(lib().sched_stream_rebind(s, set.handles[0]!), Status.OK, "same partition: no-op");
    expectStatus(lib().sched_partition_destroy(set.handles[0]!), Status.INVALID_ARGUMENT);
    expectStatus(lib().sched_stream_rebind(s, 0), Status.OK, "back to the whole device");
    destroySet(set);
  },
);

backendTest(
  "a partition destroyed while its former streams still run lets their work finish",
  (sched) => {
    if (!partitionable(sched)) return;
    const g = sched.device.smGranularity;
    // Both sets first: on CUDA, making green contexts waits for the device
    // to go idle, so no set can be made while the gate holds a stream.
    const first = createSet([g, g]);
    const second = createSet([2 * g]);
    const s = rawStream(-1, first.handles[0]!);
    const pool = rawPool();
    const buf = rawMallocAsync(pool, s, 4096);
    const closed = gate();
    hold(sched.backend, nativeOf(s), closed);
    spin(sched.backend, nativeOf(s), 20);
    expectStatus(lib().sched_memset_async(buf, 0n, 3, 4096n, s), Status.OK);
    expectStatus(lib().sched_stream_rebind(s, second.handles[0]!), Status.OK);
    // The old set goes while its former stream is still held in it.
    destroySet(first);
    expectStatus(lib().sched_stream_query(s), Status.NOT_READY);
    expectStatus(lib().sched_memset_async(buf, 2048n, 4, 2048n, s), Status.OK);
    closed.open();
    const seen = new Uint8Array(4096);
    expectStatus(d2h(seen, buf, s), Status.OK);
    expectStatus(lib().sched_stream_synchronize(s), Status.OK);
    assert.ok(seen.subarray(0, 2048).every((v) => v === 3));
    assert.ok(seen.subarray(2048).every((v) => v === 4));
    // Further sets are still made (and reap the retired one on CUDA).
    destroySet(createSet([g]));
    expectStatus(lib().sched_stream_destroy(s), Status.OK);
    destroySet(second);
  },
);

Deno.test("sched_partition_create and sched_stream_rebind fail before sched_init", () => {
  expectStatus(
    lib().sched_partition_create(Uint32Array.from([8]), 1, new Uint32Array(2), new Uint32Array(2)),
    Status.NOT_INITIALIZED,
  );
  expectStatus(lib().sched_partition_destroy(1), Status.NOT_INITIALIZED);
  expectStatus(lib().sched_stream_rebind(1, 0), Status.NOT_INITIALIZED);
});

backendTest("sched_partition_create_sets makes overlapping SM sets of one split", (sched) => {
  if (!partitionable(sched)) return;
  const { smGranularity: g, smGroups } = sched.device;
  const all = (1n << BigInt(smGroups)) - 1n;
  const reserved = 0b11n << BigInt(smGroups - 2); // the top two groups
  const shared = all & ~reserved;
  const masks = BigUint64Array.of(reserved | shared, shared, reserved);
  const remainders = Uint8Array.of(1, 1, 0);
  const handles = new Uint32Array(3);
  const given = new Uint32Array(3);
  expectStatus(lib().sched_partition_create_sets(masks, remainders, 3, handles, given), Status.OK);
  assert.equal(new Set(handles).size, 3, "three distinct handles");
  assert.equal(given[2], 2 * g, "the reserved groups alone");
  assert.ok(given[1]! >= (smGroups - 2) * g, "the shared groups, maybe with the SMs left over");
  assert.equal(given[0]! - given[1]!, 2 * g, "the owner's set: its groups plus the shared ones");
  if (sched.backend === "host") assert.deepEqual([...given], [132, 116, 16]);
  // A stream moves between overlapping sets and keeps working.
  const s = rawStream(0, handles[1]!);
  expectStatus(lib().sched_stream_rebind(s, handles[0]!), Status.OK);
  spin(sched.backend, nativeOf(s), 1);
  expectStatus(lib().sched_stream_synchronize(s), Status.OK);
  expectStatus(lib().sched_stream_destroy(s), Status.OK);
  for (const h of handles) expectStatus(lib().sched_partition_destroy(h), Status.OK);
  // The same set again (reused from the cache on CUDA) is a new, working handle.
  expectStatus(lib().sched_partition_create_sets(masks, remainders, 1, handles, given), Status.OK);
  expectStatus(lib().sched_partition_destroy(handles[0]!), Status.OK);
});

backendTest(
  "sched_partition_create_sets refuses empty sets and groups past the device's",
  (sched) => {
    if (!partitionable(sched)) return;
    const out = new Uint32Array(2);
    const given = new Uint32Array(2);
    const bad = (masks: bigint[], remainders: number[], n = masks.length) =>
      lib().sched_partition_create_sets(
        BigUint64Array.from(masks),
        Uint8Array.from(remainders),
        n,
        out,
        given,
      );
    expectStatus(bad([0n], [0]), Status.INVALID_ARGUMENT, "a set of no SM");
    expectStatus(
      bad([1n << BigInt(sched.device.smGroups)], [0]),
      Status.INVALID_ARGUMENT,
      "a group past smGroups",
    );
    expectStatus(bad([1n, 0n], [0, 0]), Status.INVALID_ARGUMENT, "the second set empty: none made");
    expectStatus(bad([1n], [0], 0), Status.INVALID_ARGUMENT, "n = 0");
    if (sched.backend === "host") {
      expectStatus(bad([0n], [1]), Status.OK, "the remainder alone is 4 SMs on the host");
      assert.equal(given[0], 4);
      expectStatus(lib().sched_partition_destroy(out[0]!), Status.OK);
    }
  },
);
