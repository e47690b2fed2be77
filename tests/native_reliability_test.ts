/**
 * Leaks and bad input at the native boundary (issue 10: items 7, 8, 11, 13):
 * recorded events keep native handles flat, staging stays proportional to
 * the bytes in flight and under its cap, a stream's handle is refused once
 * it is gone, and every event and stream argument is checked.
 */
import assert from "node:assert/strict";
import {
  createContext,
  getStream,
  GpuEvent,
  KB,
  MB,
  recordEvent,
  SchedulerError,
  shutdown,
  waitEvent,
} from "../mod.ts";
import { stagedRead, stagedWrite, StagingArea } from "../src/engine/staging.ts";
import { nativeCounts } from "../src/native/debug_counts.ts";
import { backendTest, gate, hold, lib, randomBytes, spin } from "./_helpers.ts";

backendTest("waitEvent(b, recordEvent(a)) 100,000 times keeps native events flat", async () => {
  const llm = createContext("llm", { maxVram: 4 * MB });
  const tts = createContext("tts", { maxVram: 4 * MB });
  const before = nativeCounts().events;
  for (let i = 0; i < 100_000; i++) {
    waitEvent(tts, recordEvent(llm));
    // A real decoder queues work per token and the stream keeps up; let it.
    if (i % 1000 === 999) await getStream(llm).synchronize();
  }
  const grown = nativeCounts().events - before;
  assert.ok(grown <= 1100, `native events grew by ${grown} over 100,000 records`);
});

backendTest("a recycled event is complete: query, synchronize and wait agree", async (sched) => {
  const a = createContext("a", { maxVram: 4 * MB });
  const b = createContext("b", { maxVram: 4 * MB });
  const first = recordEvent(a);
  await first.synchronize();
  const second = recordEvent(a); // reuses first's native event
  assert.equal(getStream(a).ringSize, 1);
  assert.equal(first.query(), true);
  await first.synchronize();
  first.synchronizeSync();
  waitEvent(b, first); // a no-op, not a wait on `second`'s record
  assert.equal(first.destroyed, false);
  await second.synchronize();
  // A recorded event re-recorded elsewhere leaves the ring and keeps working.
  const s = sched.createStream();
  first.record(s);
  await first.synchronize();
  assert.equal(first.query(), true);
  first.destroy();
  assert.throws(() => first.query(), SchedulerError);
  assert.equal(second.query(), true);
});

backendTest("an event whose record is pending is never reused", async (sched) => {
  const a = createContext("a", { maxVram: 4 * MB });
  const b = createContext("b", { maxVram: 4 * MB });
  const g = gate();
  hold(sched.backend, getStream(a).handle, g);
  const pending = recordEvent(a);
  const later = recordEvent(a);
  assert.equal(getStream(a).ringSize, 2, "a pending record must keep its native event");
  assert.equal(pending.query(), false);
  assert.equal(later.query(), false);
  waitEvent(b, pending);
  assert.equal(getStream(b).query(), false, "b must wait for a's held work");
  g.open();
  await later.synchronize();
  await getStream(b).synchronize();
  assert.equal(pending.query(), true);
  // Both records completed: the ring reuses its oldest and stays at 2.
  recordEvent(a);
  assert.equal(getStream(a).ringSize, 2);
});

backendTest("destroying a context kills its recorded events and their native events", () => {
  const a = createContext("a", { maxVram: 4 * MB });
  const before = nativeCounts().events;
  const ev = recordEvent(a);
  assert.equal(nativeCounts().events, before + 1);
  a.destroy();
  assert.ok(nativeCounts().events < before + 1, "the ring's native event outlived its context");
  assert.equal(ev.destroyed, true);
  assert.throws(() => ev.query(), SchedulerError);
});

backendTest("stream.handle throws after destroy() and after shutdown(), like buf.ptr", (sched) => {
  const s = sched.createStream();
  assert.ok(s.handle !== null);
  s.destroy();
  assert.throws(() => s.handle, SchedulerError);
  const ctx = createContext("c", { maxVram: 4 * MB });
  const stream = getStream(ctx);
  assert.ok(stream.handle !== null);
  shutdown();
  assert.throws(() => stream.handle, /shut down|destroyed/);
});

const NOT_STREAMS: unknown[] = [undefined, null, {}, 5, "str", { wait() {} }, {
  nativeHandle() {},
}];

backendTest("event and stream arguments are checked: TypeError naming the argument", (sched) => {
  const ctx = createContext("c", { maxVram: 4 * MB });
  const ev = sched.createEvent();
  const recorded = recordEvent(ctx);
  for (const bad of NOT_STREAMS) {
    for (const event of [ev, recorded]) {
      assert.throws(
        () => event.record(bad as never),
        (e: Error) => e instanceof TypeError && /stream must be a Stream, got/.test(e.message),
      );
      assert.throws(
        () => event.wait(bad as never),
        (e: Error) => e instanceof TypeError && /stream must be a Stream, got/.test(e.message),
      );
      assert.throws(
        () => event.elapsedMs(bad as never),
        (e: Error) => e instanceof TypeError && /end must be a GpuEvent, got/.test(e.message),
      );
    }
    assert.throws(
      () => waitEvent(ctx, bad as never),
      (e: Error) => e instanceof TypeError && /event must be a GpuEvent, got/.test(e.message),
    );
    assert.throws(() => waitEvent(bad as never, ev), TypeError);
    assert.throws(() => recordEvent(bad as never), TypeError);
  }
  // A fake with a `wait` method is not an event.
  let called = false;
  assert.throws(() => waitEvent(ctx, { wait: () => void (called = true) } as never), TypeError);
  assert.equal(called, false);
  // Nothing was lost: the real ones still work.
  ev.record(getStream(ctx));
  waitEvent(ctx, ev);
  assert.ok(ev instanceof GpuEvent);
});

