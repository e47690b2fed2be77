/**
 * Stream order under a held stream (a host "kernel" that waits on a flag,
 * from the test kernels): recycled events, sleep behind queued work,
 * copies and evictions ordered after pending writes, teardown while a
 * stream is held. Written from API.md and README.md.
 */
import assert from "node:assert/strict";
import {
  AdmissionError,
  createContext,
  destroyContext,
  getContextUsage,
  MB,
  QoSPolicy,
  recordEvent,
  SchedulerError,
  shutdown,
  waitEvent,
} from "../mod.ts";
import { gate, hold } from "./_helpers.ts";
import { caught, probe, rejected } from "./_probe.ts";

const LIMIT = { hostMemory: 64 * MB };

function pattern(n: number, seed: number): Uint8Array {
  return new Uint8Array(n).map((_, i) => (i * 5 + seed) & 0xff);
}

probe("a recycled event is known complete: waiting on it never blocks", async () => {
  const llm = createContext("llm", { maxVram: 8 * MB });
  const tts = createContext("tts", { maxVram: 8 * MB });
  const old = recordEvent(llm);
  await old.synchronize();
  const g = gate();
  hold("host", llm.stream.handle, g);
  // Records behind the hold reuse completed native events, old's among them.
  const pending = Array.from({ length: 64 }, () => recordEvent(llm));
  assert.equal(old.query(), true, "an event recorded and completed stays complete");
  assert.equal(pending.at(-1)!.query(), false);
  waitEvent(tts, old);
  await tts.stream.synchronize(); // must not wait for llm's held stream
  assert.equal(llm.stream.query(), false);
  waitEvent(tts, pending.at(-1)!);
  assert.equal(tts.stream.query(), false, "waiting on a pending record does block");
  g.open();
  await Promise.all([tts.stream.synchronize(), ...pending.map((e) => e.synchronize())]);
}, LIMIT);

probe(
  "sleep() behind queued work: refused uses meanwhile, the queued write comes back",
  async () => {
    const ctx = createContext("c", { maxVram: 16 * MB });
    const buf = ctx.alloc(4 * MB);
    const g = gate();
    hold("host", ctx.stream.handle, g);
    const w = buf.write(pattern(4 * MB, 1)); // queued behind the hold
    const s = ctx.sleep();
    assert.equal(ctx.sleeping, true);
    const e = await rejected(() => buf.write(pattern(4 * MB, 2)));
    assert.ok(e instanceof SchedulerError, `write after sleep(): ${e}`);
    assert.ok((await rejected(() => ctx.alloc(16))) instanceof SchedulerError);
    g.open();
    await Promise.all([w, s]);
    await ctx.wake();
    const out = new Uint8Array(4 * MB);
    await buf.read(out);
    assert.deepEqual(out, pattern(4 * MB, 1));
  },
  LIMIT,
);

probe("copyFrom waits for work queued on the source's stream", async () => {
  const a = createContext("a", { maxVram: 16 * MB, device: 0 });
  const b = createContext("b", { maxVram: 16 * MB, device: 1 });
  const src = a.alloc(4 * MB), dst = b.alloc(4 * MB);
  await src.write(pattern(4 * MB, 3));
  const g = gate();
  hold("host", a.stream.handle, g);
  const w = src.write(pattern(4 * MB, 4)); // behind the hold
  const copy = dst.copyFrom(src);
  assert.equal(b.stream.query(), false, "the destination waits on the device for the source");
  g.open();
  await Promise.all([w, copy]);
  const out = new Uint8Array(4 * MB);
  await dst.read(out);
  assert.deepEqual(out, pattern(4 * MB, 4));
}, { ...LIMIT, hostDevices: 2 });

probe(
  "a buffer with a write in flight is not evicted; once written, it evicts exactly",
  async () => {
    const be = createContext("be", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT });
    const buf = be.alloc(32 * MB, { evictable: true });
    await buf.write(pattern(32 * MB, 5));
    const g = gate();
    hold("host", be.stream.handle, g);
    const w = buf.write(pattern(32 * MB, 6)); // queued behind the hold: buf is in use
    try {
      const e = caught(() => createContext("g", { maxVram: 48 * MB, qos: QoSPolicy.GUARANTEED }));
      assert.ok(e instanceof AdmissionError, `got ${e}`);
      assert.equal(getContextUsage(be).evicted, 0);
    } finally {
      g.open();
    }
    await w;
    const gctx = createContext("g", { maxVram: 48 * MB, qos: QoSPolicy.GUARANTEED }); // evicts buf
    assert.equal(getContextUsage(be).evicted, 32 * MB);
    destroyContext(gctx);
    const out = new Uint8Array(32 * MB);
    await buf.read(out);
    assert.deepEqual(out, pattern(32 * MB, 6));
  },
  LIMIT,
);

probe("shutdown while a stream is held and transfers wait behind it", async () => {
  const ctx = createContext("c", { maxVram: 16 * MB });
  const buf = ctx.alloc(4 * MB);
  const g = gate();
  hold("host", ctx.stream.handle, g, 300); // shutdown and destroy wait for the stream: a short hold
  const w = buf.write(pattern(4 * MB, 7));
  const r = buf.read(new Uint8Array(4 * MB));
  const ev = recordEvent(ctx);
  const sync = ev.synchronize();
  for (const p of [w, r, sync]) p.catch(() => {});
  shutdown();
  const settled = await Promise.allSettled([w, r, sync]);
  for (const s of settled) {
    if (s.status === "rejected") assert.ok(s.reason instanceof Error, String(s.reason));
  }
  // No g.open() here: the gate's word is libsched host memory, which shutdown freed.
}, LIMIT);

