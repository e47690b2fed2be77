import assert from "node:assert/strict";
import {
  AdmissionError,
  QoSPolicy,
  QosPolicyEvaluator,
  type QosReservation,
  QosTaskMeta,
} from "../mod.ts";

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

type ErrorClass = TypeErrorConstructor | RangeErrorConstructor | typeof AdmissionError;

/** Asserts `fn` throws exactly `kind` (not a subclass of it) with `message`. */
function assertThrowsExactly(fn: () => unknown, kind: ErrorClass, message: string | RegExp): void {
  assert.throws(fn, (e: Error) => {
    assert.equal(e.constructor, kind, `expected ${kind.name}, got ${e.name}: ${e.message}`);
    if (typeof message === "string") assert.equal(e.message, message);
    else assert.match(e.message, message);
    return true;
  });
}

/** The evaluator's accounting, for before/after comparisons. */
function snapshot(evaluator: QosPolicyEvaluator) {
  return {
    reservedMemory: evaluator.reservedMemory,
    availableMemory: evaluator.availableMemory,
    reservedBandwidth: evaluator.reservedBandwidth,
    availableBandwidth: evaluator.availableBandwidth,
    reservations: evaluator.reservations().map((r) => ({ ...r })),
  };
}

Deno.test("QoSPolicy holds three frozen string constants", () => {
  assert.deepEqual(
    { ...QoSPolicy },
    { GUARANTEED: "guaranteed", BURSTABLE: "burstable", BEST_EFFORT: "best_effort" },
  );
  assert.ok(Object.isFrozen(QoSPolicy));
});

Deno.test("QosTaskMeta factories record what each class reserves", () => {
  const g = QosTaskMeta.guaranteed("g", "Guaranteed", 256 * MiB, { bandwidth: 0.5, priority: -4 });
  assert.deepEqual(
    { ...g },
    {
      id: "g",
      name: "Guaranteed",
      policy: "guaranteed",
      memory: 256 * MiB,
      base: 256 * MiB,
      bandwidth: 0.5,
      priority: -4,
    },
  );
  const b = QosTaskMeta.burstable("b", "Burstable", 2 * GiB, { base: 1 * GiB });
  assert.equal(b.policy, QoSPolicy.BURSTABLE);
  assert.equal(b.base, 1 * GiB);
  assert.equal(b.bandwidth, 0);
  assert.equal(b.priority, undefined);
  assert.equal(QosTaskMeta.burstable("b0", "Burstable", 1 * GiB).base, 0);
  const e = QosTaskMeta.bestEffort("e", "Best effort", 1 * GiB);
  assert.equal(e.policy, QoSPolicy.BEST_EFFORT);
  assert.equal(e.base, 0);
  assert.equal(e.bandwidth, 0);
  const built = new QosTaskMeta({ id: "x", name: "X", policy: "burstable", memory: 10, base: 10 });
  assert.equal(built.base, 10);
});

Deno.test("QosTaskMeta is frozen, so a task cannot change after it was admitted", () => {
  const task = QosTaskMeta.guaranteed("g", "G", 1024);
  assert.ok(Object.isFrozen(task));
  assert.throws(() => {
    (task as { memory: number }).memory = 1;
  }, TypeError);
  assert.equal(task.memory, 1024);
});