backendTest(
  "1000 pending 256-byte writes on a held stream share one staging chunk",
  async (sched) => {
    const ctx = createContext("w", { maxVram: 16 * MB });
    const g = gate();
    hold(sched.backend, getStream(ctx).handle, g);
    const pinnedBefore = nativeCounts().pinnedBytes;
    const bufs = Array.from({ length: 1000 }, () => ctx.alloc(256));
    const writes = bufs.map((b, i) => b.write(new Uint8Array(256).fill(i & 0xff)));
    const staged = nativeCounts().pinnedBytes - pinnedBefore;
    assert.ok(staged <= 4 * MB, `1000 pending 256-byte writes hold ${staged} pinned bytes`);
    g.open();
    await Promise.all(writes);
    const out = new Uint8Array(256);
    await bufs[999]!.read(out);
    assert.ok(out.every((v) => v === (999 & 0xff)));
  },
);

backendTest("staging never holds more than its cap, and data stays bit-exact", async () => {
  const ctx = createContext("big", { maxVram: 64 * MB });
  const stream = getStream(ctx);
  const area = new StagingArea({
    get active() {
      return true;
    },
  }, 8 * MB);
  const buf = ctx.alloc(40 * MB);
  const data = randomBytes(40 * MB, 7);
  const writing = stagedWrite(area, stream, stream.nativeHandle("w"), buf.ptr, 0, data);
  assert.ok(area.bytes <= 8 * MB, `held ${area.bytes} with an 8 MiB cap`);
  const small = ctx.alloc(64 * KB);
  const smallData = randomBytes(64 * KB, 8);
  const smallWrite = stagedWrite(area, stream, stream.nativeHandle("w"), small.ptr, 0, smallData);
  const out = new Uint8Array(40 * MB);
  const reading = stagedRead(area, stream, stream.nativeHandle("r"), buf.ptr, 0, out);
  assert.ok(area.bytes <= 8 * MB, `held ${area.bytes} with an 8 MiB cap`);
  await Promise.all([writing, smallWrite, reading]);
  assert.deepEqual(out, data);
  const smallOut = new Uint8Array(64 * KB);
  await small.read(smallOut);
  assert.deepEqual(smallOut, smallData);
  assert.equal(area.inFlight, 0);
});

Deno.test("sched_completions_wake ends a parked wait; debug counts are zero when not initialized", async () => {
  const symbols = lib();
  const parked = symbols.sched_completions_wait();
  let returned: number | undefined;
  parked.then((n) => returned = n);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(returned, undefined, "the wait must stay parked while nothing completes");
  symbols.sched_completions_wake();
  assert.equal(await parked, 0);
  const counts = nativeCounts();
  assert.ok(Object.values(counts).every((n) => n === 0), JSON.stringify(counts));
});

backendTest(
  "an await queued right after another completes still resolves (the watcher re-arms recycled items)",
  async (sched) => {
    // On CUDA, a wait's marker item is recycled when it completes. The watcher once kept a
    // completed item as its queue's "armed" head; when the item came back as a later head of the
    // same queue it was never armed, and that await hung (1 run in 40 of examples/model_swap.ts
    // on the H200). The pattern: a long wait A (armed: the watcher sleeps), a short wait B behind
    // it, and a new wait C queued as soon as A resolves, taking A's item, while B completes in the
    // watcher's spin window. B's length varies so some iteration lands in that window.
    const backend = sched.backend;
    const stream = sched.createStream();
    try {
      for (let i = 0; i < 200; i++) {
        spin(backend, stream.handle, 1);
        const a = stream.synchronize();
        spin(backend, stream.handle, 0.01 + (i % 25) * 0.01);
        const b = stream.synchronize();
        await a;
        spin(backend, stream.handle, 1);
        const c = stream.synchronize();
        await settlesOrHangs(Promise.all([b, c]), `iteration ${i}`);
      }
    } finally {
      stream.destroy();
    }
  },
);

/**
 * Resolves as `done` does, or rejects when it has not settled after 20 s: a wait the watcher
 * lost never settles, and the test should fail rather than hang the run (not a speed bound:
 * each wait here is about a millisecond of device work).
 */
function settlesOrHangs(done: Promise<unknown>, what: string): Promise<unknown> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const lost = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: an await never resolved`)), 20_000);
  });
  return Promise.race([done, lost]).finally(() => clearTimeout(timer));
}
