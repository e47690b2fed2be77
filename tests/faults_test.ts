/**
 * Faults injected in the host backend (allocation failure, copy failure, a
 * failed stream): the failing call reports a clear error, every other
 * context keeps its data, and the scheduler stays usable. A real device
 * out-of-memory on CUDA is covered by abi_memory_test.ts ("a huge
 * allocation fails with OUT_OF_MEMORY and leaks nothing").
 */
import assert from "node:assert/strict";
import {
  createContext,
  type DeviceBuffer,
  getContextUsage,
  initialize,
  MB,
  NativeError,
  shutdown,
  VramBudgetExceededError,
} from "../mod.ts";
import { gate, hold, lib, randomBytes, Status } from "./_helpers.ts";

const FAULT = { ALLOC: 1, COPY: 2, STREAM: 3 } as const;

function inject(kind: number, count: number): void {
  assert.equal(lib().sched_host_inject_fault(kind, count), Status.OK);
}

async function filled(buf: DeviceBuffer, seed: number): Promise<Uint8Array> {
  const data = randomBytes(buf.size, seed);
  await buf.write(data);
  return data;
}

async function assertHolds(buf: DeviceBuffer, data: Uint8Array): Promise<void> {
  const out = new Uint8Array(buf.size);
  await buf.read(out);
  assert.deepEqual(out, data);
}

/** Registers `fn` on the host backend with one simulated device, and again with two. */
function withHost(name: string, fn: () => Promise<void>): void {
  for (const hostDevices of [1, 2]) {
    Deno.test(`${hostDevices === 1 ? "" : "[host, 2 devices] "}${name}`, async () => {
      initialize({ backend: "host", hostDevices, hostMemory: 64 * MB });
      try {
        await fn();
      } finally {
        shutdown();
      }
    });
  }
}

withHost("a failed device allocation is a clear error and loses nothing", async () => {
  const a = createContext("a", { maxVram: 16 * MB }), b = createContext("b", { maxVram: 16 * MB });
  const keep = a.alloc(MB);
  const data = await filled(keep, 1);
  inject(FAULT.ALLOC, 4); // every try of the pool (and its retries after making room) fails
  assert.throws(() => b.alloc(2 * MB), (e: unknown) => {
    assert.ok(e instanceof VramBudgetExceededError, String(e));
    assert.equal(e.contextName, "b");
    return true;
  });
  assert.equal(getContextUsage(b).used, 0, "nothing charged for the failed allocation");
  await assertHolds(keep, data);
  const later = b.alloc(2 * MB); // usable again
  await assertHolds(later, await filled(later, 2));
});

withHost("one failed allocation is retried by the pool and succeeds", async () => {
  const a = createContext("a", { maxVram: 16 * MB });
  inject(FAULT.ALLOC, 1);
  const buf = a.alloc(MB);
  await assertHolds(buf, await filled(buf, 3));
});

withHost(
  "a failed copy rejects the transfer with the backend's message; the buffer stays usable",
  async () => {
    const a = createContext("a", { maxVram: 16 * MB }),
      b = createContext("b", { maxVram: 16 * MB });
    const other = b.alloc(MB);
    const otherData = await filled(other, 4);
    const buf = a.alloc(MB);
    const before = await filled(buf, 5);
    inject(FAULT.COPY, 1);
    await assert.rejects(buf.write(randomBytes(MB, 6)), (e: unknown) => {
      assert.ok(e instanceof NativeError, String(e));
      assert.match(e.message, /injected fault/);
      return true;
    });
    await assertHolds(buf, before); // the failed write changed nothing
    await assertHolds(other, otherData);
    const after = await filled(buf, 7);
    await assertHolds(buf, after);
  },
);

withHost("a failed stream rejects the waits on it; later waits succeed", async () => {
  const a = createContext("a", { maxVram: 16 * MB });
  const buf = a.alloc(MB);
  const data = randomBytes(MB, 8);
  inject(FAULT.STREAM, 1);
  const g = gate(); // keep the stream busy so the write's wait goes through a notification
  hold("host", a.stream.handle, g);
  const writing = buf.write(data);
  g.open();
  await assert.rejects(writing, (e: unknown) => e instanceof NativeError && e.code === 9);
  await a.stream.synchronize(); // the fault fired once; the stream works again
  await assertHolds(buf, data); // the copy itself ran: only its completion was reported failed
});

withHost("fault injection validates its kind and exists only on the host backend", () => {
  assert.equal(lib().sched_host_inject_fault(0, 1), Status.INVALID_ARGUMENT);
  assert.equal(lib().sched_host_inject_fault(4, 1), Status.INVALID_ARGUMENT);
  assert.equal(lib().sched_host_inject_fault(FAULT.ALLOC, 0), Status.OK);
  return Promise.resolve();
});