Deno.test("QosTaskMeta factories validate every argument, naming it and the value", () => {
  const g = QosTaskMeta.guaranteed;
  const b = QosTaskMeta.burstable;
  const e = QosTaskMeta.bestEffort;
  // deno-fmt-ignore
  const cases: [() => unknown, ErrorClass, string | RegExp][] = [
    [() => g(42 as never, "n", 1), TypeError, "Cannot create a QoS task: id must be a string, got 42"],
    [() => g("", "n", 1), RangeError, 'Cannot create a QoS task: id must be a non-empty string, got ""'],
    [() => g("t", undefined as never, 1), TypeError, 'Cannot create QoS task "t": name must be a string, got undefined'],
    [() => g("t", "", 1), RangeError, 'Cannot create QoS task "t": name must be a non-empty string, got ""'],
    [() => g("t", "n", 0), RangeError, 'Cannot create QoS task "t": memory must be a positive integer, got 0'],
    [() => g("t", "n", -1), RangeError, 'Cannot create QoS task "t": memory must be a positive integer, got -1'],
    [() => b("t", "n", 1.5), RangeError, 'Cannot create QoS task "t": memory must be a positive integer, got 1.5'],
    [() => e("t", "n", NaN), RangeError, 'Cannot create QoS task "t": memory must be a positive integer, got NaN'],
    [() => e("t", "n", Infinity), RangeError, 'Cannot create QoS task "t": memory must be a positive integer, got Infinity'],
    [() => g("t", "n", 2 ** 53), RangeError, 'Cannot create QoS task "t": memory must be a positive integer, got 9007199254740992'],
    [() => g("t", "n", "1" as never), TypeError, 'Cannot create QoS task "t": memory must be a number, got "1"'],
    [() => g("t", "n", 1n as never), TypeError, 'Cannot create QoS task "t": memory must be a number, got 1n'],
    [() => g("t", "n", 1, null as never), TypeError, 'Cannot create QoS task "t": options must be an object, got null'],
    [() => b("t", "n", 1, 5 as never), TypeError, 'Cannot create QoS task "t": options must be an object, got 5'],
    [() => g("t", "n", 1, { bandwidth: 0 }), RangeError, 'Cannot create QoS task "t": bandwidth must be a fraction in (0, 1], got 0'],
    [() => g("t", "n", 1, { bandwidth: -0.5 }), RangeError, 'Cannot create QoS task "t": bandwidth must be a fraction in (0, 1], got -0.5'],
    [() => g("t", "n", 1, { bandwidth: 1.5 }), RangeError, 'Cannot create QoS task "t": bandwidth must be a fraction in (0, 1], got 1.5'],
    [() => b("t", "n", 1, { bandwidth: NaN }), RangeError, 'Cannot create QoS task "t": bandwidth must be a fraction in (0, 1], got NaN'],
    [() => b("t", "n", 1, { bandwidth: Infinity }), RangeError, 'Cannot create QoS task "t": bandwidth must be a fraction in (0, 1], got Infinity'],
    [() => g("t", "n", 1, { bandwidth: "0.5" as never }), TypeError, 'Cannot create QoS task "t": bandwidth must be a number, got "0.5"'],
    [() => e("t", "n", 1, { bandwidth: 0.5 } as never), RangeError, 'Cannot create QoS task "t": bandwidth must be left out for a best-effort task, got 0.5'],
    [() => b("t", "n", 10, { base: -1 }), RangeError, 'Cannot create QoS task "t": base must be a non-negative integer, got -1'],
    [() => b("t", "n", 10, { base: 2.5 }), RangeError, 'Cannot create QoS task "t": base must be a non-negative integer, got 2.5'],
    [() => b("t", "n", 10, { base: "1" as never }), TypeError, 'Cannot create QoS task "t": base must be a number, got "1"'],
    [() => b("t", "n", 10, { base: 11 }), RangeError, 'Cannot create QoS task "t": base must be at most memory (10), got 11'],
    [() => g("t", "n", 10, { base: 5 } as never), RangeError, 'Cannot create QoS task "t": base must be left out unless the task is burstable, got 5'],
    [() => e("t", "n", 10, { base: 5 } as never), RangeError, 'Cannot create QoS task "t": base must be left out unless the task is burstable, got 5'],
    [() => g("t", "n", 1, { priority: 1.5 }), RangeError, 'Cannot create QoS task "t": priority must be an integer from -2147483648 to 2147483647, got 1.5'],
    [() => e("t", "n", 1, { priority: 2 ** 31 }), RangeError, 'Cannot create QoS task "t": priority must be an integer from -2147483648 to 2147483647, got 2147483648'],
    [() => b("t", "n", 1, { priority: "high" as never }), TypeError, 'Cannot create QoS task "t": priority must be a number, got "high"'],
    [() => new QosTaskMeta(undefined as never), TypeError, "Cannot create a QoS task: init must be an object, got undefined"],
    [() => new QosTaskMeta([] as never), TypeError, "Cannot create a QoS task: init must be an object, got []"],
    [() => new QosTaskMeta({ id: "t", name: "n", policy: "realtime" as never, memory: 1 }), RangeError, 'Cannot create QoS task "t": policy must be one of "guaranteed", "burstable", "best_effort", got "realtime"'],
    [() => new QosTaskMeta({ id: "t", name: "n", memory: 1 } as never), TypeError, 'Cannot create QoS task "t": policy must be a string, got undefined'],
  ];
  for (const [fn, kind, message] of cases) assertThrowsExactly(fn, kind, message);
});

