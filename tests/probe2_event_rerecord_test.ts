/**
 * Re-recorded events (API.md "Streams and events": `waitEvent(consumer, ev)`
 * makes the consumer's stream wait on the device; README: the host backend
 * has the same semantics as CUDA). As in CUDA, a wait waits for the record
 * that was current when the wait was queued: recording the same event again
 * later, on another stream, must not release it, and `query()` /
 * `synchronize()` follow the latest record. One explicit event reused per
 * step is the ordinary CUDA idiom. Written from API.md and README.md only.
 */
import assert from "node:assert/strict";
import { createContext, MB, recordEvent, waitEvent } from "../mod.ts";
import { backendTest, gate, hold } from "./_helpers.ts";

backendTest(
  "a wait keeps waiting for its record when the event is re-recorded elsewhere",
  async (sched) => {
    const producer = createContext("producer", { maxVram: 8 * MB });
    const consumer = createContext("consumer", { maxVram: 8 * MB });
    const other = createContext("other", { maxVram: 8 * MB });
    const held = gate();
    hold(sched.backend, producer.stream.handle, held);
    const ev = sched.createEvent();
    try {
      ev.record(producer.stream); // pending behind the hold
      waitEvent(consumer, ev); // the consumer waits for that record
      ev.record(other.stream); // the latest record: on an idle stream
      await ev.synchronize(); // follows the latest record
      assert.equal(ev.query(), true, "query() follows the latest record");
      assert.equal(
        consumer.stream.query(),
        false,
        "the consumer still waits for the first record (the producer is held)",
      );
      // The consumer's own work stays behind the wait.
      const buf = consumer.alloc(4096);
      let wrote = false;
      const writing = buf.write(new Uint8Array(4096).fill(1)).then(() => (wrote = true));
      await other.stream.synchronize();
      assert.equal(wrote, false, "the consumer's write is behind the producer's held work");
      held.open();
      await writing;
      await consumer.stream.synchronize();
      assert.equal(producer.stream.query(), true);
    } finally {
      held.open();
      ev.destroy();
    }
  },
  { hostMemory: 64 * MB },
);

backendTest(
  "synchronize() of a re-recorded event waits for the latest record only",
  async (sched) => {
    const a = createContext("a", { maxVram: 8 * MB });
    const b = createContext("b", { maxVram: 8 * MB });
    const held = gate();
    hold(sched.backend, a.stream.handle, held);
    try {
      const ev = recordEvent(b); // an idle stream's record...
      await ev.synchronize();
      ev.record(a.stream); // ...then re-recorded behind the hold
      assert.equal(ev.query(), false, "the latest record is pending");
      const waiting = ev.synchronize();
      let done = false;
      void waiting.then(() => (done = true));
      await b.stream.synchronize();
      assert.equal(done, false);
      held.open();
      await waiting;
      assert.equal(ev.query(), true);
    } finally {
      held.open();
    }
  },
  { hostMemory: 64 * MB },
);
