import assert from "node:assert/strict";
import { type GpuEvent, SchedulerError } from "../mod.ts";
import { pendingCompletions } from "../src/native/completions.ts";
import { backendTest, gate, hold, spin } from "./_helpers.ts";

backendTest(
  "streams get increasing ids, default to the least urgent priority, and validate options",
  (sched) => {
    const a = sched.createStream(), b = sched.createStream({ priority: -3 });
    assert.equal(b.id, a.id + 1);
    assert.equal(a.priority, sched.device.priorityRange.least);
    assert.equal(b.priority, Math.max(-3, sched.device.priorityRange.greatest));
    assert.ok(a.handle !== null, "a native stream handle for user kernels");
    assert.throws(() => sched.createStream({ priority: "high" as never }), TypeError);
    assert.throws(() => sched.createStream({ priority: 0.5 }), RangeError);
    assert.throws(() => sched.createStream(null as never), TypeError);
    assert.throws(
      () => sched.createEvent({ timing: 1 as never }),
      /timing must be a boolean, got 1/,
    );
  },
);

backendTest(
  "await stream.synchronize() resolves at once when idle and after queued work otherwise",
  async (sched) => {
    const s = sched.createStream();
    assert.equal(s.query(), true);
    await s.synchronize();
    spin(sched.backend, s.handle, 30);
    assert.equal(s.query(), false);
    let resolved = false;
    const waiting = s.synchronize().then(() => resolved = true);
    await new Promise((r) => setTimeout(r, 0));
    assert.equal(resolved, false, "not before the work is done");
    await waiting;
    assert.equal(s.query(), true);
    assert.equal(pendingCompletions(), 0);
    spin(sched.backend, s.handle, 5);
    s.synchronizeSync();
    assert.equal(s.query(), true);
  },
);

backendTest("a destroyed stream or event refuses every use with a clear error", async (sched) => {
  const s = sched.createStream();
  const e = sched.createEvent();
  s.destroy();
  s.destroy();
  assert.equal(s.destroyed, true);
  assert.throws(() => s.query(), {
    name: "SchedulerError",
    message: `Cannot query a stream: stream ${s.id} was destroyed`,
  });
  await assert.rejects(s.synchronize(), SchedulerError);
  assert.throws(() => s.synchronizeSync(), SchedulerError);
  assert.throws(() => e.record(s), /Cannot record an event: stream \d+ was destroyed/);
  e.destroy();
  assert.throws(() => e.query(), /Cannot query an event: the event was destroyed/);
  await assert.rejects(e.synchronize(), SchedulerError);
  const t = sched.createStream();
  assert.throws(() => e.wait(t), SchedulerError);
});

backendTest("streams and events of a shut-down scheduler are dead, not aliased", async (sched) => {
  const s = sched.createStream();
  const e = sched.createEvent().record(s);
  sched.shutdown();
  assert.equal(s.destroyed, true);
  assert.equal(e.destroyed, true);
  assert.throws(() => s.query(), SchedulerError);
  await assert.rejects(e.synchronize(), SchedulerError);
  s.destroy();
  e.destroy();
});

backendTest(
  "events order a consumer stream after a producer without blocking the host",
  async (sched) => {
    const producer = sched.createStream(), consumer = sched.createStream();
    const ready = sched.createEvent();
    spin(sched.backend, producer.handle, 30);
    ready.record(producer);
    ready.wait(consumer);
    const consumerDone = sched.createEvent().record(consumer);
    assert.equal(consumerDone.query(), false, "the consumer is held back on the device");
    await consumerDone.synchronize();
    assert.equal(producer.query(), true);
  },
);

backendTest("timing events measure the work between them", async (sched) => {
  const s = sched.createStream();
  const start = sched.createEvent({ timing: true }).record(s);
  spin(sched.backend, s.handle, 25);
  const end = sched.createEvent({ timing: true }).record(s);
  assert.equal(start.elapsedMs(end), undefined, "undefined while pending");
  await end.synchronize();
  const ms = start.elapsedMs(end)!;
  assert.ok(ms >= 24, `measured ${ms} ms for a 25 ms spin`);
  const plain = sched.createEvent().record(s);
  plain.synchronizeSync();
  assert.throws(() => start.elapsedMs(plain), /SCHED_EVENT_TIMING/);
});

backendTest(
  "waits resolve in completion order, not in the order they were awaited",
  async (sched) => {
    const slow = sched.createStream(), fast = sched.createStream();
    spin(sched.backend, slow.handle, 60);
    spin(sched.backend, fast.handle, 5);
    const order: string[] = [];
    await Promise.all([
      slow.synchronize().then(() => order.push("slow")),
      fast.synchronize().then(() => order.push("fast")),
    ]);
    assert.deepEqual(order, ["fast", "slow"]);
  },
);

backendTest("10,000 concurrent event waits complete while a timer keeps ticking", async (sched) => {
  const streams = Array.from({ length: 4 }, () => sched.createStream());
  // Every stream waits on a gate until all the waits are registered and the
  // timer runs (a timed spin flaked on a loaded machine, where registering
  // took longer than the spin).
  const closed = gate();
  for (const s of streams) hold(sched.backend, s.handle, closed, 60_000);
  const events: GpuEvent[] = [];
  for (let i = 0; i < 10_000; i++) events.push(sched.createEvent().record(streams[i % 4]!));
  const waits = events.map((e) => e.synchronize());
  assert.equal(events[0]!.query(), false, "still pending after registration");
  assert.equal(pendingCompletions(), 10_000);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  await new Promise((resolve) => setTimeout(resolve, 5));
  closed.open();
  await Promise.all(waits);
  clearInterval(timer);
  assert.ok(ticks > 0, "the event loop kept running while 10,000 waits were pending");
  assert.equal(pendingCompletions(), 0);
  assert.ok(events.every((e) => e.query()));
});