Deno.test("new QosPolicyEvaluator validates every option, naming it and the value", () => {
  const make = (options: unknown) => () => new QosPolicyEvaluator(options as never);
  const p = "Cannot create a QoS policy evaluator: ";
  // deno-fmt-ignore
  const cases: [unknown, ErrorClass, string][] = [
    [undefined, TypeError, `${p}totalMemory must be a number, got undefined`],
    [null, TypeError, `${p}options must be an object, got null`],
    [8, TypeError, `${p}options must be an object, got 8`],
    [{ totalMemory: 0 }, RangeError, `${p}totalMemory must be a positive integer, got 0`],
    [{ totalMemory: -GiB }, RangeError, `${p}totalMemory must be a positive integer, got -1073741824`],
    [{ totalMemory: 1.5 }, RangeError, `${p}totalMemory must be a positive integer, got 1.5`],
    [{ totalMemory: NaN }, RangeError, `${p}totalMemory must be a positive integer, got NaN`],
    [{ totalMemory: "8GB" }, TypeError, `${p}totalMemory must be a number, got "8GB"`],
    [{ totalMemory: GiB, totalBandwidth: 0 }, RangeError, `${p}totalBandwidth must be a fraction in (0, 1], got 0`],
    [{ totalMemory: GiB, totalBandwidth: 1.01 }, RangeError, `${p}totalBandwidth must be a fraction in (0, 1], got 1.01`],
    [{ totalMemory: GiB, totalBandwidth: NaN }, RangeError, `${p}totalBandwidth must be a fraction in (0, 1], got NaN`],
    [{ totalMemory: GiB, totalBandwidth: "1" }, TypeError, `${p}totalBandwidth must be a number, got "1"`],
    [{ totalMemory: GiB, priorityRange: null }, TypeError, `${p}priorityRange must be an object, got null`],
    [{ totalMemory: GiB, priorityRange: [0, -5] }, TypeError, `${p}priorityRange must be an object, got [0,-5]`],
    [{ totalMemory: GiB, priorityRange: { least: 0 } }, TypeError, `${p}priorityRange.greatest must be a number, got undefined`],
    [{ totalMemory: GiB, priorityRange: { least: 0.5, greatest: -1 } }, RangeError, `${p}priorityRange.least must be an integer from -2147483648 to 2147483647, got 0.5`],
    [{ totalMemory: GiB, priorityRange: { least: 0, greatest: 1 } }, RangeError, `${p}priorityRange.greatest must be at most priorityRange.least (0), got 1`],
  ];
  for (const [options, kind, message] of cases) assertThrowsExactly(make(options), kind, message);
});

Deno.test("a guaranteed task that exactly fits beside the reservations is admitted; one byte more is rejected", () => {
  const evaluator = new QosPolicyEvaluator({ totalMemory: 8 * GiB });
  evaluator.admit(QosTaskMeta.guaranteed("llm", "LLM", 3 * GiB));
  evaluator.admit(QosTaskMeta.burstable("tts", "TTS", 4 * GiB, { base: 1 * GiB }));

  const exact = evaluator.evaluate(QosTaskMeta.guaranteed("fit", "Fit", 4 * GiB));
  assert.equal(exact.decision, "admit");
  assert.equal(exact.admitted, true);
  assert.equal(
    exact.reason,
    `Guaranteed task "fit" is admitted: its ${4 * GiB} bytes fit beside every reservation`,
  );

  const over = evaluator.evaluate(QosTaskMeta.guaranteed("over", "Over", 4 * GiB + 1));
  assert.equal(over.decision, "reject");
  assert.equal(over.admitted, false);
  assert.equal(
    over.reason,
    `Guaranteed task "over" is rejected: it needs ${4 * GiB + 1} bytes reserved, ${
      4 * GiB
    } bytes are unreserved`,
  );
});

Deno.test("a guaranteed task larger than the whole device is rejected", () => {
  const evaluator = new QosPolicyEvaluator({ totalMemory: 1 * GiB });
  assert.equal(evaluator.evaluate(QosTaskMeta.guaranteed("g", "G", GiB)).decision, "admit");
  assert.equal(evaluator.evaluate(QosTaskMeta.guaranteed("g", "G", GiB + 1)).decision, "reject");
});

Deno.test("two guaranteed tasks of bandwidth 0.5 are both admitted", () => {
  const evaluator = new QosPolicyEvaluator({ totalMemory: 8 * GiB, totalBandwidth: 1.0 });
  evaluator.admit(QosTaskMeta.guaranteed("a", "A", 1 * GiB, { bandwidth: 0.5 }));
  const second = evaluator.admit(QosTaskMeta.guaranteed("b", "B", 1 * GiB, { bandwidth: 0.5 }));
  assert.equal(second.decision, "admit");
  assert.equal(evaluator.reservedBandwidth, 1);
  assert.equal(evaluator.availableBandwidth, 0);
});

Deno.test("bandwidth 0.6 then 0.5 rejects the second with the shares in the reason", () => {
  const evaluator = new QosPolicyEvaluator({ totalMemory: 8 * GiB, totalBandwidth: 1.0 });
  evaluator.admit(QosTaskMeta.guaranteed("a", "A", 1 * GiB, { bandwidth: 0.6 }));
  const b = QosTaskMeta.guaranteed("b", "B", 1 * GiB, { bandwidth: 0.5 });
  const r = evaluator.evaluate(b);
  assert.equal(r.decision, "reject");
  assert.equal(
    r.reason,
    'Guaranteed task "b" is rejected: it needs a bandwidth share of 0.5 reserved, 0.4 is unreserved',
  );
  assertThrowsExactly(
    () => evaluator.admit(b),
    AdmissionError,
    'Cannot admit guaranteed task "b": it needs a bandwidth share of 0.5 reserved, 0.4 is unreserved',
  );
  assert.equal(evaluator.reservedMemory, 1 * GiB, "the failed admission reserved nothing");
  assert.equal(evaluator.has("b"), false);
});

