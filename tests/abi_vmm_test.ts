/**
 * libsched's virtual memory calls (sched_vmm_*): reserve, commit, copy,
 * decommit in stream order, shared granules, and every bad argument.
 */
import assert from "node:assert/strict";
import {
  backendTest,
  d2h,
  expectStatus,
  gate,
  h2d,
  hold,
  lib,
  randomBytes,
  rawStream,
  Status,
} from "./_helpers.ts";

const out = new BigUint64Array(1), out2 = new BigUint64Array(1);

function granularity(): number {
  expectStatus(lib().sched_vmm_granularity(0, out), Status.OK);
  return Number(out[0]);
}

function reserve(bytes: number): bigint {
  expectStatus(lib().sched_vmm_reserve(0, BigInt(bytes), out), Status.OK);
  return out[0]!;
}

function at(address: bigint): Deno.PointerObject {
  return Deno.UnsafePointer.create(address)!;
}

function usage(): { committed: number; mapped: number } {
  expectStatus(lib().sched_vmm_usage(0, out, out2), Status.OK);
  return { committed: Number(out[0]), mapped: Number(out2[0]) };
}

backendTest(
  "committed blocks are device memory at fixed addresses; decommit waits for the stream",
  (sched) => {
    const g = granularity();
    assert.ok(g >= 4096 && (g & (g - 1)) === 0, `granularity ${g} is a power of two`);
    const base = reserve(8 * g);
    const s = rawStream();
    const big = at(base), size = 3 * g;
    expectStatus(lib().sched_vmm_commit(0, big, BigInt(size)), Status.OK);
    assert.deepEqual(usage(), { committed: size, mapped: size });
    const data = randomBytes(size, 1);
    expectStatus(h2d(big, data, s), Status.OK);
    // The copy out is held behind a gate; the decommit queued after it must not unmap under it.
    const back = new Uint8Array(size);
    const closed = gate();
    hold(
      sched.backend,
      (() => {
        const o = new BigUint64Array(1);
        expectStatus(lib().sched_stream_native(s, o), Status.OK);
        return Deno.UnsafePointer.create(o[0]!);
      })(),
      closed,
    );
    expectStatus(d2h(back, big, s), Status.OK);
    expectStatus(lib().sched_vmm_decommit(0, big, s), Status.OK);
    assert.equal(usage().committed, 0);
    // Copies queued after the decommit are refused at once.
    expectStatus(h2d(big, data, s), Status.INVALID_HANDLE, "copy into a decommitted block");
    closed.open();
    expectStatus(lib().sched_vmm_flush(0), Status.OK);
    assert.deepEqual(back, data);
    assert.equal(usage().mapped, 0, "unmapped once the stream passed the decommit");
    // The same address commits again.
    expectStatus(lib().sched_vmm_commit(0, big, BigInt(size)), Status.OK);
    expectStatus(lib().sched_vmm_decommit(0, big, s), Status.OK);
    expectStatus(lib().sched_stream_synchronize(s), Status.OK);
    expectStatus(lib().sched_vmm_flush(0), Status.OK);
    expectStatus(lib().sched_vmm_unreserve(0, at(base)), Status.OK);
  },
);

backendTest("small blocks share granules; a granule goes when its last block does", () => {
  const g = granularity();
  const base = reserve(4 * g);
  const s = rawStream();
  const a = at(base), b = at(base + 256n), c = at(base + BigInt(g) - 256n);
  for (const p of [a, b]) expectStatus(lib().sched_vmm_commit(0, p, 256n), Status.OK);
  // c straddles the first two granules.
  expectStatus(lib().sched_vmm_commit(0, c, 512n), Status.OK);
  assert.deepEqual(usage(), { committed: 1024, mapped: 2 * g });
  const bytes = randomBytes(512, 2);
  expectStatus(h2d(c, bytes, s), Status.OK);
  const back = new Uint8Array(512);
  expectStatus(d2h(back, c, s), Status.OK);
  expectStatus(lib().sched_stream_synchronize(s), Status.OK);
  assert.deepEqual(back, bytes);
  expectStatus(lib().sched_vmm_decommit(0, c, s), Status.OK);
  expectStatus(lib().sched_vmm_flush(0), Status.OK);
  assert.equal(usage().mapped, g, "the second granule went; a and b keep the first");
  expectStatus(lib().sched_vmm_decommit(0, a, s), Status.OK);
  expectStatus(lib().sched_vmm_flush(0), Status.OK);
  assert.equal(usage().mapped, g);
  expectStatus(lib().sched_vmm_decommit(0, b, s), Status.OK);
  expectStatus(lib().sched_vmm_flush(0), Status.OK);
  assert.deepEqual(usage(), { committed: 0, mapped: 0 });
});

