/**
 * The costs every scheduling decision stands on: a synchronous FFI call, a
 * stream query, event record + stream wait, a stream-ordered alloc + free,
 * and awaiting a stream, through the notifier and through a nonblocking FFI
 * call for comparison.
 *
 * Run: deno task bench (GPUSCHED_BACKEND=host|cuda to force a backend).
 */
import { lib } from "../src/native/loader.ts";
import { benchScheduler } from "./_backend.ts";

const sched = benchScheduler({ banner: false });
const symbols = lib();
const stream = sched.createStream();
const other = sched.createStream();
const event = sched.createEvent();
const native = (stream as unknown as { nativeHandle(d: string): number }).nativeHandle("bench");

// A warm stream-ordered pool: freed memory stays reserved, as the scheduler keeps it.
const poolOut = new Uint32Array(1);
symbols.sched_pool_create(0n, 0xffffffffffffffffn, poolOut);
const pool = poolOut[0]!;
const ptrOut = new BigUint64Array(1);
const scratchOut = new BigUint64Array(1);
symbols.sched_malloc_async(pool, native, 4096n, scratchOut);
const scratch = Deno.UnsafePointer.create(scratchOut[0]!);
stream.synchronizeSync();

Deno.bench("sync FFI call (sched_abi_version)", { group: "ffi", baseline: true }, () => {
  symbols.sched_abi_version();
});

Deno.bench("stream.query() on an idle stream", { group: "ffi" }, () => {
  stream.query();
});

Deno.bench("event.record + stream wait (one pair)", { group: "ffi" }, () => {
  event.record(stream);
  event.wait(other);
});

Deno.bench("device alloc + free, 4 KiB (sched_malloc_async + sched_free_async)", {
  group: "ffi",
}, () => {
  symbols.sched_malloc_async(pool, native, 4096n, ptrOut);
  symbols.sched_free_async(Deno.UnsafePointer.create(ptrOut[0]!), native);
});

Deno.bench(
  "await stream.synchronize(), idle stream",
  { group: "wait", baseline: true },
  async () => {
    await stream.synchronize();
  },
);

Deno.bench("await stream.synchronize() after a 4-byte memset (notifier path)", {
  group: "wait",
}, async () => {
  symbols.sched_memset_async(scratch, 0n, 1, 4n, native);
  await stream.synchronize();
});

Deno.bench("stream.synchronizeSync() after a 4-byte memset (blocking)", { group: "wait" }, () => {
  symbols.sched_memset_async(scratch, 0n, 1, 4n, native);
  stream.synchronizeSync();
});

Deno.bench("await nonblocking FFI sched_stream_synchronize after a 4-byte memset", {
  group: "wait",
}, async () => {
  symbols.sched_memset_async(scratch, 0n, 1, 4n, native);
  await symbols.sched_stream_synchronize_nonblocking(native);
});

Deno.bench("10,000 concurrent await event.synchronize() on pending events", {
  group: "many",
  n: 20,
  warmup: 2,
}, async () => {
  const events = [];
  for (let i = 0; i < 10_000; i++) {
    symbols.sched_memset_async(scratch, 0n, 1, 4n, native);
    events.push(sched.createEvent().record(stream));
  }
  await Promise.all(events.map((e) => e.synchronize()));
  for (const e of events) e.destroy();
});