Deno.test("decimal shares that sum to the total all fit, with no floating-point drift", () => {
  const evaluator = new QosPolicyEvaluator({ totalMemory: 8 * GiB, totalBandwidth: 1.0 });
  for (const [id, share] of [["a", 0.1], ["b", 0.2], ["c", 0.7]] as const) {
    assert.equal(
      evaluator.admit(QosTaskMeta.guaranteed(id, id, MiB, { bandwidth: share })).decision,
      "admit",
    );
  }
  assert.equal(evaluator.availableBandwidth, 0);
  for (let i = 0; i < 1000; i++) {
    evaluator.release("a");
    evaluator.admit(QosTaskMeta.guaranteed("a", "a", MiB, { bandwidth: 0.1 }));
  }
  evaluator.release("a");
  evaluator.release("b");
  assert.equal(evaluator.availableBandwidth, 0.3);
  evaluator.release("c");
  assert.equal(evaluator.reservedBandwidth, 0);
  assert.equal(evaluator.availableBandwidth, 1);
});

Deno.test("tasks that ask for no bandwidth reserve none and never starve a task that does", () => {
  const evaluator = new QosPolicyEvaluator({ totalMemory: 8 * GiB, totalBandwidth: 1.0 });
  evaluator.admit(QosTaskMeta.guaranteed("g1", "G1", 1 * GiB));
  evaluator.admit(QosTaskMeta.guaranteed("g2", "G2", 1 * GiB));
  evaluator.admit(QosTaskMeta.burstable("b1", "B1", 2 * GiB, { base: 1 * GiB }));
  evaluator.admit(QosTaskMeta.bestEffort("e1", "E1", 1 * GiB));
  assert.equal(evaluator.reservedBandwidth, 0);
  assert.equal(evaluator.availableBandwidth, 1);
  assert.deepEqual(evaluator.reservations().map((r) => r.bandwidth), [0, 0, 0, 0]);
  const whole = QosTaskMeta.guaranteed("all", "All", 1 * GiB, { bandwidth: 1.0 });
  assert.equal(evaluator.admit(whole).decision, "admit");
});

Deno.test("a burstable task is admitted when its whole memory fits, throttled one byte past, rejected when its base does not fit", () => {
  const evaluator = new QosPolicyEvaluator({ totalMemory: 8 * GiB });
  evaluator.admit(QosTaskMeta.guaranteed("llm", "LLM", 6 * GiB));
  const spare = 2 * GiB;

  const fits = evaluator.evaluate(QosTaskMeta.burstable("a", "A", spare, { base: 1 * GiB }));
  assert.equal(fits.decision, "admit");
  assert.equal(
    fits.reason,
    `Burstable task "a" is admitted: its base of ${GiB} bytes fits, and so does its burst to ${spare} bytes`,
  );

  const burst = evaluator.evaluate(QosTaskMeta.burstable("b", "B", spare + 1, { base: 1 * GiB }));
  assert.equal(burst.decision, "throttle");
  assert.equal(burst.admitted, true);
  assert.equal(
    burst.reason,
    `Burstable task "b" is throttled to its base of ${GiB} bytes: bursting to ${
      spare + 1
    } bytes needs that much spare memory, ${spare} bytes are spare`,
  );

  const baseExact = evaluator.evaluate(QosTaskMeta.burstable("c", "C", 4 * GiB, { base: spare }));
  assert.equal(baseExact.decision, "throttle");

  const baseOver = QosTaskMeta.burstable("d", "D", 4 * GiB, { base: spare + 1 });
  const rejected = evaluator.evaluate(baseOver);
  assert.equal(rejected.decision, "reject");
  assert.equal(rejected.admitted, false);
  assert.equal(
    rejected.reason,
    `Burstable task "d" is rejected: it needs its base of ${
      spare + 1
    } bytes reserved, ${spare} bytes are unreserved`,
  );
  assertThrowsExactly(
    () => evaluator.admit(baseOver),
    AdmissionError,
    `Cannot admit burstable task "d": it needs its base of ${
      spare + 1
    } bytes reserved, ${spare} bytes are unreserved`,
  );
});

