import assert from "node:assert/strict";
import fc from "fast-check";
import { SchedulerError } from "../mod.ts";
import { type GateLimits, LaunchGate, parseGateLimits } from "../src/cublas/launch_gate.ts";

/** A piece whose completion the test controls, logging when it starts. */
class Pieces {
  readonly started: string[] = [];
  readonly #finish = new Map<string, () => void>();

  piece(name: string) {
    return () => {
      this.started.push(name);
      const { promise, resolve } = Promise.withResolvers<void>();
      this.#finish.set(name, resolve);
      return promise;
    };
  }

  finish(name: string): void {
    const f = this.#finish.get(name);
    assert.ok(f, `${name} was started`);
    f();
  }
}

/** Owner activity the test controls; `settle()` resolves the gate's pending ownerSettled(). */
class Owner {
  active = true;
  asked = 0;
  #settle: (() => void)[] = [];
  readonly hooks = {
    ownerActive: () => this.active,
    ownerSettled: () => {
      this.asked++;
      const { promise, resolve } = Promise.withResolvers<void>();
      this.#settle.push(resolve);
      return promise;
    },
  };

  settle(): void {
    this.active = false;
    for (const r of this.#settle.splice(0)) r();
  }
}

const limits = (l: Partial<GateLimits> = {}): GateLimits => ({
  activeInFlight: 1,
  idleInFlight: 3,
  maxHoldMs: Infinity,
  ...l,
});
const tick = () => new Promise((r) => setTimeout(r, 0));

Deno.test("launch gate: one piece in flight while the owner is active, in submission order", async () => {
  const owner = new Owner();
  const p = new Pieces();
  const gate = new LaunchGate(owner.hooks, limits());
  const first = gate.submit("a", [p.piece("a1"), p.piece("a2")]);
  const second = gate.submit("b", [p.piece("b1")]);
  assert.deepEqual(p.started, ["a1"]);
  assert.equal(gate.held, 2);
  assert.equal(gate.inFlight, 1);
  p.finish("a1");
  await first; // resolves once its last piece started
  assert.deepEqual(p.started, ["a1", "a2"]);
  p.finish("a2");
  await second;
  assert.deepEqual(p.started, ["a1", "a2", "b1"]);
  p.finish("b1");
  await tick();
  assert.equal(gate.inFlight, 0);
  assert.equal(gate.held, 0);
});

Deno.test("launch gate: the owner going idle releases held pieces up to idleInFlight", async () => {
  const owner = new Owner();
  const p = new Pieces();
  const gate = new LaunchGate(owner.hooks, limits({ activeInFlight: 0 }));
  const done = gate.submit("f", ["1", "2", "3", "4"].map((n) => p.piece(n)));
  assert.deepEqual(p.started, [], "nothing starts while the owner is active with activeInFlight 0");
  assert.equal(owner.asked, 1, "the gate waits for the owner to settle");
  owner.settle();
  await tick();
  assert.deepEqual(p.started, ["1", "2", "3"], "idleInFlight 3");
  p.finish("2"); // completions in any order free a slot each
  await done;
  assert.deepEqual(p.started, ["1", "2", "3", "4"]);
  for (const n of ["1", "3", "4"]) p.finish(n);
  await tick();
  assert.equal(gate.inFlight, 0);
});

Deno.test("launch gate: a settle while the owner is still active polls instead of looping", async () => {
  const owner = new Owner();
  let asked = 0;
  const gate = new LaunchGate(
    { ownerActive: () => owner.active, ownerSettled: () => (asked++, Promise.resolve()) },
    limits({ activeInFlight: 0 }),
  );
  const p = new Pieces();
  const done = gate.submit("f", [p.piece("x")]);
  await tick();
  await new Promise((r) => setTimeout(r, 20));
  assert.ok(asked >= 2 && asked < 100, `asked ${asked} times in 20 ms: polled, not spun`);
  assert.deepEqual(p.started, []);
  owner.active = false;
  await done;
  assert.deepEqual(p.started, ["x"]);
  p.finish("x");
  await tick();
});

Deno.test("launch gate: maxHoldMs bounds starvation while the owner stays active", async () => {
  const owner = new Owner();
  let now = 0;
  const gate = new LaunchGate(owner.hooks, limits({ activeInFlight: 0, maxHoldMs: 5 }), () => now);
  const p = new Pieces();
  const done = gate.submit("f", [p.piece("1"), p.piece("2")]);
  assert.deepEqual(p.started, []);
  now = 5;
  gate.pump();
  assert.deepEqual(p.started, ["1"], "held 5 ms: starts though the owner is active");
  assert.equal(gate.startedOverdue, 1);
  gate.pump();
  assert.deepEqual(p.started, ["1"], "one overdue piece at a time");
  now = 6;
  p.finish("1");
  await tick();
  assert.deepEqual(p.started, ["1"], "the hold counts again from the last completion");
  now = 11;
  gate.pump();
  await done;
  assert.deepEqual(p.started, ["1", "2"]);
  p.finish("2");
  await tick();
});

Deno.test("launch gate: the hold timer fires by itself (no pump from outside)", async () => {
  const owner = new Owner();
  const gate = new LaunchGate(owner.hooks, limits({ activeInFlight: 0, maxHoldMs: 2 }));
  const p = new Pieces();
  await gate.submit("f", [p.piece("1")]);
  assert.deepEqual(p.started, ["1"]);
  p.finish("1");
  await tick();
});

Deno.test("launch gate: flush starts one submitter's held pieces now, in order, and no one else's", async () => {
  const owner = new Owner();
  const gate = new LaunchGate(owner.hooks, limits());
  const p = new Pieces();
  const a = gate.submit("a", [p.piece("a1")]);
  const b = gate.submit("b", [p.piece("b1"), p.piece("b2")]);
  const c = gate.submit("c", [p.piece("c1")]);
  assert.equal(gate.holds("b"), true);
  gate.flush("b");
  assert.deepEqual(p.started, ["a1", "b1", "b2"]);
  assert.equal(gate.holds("b"), false);
  await Promise.all([a, b]);
  gate.flush("nobody"); // nothing held: nothing happens
  for (const n of ["a1", "b1", "b2"]) p.finish(n);
  await c;
  assert.deepEqual(p.started, ["a1", "b1", "b2", "c1"]);
  p.finish("c1");
  await tick();
});

Deno.test("launch gate: a piece that throws rejects its submission only; the rest go on", async () => {
  const owner = new Owner();
  owner.active = false;
  const gate = new LaunchGate(owner.hooks, limits({ idleInFlight: 1 }));
  const p = new Pieces();
  const boom = new RangeError("bad piece");
  const bad = gate.submit("a", [p.piece("a1"), () => {
    throw boom;
  }, p.piece("a3")]);
  const good = gate.submit("b", [p.piece("b1")]);
  p.finish("a1");
  await assert.rejects(bad, (e) => e === boom);
  await good;
  assert.deepEqual(p.started, ["a1", "b1"], "a3 was dropped with its submission");
  assert.equal(gate.inFlight, 1, "the throwing piece took no slot");
  p.finish("b1");
  await tick();
  assert.equal(gate.inFlight, 0);
});

Deno.test("launch gate: a completion that rejects still frees its slot", async () => {
  const owner = new Owner();
  const gate = new LaunchGate(owner.hooks, limits());
  let fail!: (e: Error) => void;
  const started: string[] = [];
  const a = gate.submit("a", [() => {
    started.push("a");
    return new Promise((_, reject) => (fail = reject));
  }]);
  const b = gate.submit("b", [() => (started.push("b"), Promise.resolve())]);
  await a;
  fail(new Error("device lost"));
  await b;
  assert.deepEqual(started, ["a", "b"]);
});

Deno.test("launch gate: a piece that submits from inside itself is queued behind, not lost", async () => {
  const owner = new Owner();
  owner.active = false;
  const gate = new LaunchGate(owner.hooks, limits({ idleInFlight: 1 }));
  const order: string[] = [];
  let inner: Promise<void> | undefined;
  await gate.submit("a", [() => {
    order.push("outer");
    inner = gate.submit("a", [() => (order.push("inner"), Promise.resolve())]);
    return Promise.resolve();
  }]);
  await inner;
  assert.deepEqual(order, ["outer", "inner"]);
});

Deno.test("launch gate: close rejects held submissions and later ones; pieces in flight finish", async () => {
  const owner = new Owner();
  const gate = new LaunchGate(owner.hooks, limits({ maxHoldMs: 1000 }));
  const p = new Pieces();
  const running = gate.submit("a", [p.piece("a1")]);
  const held = gate.submit("b", [p.piece("b1")]);
  await running;
  gate.close("the scheduler shut down");
  await assert.rejects(held, (e) => e instanceof SchedulerError && /shut down/.test(e.message));
  await assert.rejects(gate.submit("c", [p.piece("c1")]), SchedulerError);
  gate.close(); // idempotent
  p.finish("a1");
  await tick();
  assert.deepEqual(p.started, ["a1"]);
});

Deno.test("launch gate: setLimits lets held pieces start when it grows, and refuses bad limits", async () => {
  const owner = new Owner();
  const gate = new LaunchGate(owner.hooks, limits({ activeInFlight: 0 }));
  const p = new Pieces();
  const done = gate.submit("f", [p.piece("1"), p.piece("2")]);
  assert.throws(() => gate.setLimits(limits({ activeInFlight: -1 })), RangeError);
  assert.equal(gate.limits.activeInFlight, 0, "a refused change changes nothing");
  gate.setLimits(limits({ activeInFlight: 2 }));
  await done;
  assert.deepEqual(p.started, ["1", "2"]);
  p.finish("1");
  p.finish("2");
  await tick();
});

Deno.test("launch gate: bad hooks, limits and pieces are clear errors naming them", async () => {
  const hooks = new Owner().hooks;
  assert.throws(() => new LaunchGate(null as never, limits()), /hooks must be an object/);
  assert.throws(
    () => new LaunchGate({ ...hooks, ownerActive: 3 } as never, limits()),
    (e: unknown) =>
      e instanceof TypeError && /hooks.ownerActive must be a function/.test(e.message),
  );
  assert.throws(
    () => new LaunchGate(hooks, limits(), "now" as never),
    /now must be a function/,
  );
  const bad: [unknown, RegExp, ErrorConstructor][] = [
    [null, /limits must be an object/, TypeError],
    [{ ...limits(), activeInFlight: 1.5 }, /activeInFlight/, RangeError],
    [{ ...limits(), activeInFlight: "1" }, /activeInFlight/, TypeError],
    [{ ...limits(), idleInFlight: 0 }, /idleInFlight/, RangeError],
    [{ ...limits(), maxHoldMs: -1 }, /maxHoldMs must be a number >= 0, got -1/, RangeError],
    [{ ...limits(), maxHoldMs: NaN }, /maxHoldMs/, RangeError],
  ];
  for (const [value, message, type] of bad) {
    assert.throws(() => parseGateLimits(value, "Cannot"), (e: unknown) => {
      return e instanceof type && message.test((e as Error).message);
    }, `${JSON.stringify(value)}`);
  }
  const gate = new LaunchGate(hooks, limits());
  for (const pieces of [[], undefined, [1], "x"]) {
    await assert.rejects(
      gate.submit("a", pieces as never),
      (e: unknown) => e instanceof TypeError && /non-empty array of functions/.test(e.message),
    );
  }
  assert.equal(gate.held, 0, "nothing was queued");
});

Deno.test("launch gate: cancel drops one submitter's held pieces and lets the next start", async () => {
  const owner = new Owner();
  const gate = new LaunchGate(owner.hooks, limits());
  const p = new Pieces();
  const a = gate.submit("a", [p.piece("a1")]);
  const b = gate.submit("b", [p.piece("b1"), p.piece("b2")]);
  const c = gate.submit("c", [p.piece("c1")]);
  await a;
  gate.cancel("b", "its handle was destroyed");
  gate.cancel("b", "again"); // nothing left: nothing happens
  await assert.rejects(
    b,
    (e) => e instanceof SchedulerError && /handle was destroyed/.test(e.message),
  );
  p.finish("a1");
  await c;
  assert.deepEqual(p.started, ["a1", "c1"]);
  p.finish("c1");
  await tick();
});

Deno.test("launch gate (model, fast-check): limits hold at every start, per-submitter order, nothing is left held", async () => {
  type Op =
    | { kind: "submit"; key: number; pieces: number }
    | { kind: "complete"; which: number }
    | { kind: "owner"; active: boolean }
    | { kind: "settle" }
    | { kind: "flush"; key: number }
    | { kind: "cancel"; key: number }
    | { kind: "limits"; active: number; idle: number; hold: number }
    | { kind: "time"; ms: number };
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({
      kind: fc.constant("submit" as const),
      key: fc.integer({ min: 0, max: 2 }),
      pieces: fc.integer({ min: 1, max: 3 }),
    }),
    fc.record({ kind: fc.constant("complete" as const), which: fc.nat(10) }),
    fc.record({ kind: fc.constant("owner" as const), active: fc.boolean() }),
    fc.record({ kind: fc.constant("settle" as const) }),
    fc.record({ kind: fc.constant("flush" as const), key: fc.integer({ min: 0, max: 2 }) }),
    fc.record({ kind: fc.constant("cancel" as const), key: fc.integer({ min: 0, max: 2 }) }),
    fc.record({
      kind: fc.constant("limits" as const),
      active: fc.integer({ min: 0, max: 2 }),
      idle: fc.integer({ min: 1, max: 3 }),
      hold: fc.constantFrom(Infinity, 5),
    }),
    fc.record({ kind: fc.constant("time" as const), ms: fc.integer({ min: 1, max: 10 }) }),
  );
  const flushMicrotasks = async () => {
    for (let i = 0; i < 8; i++) await Promise.resolve();
  };
  await fc.assert(
    fc.asyncProperty(fc.array(op, { maxLength: 40 }), async (ops) => {
      const owner = new Owner();
      let now = 0;
      let current = limits({ activeInFlight: 1, idleInFlight: 2 });
      const gate = new LaunchGate(owner.hooks, current, () => now);
      const running: (() => void)[] = [];
      const startedPerKey = new Map<number, number[]>();
      const outcomes: Promise<string>[] = [];
      let seq = 0;
      let flushing = false;
      let lastCompleted = -Infinity;
      for (const o of ops) {
        if (o.kind === "submit") {
          const submittedAt = now;
          const pieces = Array.from({ length: o.pieces }, () => {
            const id = seq++;
            return () => {
              // A start outside flush respects the limit in force (or is the one overdue piece).
              const before = gate.inFlight - 1;
              const room = owner.active ? current.activeInFlight : current.idleInFlight;
              const overdue = now - Math.max(submittedAt, lastCompleted) >= current.maxHoldMs;
              if (!flushing) {
                assert.ok(
                  before < room || (before === 0 && overdue),
                  `started with ${before} in flight, room ${room}, not held long enough`,
                );
              }
              const list = startedPerKey.get(o.key) ?? [];
              assert.ok(list.every((earlier) => earlier < id), "per-submitter order");
              list.push(id);
              startedPerKey.set(o.key, list);
              const { promise, resolve } = Promise.withResolvers<void>();
              running.push(resolve);
              return promise;
            };
          });
          outcomes.push(
            gate.submit(o.key, pieces).then(() => "resolved", (e) => {
              assert.ok(e instanceof SchedulerError, String(e));
              return "rejected";
            }),
          );
        } else if (o.kind === "complete") {
          if (running.length > 0) {
            running.splice(o.which % running.length, 1)[0]!();
            lastCompleted = now;
          }
        } else if (o.kind === "owner") {
          owner.active = o.active;
          gate.pump();
        } else if (o.kind === "settle") {
          owner.settle();
        } else if (o.kind === "flush") {
          flushing = true;
          gate.flush(o.key);
          flushing = false;
        } else if (o.kind === "cancel") {
          gate.cancel(o.key, "cancelled by the model");
        } else if (o.kind === "limits") {
          current = { activeInFlight: o.active, idleInFlight: o.idle, maxHoldMs: o.hold };
          gate.setLimits(current);
        } else {
          now += o.ms;
          gate.pump();
        }
        await flushMicrotasks();
      }
      // Liveness: the owner goes idle and everything running completes: nothing stays held.
      owner.settle();
      for (let round = 0; round < 200 && (gate.held > 0 || running.length > 0); round++) {
        while (running.length > 0) running.shift()!();
        await flushMicrotasks();
        owner.settle();
        await flushMicrotasks();
      }
      assert.equal(gate.held, 0, "nothing left held");
      assert.equal(gate.inFlight, 0, "every slot given back");
      const settled = await Promise.all(outcomes);
      assert.equal(settled.length, outcomes.length);
      gate.close();
    }),
    { numRuns: 150, seed: 20261201 },
  );
});