backendTest("bad arguments are refused and change nothing", () => {
  const g = granularity();
  const base = reserve(2 * g);
  const s = rawStream();
  const p = at(base);
  // Past every device libsched can have (the suite may run with simulated devices).
  expectStatus(lib().sched_vmm_granularity(64, out), Status.INVALID_ARGUMENT, "another device");
  expectStatus(lib().sched_vmm_commit(64, p, 256n), Status.INVALID_ARGUMENT, "another device");
  expectStatus(lib().sched_vmm_reserve(0, 0n, out), Status.INVALID_ARGUMENT, "zero bytes");
  expectStatus(
    lib().sched_vmm_reserve(0, BigInt(g + 1), out),
    Status.INVALID_ARGUMENT,
    "not granular",
  );
  expectStatus(lib().sched_vmm_commit(0, p, 0n), Status.INVALID_ARGUMENT, "zero bytes");
  expectStatus(
    lib().sched_vmm_commit(0, at(base + 8n), 256n),
    Status.INVALID_ARGUMENT,
    "unaligned",
  );
  expectStatus(
    lib().sched_vmm_commit(0, p, BigInt(3 * g)),
    Status.INVALID_ARGUMENT,
    "past the reservation",
  );
  expectStatus(
    lib().sched_vmm_commit(0, at(0x1000n), 256n),
    Status.INVALID_ARGUMENT,
    "outside any reservation",
  );
  expectStatus(lib().sched_vmm_decommit(0, p, s), Status.INVALID_HANDLE, "not committed");
  expectStatus(lib().sched_vmm_commit(0, p, 256n), Status.OK);
  expectStatus(lib().sched_vmm_commit(0, p, 256n), Status.INVALID_ARGUMENT, "committed twice");
  expectStatus(lib().sched_vmm_decommit(0, p, 999_999), Status.INVALID_HANDLE, "unknown stream");
  expectStatus(lib().sched_vmm_unreserve(0, p), Status.INVALID_ARGUMENT, "still committed");
  expectStatus(
    lib().sched_vmm_unreserve(0, at(base + 4096n)),
    Status.INVALID_HANDLE,
    "not a reservation base",
  );
  expectStatus(
    lib().sched_free_async(p, s),
    Status.INVALID_HANDLE,
    "a committed block is not a pool allocation",
  );
  assert.deepEqual(usage().committed, 256);
  expectStatus(lib().sched_vmm_decommit(0, p, s), Status.OK);
  expectStatus(lib().sched_vmm_decommit(0, p, s), Status.INVALID_HANDLE, "decommitted twice");
  expectStatus(
    lib().sched_vmm_usage(0, null as unknown as BigUint64Array, out),
    Status.INVALID_ARGUMENT,
  );
});

backendTest("the host backend charges committed blocks against its capacity", (sched) => {
  if (sched.backend !== "host") return;
  const free = new BigUint64Array(1), total = new BigUint64Array(1);
  expectStatus(lib().sched_mem_info(free, total), Status.OK);
  const before = Number(free[0]);
  const base = reserve(Math.ceil((before + 8 * 4096) / 4096) * 4096);
  const p = at(base);
  expectStatus(
    lib().sched_vmm_commit(0, p, BigInt(before + 256)),
    Status.OUT_OF_MEMORY,
    "past the capacity",
  );
  expectStatus(lib().sched_vmm_commit(0, p, 1024n * 1024n), Status.OK);
  expectStatus(lib().sched_mem_info(free, total), Status.OK);
  assert.equal(Number(free[0]), before - 1024 * 1024);
  lib().sched_host_inject_fault(1, 1);
  expectStatus(
    lib().sched_vmm_commit(0, at(base + 2n * 1024n * 1024n), 256n),
    Status.OUT_OF_MEMORY,
    "injected",
  );
  // Shutdown (by the test helper) releases what is still committed and reserved.
}, { hostMemory: 64 * 1024 * 1024 });

Deno.test("virtual memory calls before initialize are refused", () => {
  expectStatus(lib().sched_vmm_granularity(0, out), Status.NOT_INITIALIZED);
  expectStatus(lib().sched_vmm_commit(0, at(0x100000n), 256n), Status.NOT_INITIALIZED);
});