Deno.test("a burstable task whose base fits but whose bandwidth does not is rejected", () => {
  const evaluator = new QosPolicyEvaluator({ totalMemory: 8 * GiB, totalBandwidth: 0.5 });
  evaluator.admit(QosTaskMeta.guaranteed("g", "G", 1 * GiB, { bandwidth: 0.25 }));
  const r = evaluator.evaluate(QosTaskMeta.burstable("b", "B", 1 * GiB, { bandwidth: 0.3 }));
  assert.equal(r.decision, "reject");
  assert.match(r.reason, /needs a bandwidth share of 0.3 reserved, 0.25 is unreserved$/);
  assert.equal(
    evaluator.evaluate(QosTaskMeta.burstable("b", "B", 1 * GiB, { bandwidth: 0.25 })).decision,
    "admit",
  );
});

Deno.test("a throttled burstable task is admitted and reserves only its base and share", () => {
  const evaluator = new QosPolicyEvaluator({ totalMemory: 8 * GiB });
  const tts = QosTaskMeta.burstable("tts", "TTS", 16 * GiB, { base: 2 * GiB, bandwidth: 0.25 });
  const r = evaluator.admit(tts);
  assert.equal(r.decision, "throttle");
  assert.equal(evaluator.reservedMemory, 2 * GiB);
  assert.equal(evaluator.reservedBandwidth, 0.25);
  const held = evaluator.reservation("tts");
  assert.ok(held);
  assert.equal(held.decision, "throttle");
  assert.equal(held.memory, 2 * GiB);
  assert.equal(held.task, tts);
});

Deno.test("a best-effort task is admitted while its memory fits in spare memory, else queued", () => {
  const evaluator = new QosPolicyEvaluator({ totalMemory: 8 * GiB });
  evaluator.admit(QosTaskMeta.guaranteed("llm", "LLM", 5 * GiB));
  evaluator.admit(QosTaskMeta.burstable("tts", "TTS", 4 * GiB, { base: 1 * GiB }));
  const spare = 2 * GiB;

  const fits = evaluator.evaluate(QosTaskMeta.bestEffort("a", "A", spare));
  assert.equal(fits.decision, "admit");
  assert.equal(
    fits.reason,
    `Best-effort task "a" is admitted: its ${spare} bytes fit in spare memory`,
  );

  const over = QosTaskMeta.bestEffort("b", "B", spare + 1);
  const queued = evaluator.evaluate(over);
  assert.equal(queued.decision, "queue");
  assert.equal(queued.admitted, false);
  assert.equal(
    queued.reason,
    `Best-effort task "b" is queued: it needs ${
      spare + 1
    } bytes of spare memory, ${spare} bytes are spare`,
  );
  assertThrowsExactly(
    () => evaluator.admit(over),
    AdmissionError,
    `Cannot admit best-effort task "b": it needs ${
      spare + 1
    } bytes of spare memory, ${spare} bytes are spare`,
  );

  evaluator.release("tts");
  assert.equal(evaluator.evaluate(over).decision, "admit", "released reservations become spare");
});

Deno.test("a best-effort task larger than the whole device is rejected, not queued forever", () => {
  const evaluator = new QosPolicyEvaluator({ totalMemory: 1 * GiB });
  const r = evaluator.evaluate(QosTaskMeta.bestEffort("huge", "Huge", GiB + 1));
  assert.equal(r.decision, "reject");
  assert.equal(
    r.reason,
    `Best-effort task "huge" is rejected: it needs ${
      GiB + 1
    } bytes, more than the ${GiB} bytes in all`,
  );
  assert.equal(evaluator.evaluate(QosTaskMeta.bestEffort("all", "All", GiB)).decision, "admit");
});

Deno.test("best-effort tasks and burstable bursts are not reservations: spare memory ignores them", () => {
  const evaluator = new QosPolicyEvaluator({ totalMemory: 8 * GiB });
  evaluator.admit(QosTaskMeta.bestEffort("e1", "E1", 6 * GiB));
  evaluator.admit(QosTaskMeta.bestEffort("e2", "E2", 6 * GiB));
  evaluator.admit(QosTaskMeta.burstable("b", "B", 8 * GiB, { base: 1 * GiB }));
  assert.equal(evaluator.reservedMemory, 1 * GiB);
  assert.equal(evaluator.availableMemory, 7 * GiB);
  assert.equal(evaluator.evaluate(QosTaskMeta.guaranteed("g", "G", 7 * GiB)).decision, "admit");
  assert.deepEqual(evaluator.reservations().map((r) => [r.task.id, r.memory]), [
    ["e1", 0],
    ["e2", 0],
    ["b", 1 * GiB],
  ]);
});