probe("destroyContext while its stream is held and a sleep is falling", async () => {
  const ctx = createContext("c", { maxVram: 16 * MB, qos: QoSPolicy.GUARANTEED });
  const buf = ctx.alloc(4 * MB);
  const g = gate();
  hold("host", ctx.stream.handle, g, 300); // shutdown and destroy wait for the stream: a short hold
  const w = buf.write(pattern(4 * MB, 8));
  const s = ctx.sleep();
  for (const p of [w, s]) p.catch(() => {});
  destroyContext(ctx);
  const settled = await Promise.allSettled([w, s]);
  for (const x of settled) {
    if (x.status === "rejected") assert.ok(x.reason instanceof Error, String(x.reason));
  }
  g.open();
  const again = createContext("c", { maxVram: 64 * MB, qos: QoSPolicy.GUARANTEED });
  const big = again.alloc(64 * MB);
  await big.write(pattern(64 * MB, 9));
}, LIMIT);

probe("sleep() of a copy's source while the copy waits on the destination's stream", async () => {
  const a = createContext("a", { maxVram: 32 * MB, device: 0 });
  const b = createContext("b", { maxVram: 32 * MB, device: 1 });
  const src = a.alloc(8 * MB), dst = b.alloc(8 * MB);
  await src.write(pattern(8 * MB, 10));
  const g = gate();
  hold("host", b.stream.handle, g); // the copy runs on b's stream: held
  const copy = dst.copyFrom(src);
  const slept = a.sleep(); // must not take src's memory while the copy still reads it
  setTimeout(() => g.open(), 100);
  await Promise.all([copy, slept]);
  const out = new Uint8Array(8 * MB);
  await dst.read(out);
  assert.deepEqual(out, pattern(8 * MB, 10));
  await a.wake();
  await src.read(out);
  assert.deepEqual(out, pattern(8 * MB, 10));
}, { ...LIMIT, hostDevices: 2 });

probe("sleep() of a copy's destination while the copy waits on the source's stream", async () => {
  const a = createContext("a", { maxVram: 32 * MB, device: 0 });
  const b = createContext("b", { maxVram: 32 * MB, device: 1 });
  const src = a.alloc(8 * MB), dst = b.alloc(8 * MB);
  await src.write(pattern(8 * MB, 11));
  const g = gate();
  hold("host", a.stream.handle, g); // the copy waits for a's stream
  const copy = dst.copyFrom(src);
  const slept = b.sleep(); // what comes back must include the copy
  setTimeout(() => g.open(), 100);
  await Promise.all([copy, slept]);
  await b.wake();
  const out = new Uint8Array(8 * MB);
  await dst.read(out);
  assert.deepEqual(out, pattern(8 * MB, 11));
}, { ...LIMIT, hostDevices: 2 });

probe(
  "destroying a copy's source while the copy waits: no stale or reused bytes arrive",
  async () => {
    const a = createContext("a", { maxVram: 32 * MB, device: 0 });
    const b = createContext("b", { maxVram: 32 * MB, device: 1 });
    const src = a.alloc(8 * MB), dst = b.alloc(8 * MB);
    await src.write(pattern(8 * MB, 12));
    await dst.write(pattern(8 * MB, 13));
    const g = gate();
    // The copy runs on b's stream, held briefly: destroyContext waits for what reads its
    // memory, blocking this thread, so the hold must end by itself.
    hold("host", b.stream.handle, g, 300);
    const copy = dst.copyFrom(src);
    copy.catch(() => {});
    destroyContext(a);
    // Someone else takes device 0's memory and writes other bytes into it meanwhile.
    const c = createContext("c", { maxVram: 64 * MB, device: 0 });
    const other = c.alloc(8 * MB);
    const w = other.write(pattern(8 * MB, 14));
    const [copied] = await Promise.allSettled([copy, w]);
    const out = new Uint8Array(8 * MB);
    await dst.read(out);
    if (copied.status === "fulfilled") {
      assert.deepEqual(
        out,
        pattern(8 * MB, 12),
        "the source's bytes",
      );
    } else assert.deepEqual(out, pattern(8 * MB, 13), "a refused copy wrote nothing");
    await other.read(out);
    assert.deepEqual(out, pattern(8 * MB, 14));
  },
  { ...LIMIT, hostDevices: 2 },
);

probe("wake() called while sleep() is still falling waits for it, then restores", async () => {
  const ctx = createContext("c", { maxVram: 16 * MB, qos: QoSPolicy.GUARANTEED });
  const buf = ctx.alloc(4 * MB);
  const g = gate();
  hold("host", ctx.stream.handle, g);
  const w = buf.write(pattern(4 * MB, 15));
  const s = ctx.sleep();
  const k = ctx.wake();
  assert.equal(ctx.sleeping, true);
  g.open();
  await Promise.all([w, s, k]);
  assert.equal(ctx.sleeping, false);
  assert.equal(getContextUsage(ctx).reserved, 16 * MB);
  const out = new Uint8Array(4 * MB);
  await buf.read(out);
  assert.deepEqual(out, pattern(4 * MB, 15));
}, LIMIT);