Deno.test("release returns the memory and bandwidth a task held, and what it held", () => {
  const evaluator = new QosPolicyEvaluator({ totalMemory: 8 * GiB });
  const llm = QosTaskMeta.guaranteed("llm", "LLM", 6 * GiB, { bandwidth: 0.75 });
  evaluator.admit(llm);
  evaluator.admit(QosTaskMeta.burstable("tts", "TTS", 2 * GiB, { base: 1 * GiB, bandwidth: 0.25 }));
  assert.equal(evaluator.availableMemory, 1 * GiB);
  assert.equal(evaluator.evaluate(QosTaskMeta.guaranteed("v", "V", 6 * GiB)).decision, "reject");

  const held: QosReservation = evaluator.release("llm");
  assert.equal(held.task, llm);
  assert.equal(held.memory, 6 * GiB);
  assert.equal(held.bandwidth, 0.75);
  assert.equal(held.priority, -5);
  assert.equal(evaluator.has("llm"), false);
  assert.equal(evaluator.reservedMemory, 1 * GiB);
  assert.equal(evaluator.availableMemory, 7 * GiB);
  assert.equal(evaluator.availableBandwidth, 0.75);
  assert.equal(evaluator.evaluate(QosTaskMeta.guaranteed("v", "V", 6 * GiB)).decision, "admit");

  evaluator.release("tts");
  assert.equal(evaluator.reservedMemory, 0);
  assert.equal(evaluator.reservedBandwidth, 0);
  assert.deepEqual(evaluator.reservations(), []);
  evaluator.admit(llm);
  assert.equal(evaluator.has("llm"), true, "a released id may be admitted again");
});

Deno.test("release of an id that is not admitted throws a RangeError, a second release included", () => {
  const evaluator = new QosPolicyEvaluator({ totalMemory: 8 * GiB });
  assertThrowsExactly(
    () => evaluator.release("ghost"),
    RangeError,
    'Cannot release a QoS task: id must belong to an admitted task, got "ghost"',
  );
  evaluator.admit(QosTaskMeta.guaranteed("g", "G", 1 * GiB));
  evaluator.release("g");
  assertThrowsExactly(
    () => evaluator.release("g"),
    RangeError,
    'Cannot release a QoS task: id must belong to an admitted task, got "g"',
  );
  assert.equal(evaluator.reservedMemory, 0, "the failed release changed nothing");
  assertThrowsExactly(
    () => evaluator.release(7 as never),
    TypeError,
    "Cannot release a QoS task: id must be a string, got 7",
  );
});

Deno.test("admitting an id that is already admitted throws a RangeError and changes nothing", () => {
  const evaluator = new QosPolicyEvaluator({ totalMemory: 8 * GiB });
  evaluator.admit(QosTaskMeta.guaranteed("llm", "LLM", 1 * GiB));
  const before = snapshot(evaluator);
  for (
    const again of [
      QosTaskMeta.guaranteed("llm", "LLM", 1 * GiB),
      QosTaskMeta.bestEffort("llm", "Another", 1),
    ]
  ) {
    assertThrowsExactly(
      () => evaluator.admit(again),
      RangeError,
      'Cannot admit QoS task "llm": id must not belong to an admitted task, got "llm"',
    );
  }
  assert.deepEqual(snapshot(evaluator), before);
});

Deno.test("evaluate changes nothing, whatever it decides", () => {
  const evaluator = new QosPolicyEvaluator({ totalMemory: 8 * GiB, totalBandwidth: 1 });
  evaluator.admit(QosTaskMeta.guaranteed("llm", "LLM", 4 * GiB, { bandwidth: 0.5 }));
  evaluator.admit(QosTaskMeta.burstable("tts", "TTS", 4 * GiB, { base: 2 * GiB }));
  const tasks = [
    QosTaskMeta.guaranteed("g-ok", "G", 1 * GiB, { bandwidth: 0.5 }),
    QosTaskMeta.guaranteed("g-no", "G", 3 * GiB),
    QosTaskMeta.burstable("b-ok", "B", 1 * GiB, { base: 1 * GiB }),
    QosTaskMeta.burstable("b-thr", "B", 4 * GiB, { base: 1 * GiB }),
    QosTaskMeta.burstable("b-no", "B", 4 * GiB, { base: 3 * GiB }),
    QosTaskMeta.bestEffort("e-ok", "E", 1 * GiB),
    QosTaskMeta.bestEffort("e-q", "E", 3 * GiB),
    QosTaskMeta.bestEffort("llm", "Same id as an admitted task", 1),
  ];
  const before = snapshot(evaluator);
  const decisions = tasks.map((t) => evaluator.evaluate(t).decision);
  assert.deepEqual(decisions, [
    "admit",
    "reject",
    "admit",
    "throttle",
    "reject",
    "admit",
    "queue",
    "admit",
  ]);
  assert.deepEqual(snapshot(evaluator), before);
  assert.deepEqual(tasks.map((t) => evaluator.evaluate(t).decision), decisions);
  assert.equal(evaluator.has("g-ok"), false);
});

Deno.test("priorities follow the class bands of the default range 0 to -5", () => {
  const evaluator = new QosPolicyEvaluator({ totalMemory: 8 * GiB });
  assert.deepEqual(evaluator.priorityRange, { least: 0, greatest: -5 });
  assert.deepEqual(evaluator.priorityBand(QoSPolicy.GUARANTEED), {
    greatest: -5,
    least: -4,
    default: -5,
  });
  assert.deepEqual(evaluator.priorityBand(QoSPolicy.BURSTABLE), {
    greatest: -3,
    least: -2,
    default: -3,
  });
  assert.deepEqual(evaluator.priorityBand(QoSPolicy.BEST_EFFORT), {
    greatest: -1,
    least: 0,
    default: 0,
  });
  const priority = (task: QosTaskMeta) => evaluator.evaluate(task).priority;
  assert.equal(priority(QosTaskMeta.guaranteed("g", "G", 1)), -5);
  assert.equal(priority(QosTaskMeta.burstable("b", "B", 1)), -3);
  assert.equal(priority(QosTaskMeta.bestEffort("e", "E", 1)), 0);
  // A rejected task still says where it would run.
  assert.equal(priority(QosTaskMeta.guaranteed("g", "G", 9 * GiB)), -5);
});

Deno.test("a priority hint moves a task within its class band and never past it", () => {
  const evaluator = new QosPolicyEvaluator({ totalMemory: 8 * GiB });
  const cases: [QosTaskMeta, number][] = [
    [QosTaskMeta.guaranteed("g", "G", 1, { priority: -4 }), -4],
    [QosTaskMeta.guaranteed("g", "G", 1, { priority: 0 }), -4],
    [QosTaskMeta.guaranteed("g", "G", 1, { priority: -100 }), -5],
    [QosTaskMeta.burstable("b", "B", 1, { priority: -2 }), -2],
    [QosTaskMeta.burstable("b", "B", 1, { priority: -5 }), -3],
    [QosTaskMeta.burstable("b", "B", 1, { priority: 3 }), -2],
    [QosTaskMeta.bestEffort("e", "E", 1, { priority: -1 }), -1],
    [QosTaskMeta.bestEffort("e", "E", 1, { priority: -5 }), -1],
    [QosTaskMeta.bestEffort("e", "E", 1, { priority: 2 ** 31 - 1 }), 0],
  ];
  for (const [task, expected] of cases) {
    assert.equal(
      evaluator.evaluate(task).priority,
      expected,
      `hint ${task.priority} (${task.policy})`,
    );
  }
  evaluator.admit(QosTaskMeta.burstable("tts", "TTS", 1, { priority: -2 }));
  assert.equal(evaluator.reservation("tts")?.priority, -2);
});

Deno.test("a custom priority range maps classes onto that range", () => {
  const cases: [{ least: number; greatest: number }, [number, number, number]][] = [
    [{ least: 0, greatest: -2 }, [-2, -1, 0]],
    [{ least: 0, greatest: -1 }, [-1, 0, 0]],
    [{ least: 0, greatest: 0 }, [0, 0, 0]],
    [{ least: 0, greatest: -9 }, [-9, -5, 0]],
    [{ least: 7, greatest: 3 }, [3, 5, 7]],
  ];
  for (const [priorityRange, [g, b, e]] of cases) {
    const evaluator = new QosPolicyEvaluator({ totalMemory: GiB, priorityRange });
    const label = JSON.stringify(priorityRange);
    assert.deepEqual(evaluator.priorityRange, priorityRange);
    assert.equal(evaluator.evaluate(QosTaskMeta.guaranteed("g", "G", 1)).priority, g, label);
    assert.equal(evaluator.evaluate(QosTaskMeta.burstable("b", "B", 1)).priority, b, label);
    assert.equal(evaluator.evaluate(QosTaskMeta.bestEffort("e", "E", 1)).priority, e, label);
  }
});

Deno.test("class bands stay inside the range, ordered and disjoint, for every range of 3 to 40 levels", () => {
  for (let levels = 3; levels <= 40; levels++) {
    const range = { least: 0, greatest: 1 - levels };
    const evaluator = new QosPolicyEvaluator({ totalMemory: GiB, priorityRange: range });
    const [g, b, e] = [QoSPolicy.GUARANTEED, QoSPolicy.BURSTABLE, QoSPolicy.BEST_EFFORT].map(
      (p) => evaluator.priorityBand(p),
    ) as [
      ReturnType<typeof evaluator.priorityBand>,
      ReturnType<typeof evaluator.priorityBand>,
      ReturnType<typeof evaluator.priorityBand>,
    ];
    const label = `${levels} levels`;
    assert.equal(g.greatest, range.greatest, label);
    assert.equal(e.least, range.least, label);
    assert.equal(b.greatest, g.least + 1, label);
    assert.equal(e.greatest, b.least + 1, label);
    for (const band of [g, b, e]) {
      assert.ok(band.greatest <= band.default && band.default <= band.least, label);
    }
    assert.equal(g.default, range.greatest, label);
    assert.equal(e.default, range.least, label);
  }
});

Deno.test("evaluate and admit refuse what is not a QosTaskMeta, and shares above totalBandwidth", () => {
  const evaluator = new QosPolicyEvaluator({ totalMemory: GiB, totalBandwidth: 0.5 });
  const fake = { id: "x", name: "X", policy: "guaranteed", memory: 1, base: 1, bandwidth: 0 };
  // deno-fmt-ignore
  const cases: [() => unknown, ErrorClass, string | RegExp][] = [
    [() => evaluator.evaluate(undefined as never), TypeError, "Cannot evaluate a QoS task: task must be a QosTaskMeta, got undefined"],
    [() => evaluator.evaluate(fake as never), TypeError, /^Cannot evaluate a QoS task: task must be a QosTaskMeta, got \{"id":"x"/],
    [() => evaluator.admit("llm" as never), TypeError, 'Cannot admit a QoS task: task must be a QosTaskMeta, got "llm"'],
    [() => evaluator.evaluate(QosTaskMeta.guaranteed("w", "W", 1, { bandwidth: 0.75 })), RangeError, 'Cannot evaluate QoS task "w": bandwidth must be at most totalBandwidth (0.5), got 0.75'],
    [() => evaluator.admit(QosTaskMeta.burstable("w", "W", 1, { bandwidth: 0.51 })), RangeError, 'Cannot admit QoS task "w": bandwidth must be at most totalBandwidth (0.5), got 0.51'],
    [() => evaluator.has(1 as never), TypeError, "Cannot look up a QoS task: id must be a string, got 1"],
    [() => evaluator.reservation(null as never), TypeError, "Cannot look up a QoS task: id must be a string, got null"],
    [() => evaluator.priorityBand("urgent" as never), RangeError, 'Cannot read a priority band: policy must be one of "guaranteed", "burstable", "best_effort", got "urgent"'],
  ];
  for (const [fn, kind, message] of cases) assertThrowsExactly(fn, kind, message);
  assert.equal(
    evaluator.evaluate(QosTaskMeta.guaranteed("w", "W", 1, { bandwidth: 0.5 })).decision,
    "admit",
  );
  assert.equal(evaluator.reservedMemory, 0);
});

Deno.test("an evaluation serializes to the plain { admitted, decision, priority, reason } shape", () => {
  const evaluator = new QosPolicyEvaluator({ totalMemory: GiB });
  const r = evaluator.evaluate(QosTaskMeta.bestEffort("bg", "Background", 2 * GiB));
  assert.deepEqual(JSON.parse(JSON.stringify(r)), {
    admitted: false,
    decision: "reject",
    priority: 0,
    reason: `Best-effort task "bg" is rejected: it needs ${
      2 * GiB
    } bytes, more than the ${GiB} bytes in all`,
  });
  assert.equal(r.task.id, "bg");
});

Deno.test("reasons describe the moment of evaluation, not the reservations made since", () => {
  const evaluator = new QosPolicyEvaluator({ totalMemory: 8 * GiB });
  const r = evaluator.evaluate(QosTaskMeta.guaranteed("big", "Big", 9 * GiB));
  evaluator.admit(QosTaskMeta.guaranteed("llm", "LLM", 4 * GiB));
  assert.match(r.reason, new RegExp(`${8 * GiB} bytes are unreserved$`));
});

Deno.test("reservations() lists admitted tasks in admission order, as a copy", () => {
  const evaluator = new QosPolicyEvaluator({ totalMemory: 8 * GiB });
  evaluator.admit(QosTaskMeta.bestEffort("e", "E", 1));
  evaluator.admit(QosTaskMeta.guaranteed("g", "G", 1 * GiB, { bandwidth: 0.5 }));
  evaluator.admit(QosTaskMeta.burstable("b", "B", 2 * GiB, { base: 1 * GiB }));
  const list = evaluator.reservations();
  assert.deepEqual(list.map((r) => [r.task.id, r.memory, r.bandwidth, r.priority, r.decision]), [
    ["e", 0, 0, 0, "admit"],
    ["g", 1 * GiB, 0.5, -5, "admit"],
    ["b", 1 * GiB, 0, -3, "admit"],
  ]);
  list.length = 0;
  assert.equal(evaluator.reservations().length, 3);
  evaluator.release("g");
  assert.deepEqual(evaluator.reservations().map((r) => r.task.id), ["e", "b"]);
});
