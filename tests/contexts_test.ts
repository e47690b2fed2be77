import assert from "node:assert/strict";
import {
  AdmissionError,
  alloc,
  contextSession,
  createContext,
  currentContext,
  destroyContext,
  type ExecutionContext,
  getAvailableVram,
  getContextUsage,
  getStream,
  initialize,
  MB,
  NoActiveSessionError,
  onMemoryPressure,
  PartitionConfig,
  PartitionLimits,
  PartitionManager,
  QoSPolicy,
  recordEvent,
  SchedulerError,
  shutdown,
  VramBudgetExceededError,
  waitEvent,
} from "../mod.ts";
import { backendTest, gate, hold, kernels, randomBytes } from "./_helpers.ts";

backendTest(
  "contexts of each class get their reservation and their class's stream priority",
  (sched) => {
    const llm = createContext("llm", { maxVram: 16 * MB, qos: QoSPolicy.GUARANTEED });
    const tts = createContext("tts", {
      maxVram: 8 * MB,
      baseVram: 4 * MB,
      qos: QoSPolicy.BURSTABLE,
    });
    const bg = createContext("background", { maxVram: 4 * MB, qos: QoSPolicy.BEST_EFFORT });
    const vision = createContext("vision", { maxVram: 4 * MB });
    assert.deepEqual(
      [llm.reserved, tts.reserved, bg.reserved, vision.reserved, vision.qos],
      [16 * MB, 4 * MB, 0, 0, QoSPolicy.BURSTABLE],
    );
    const { least, greatest } = sched.device.priorityRange;
    assert.equal(getStream(llm).priority, greatest);
    assert.equal(getStream(bg).priority, least);
    assert.ok(getStream(llm).priority < getStream(tts).priority);
    assert.ok(getStream(tts).priority < getStream(bg).priority);
    assert.equal(getAvailableVram(), sched.memoryLimit - 20 * MB);
    destroyContext(bg);
    bg[Symbol.dispose]();
    assert.throws(() => getStream(bg), /context "background" was destroyed/);
    {
      using _temp = createContext("temp", { maxVram: MB, qos: QoSPolicy.GUARANTEED });
      assert.equal(getAvailableVram(), sched.memoryLimit - 21 * MB);
    }
    assert.equal(getAvailableVram(), sched.memoryLimit - 20 * MB, "using released the reservation");
    destroyContext(tts);
    assert.equal(getAvailableVram(), sched.memoryLimit - 16 * MB);
  },
  { hostMemory: 64 * MB },
);

backendTest("bad context options are refused, naming the option and the value", () => {
  createContext("taken", { maxVram: MB });
  const cases: [unknown, unknown, ErrorConstructor, RegExp][] = [
    [42, { maxVram: MB }, TypeError, /name must be a string, got 42/],
    ["", { maxVram: MB }, RangeError, /name must be a non-empty string, got ""/],
    ["taken", { maxVram: MB }, RangeError, /the name is already in use/],
    ["x", undefined, TypeError, /options with maxVram are required/],
    ["x", null, TypeError, /options must be an object, got null/],
    ["x", {}, TypeError, /maxVram must be a number, got undefined/],
    ["x", { maxVram: -1 }, RangeError, /maxVram must be a positive integer, got -1/],
    ["x", { maxVram: NaN }, RangeError, /maxVram .* got NaN/],
    ["x", { maxVram: 1.5 }, RangeError, /maxVram .* got 1.5/],
    ["x", { maxVram: "1" }, TypeError, /maxVram must be a number, got "1"/],
    ["x", { maxVram: MB, qos: "PLATINUM" }, RangeError, /qos must be one of .* got "PLATINUM"/],
    [
      "x",
      { maxVram: MB, baseVram: 2 * MB },
      RangeError,
      /baseVram \(2097152\) must not exceed maxVram/,
    ],
    ["x", { maxVram: MB, baseVram: -1 }, RangeError, /baseVram must be a non-negative integer/],
    [
      "x",
      { maxVram: MB, baseVram: 1, qos: QoSPolicy.GUARANTEED },
      RangeError,
      /baseVram is only for BURSTABLE/,
    ],
    [
      "x",
      { maxVram: MB, baseVram: 1, qos: QoSPolicy.BEST_EFFORT },
      RangeError,
      /baseVram is only for BURSTABLE/,
    ],
    [
      "x",
      { maxVram: MB, device: 3 },
      RangeError,
      /device must be a device index from 0 to \d+, got 3/,
    ],
    ["x", { maxVram: MB, device: -1 }, RangeError, /device must be a non-negative integer/],
    ["x", { maxVram: MB, partition: 5 }, TypeError, /partition must be a string, got 5/],
    ["x", { maxVram: MB, partition: "nope" }, RangeError, /unknown partition "nope"/],
  ];
  for (const [name, options, kind, message] of cases) {
    assert.throws(() => createContext(name as string, options as never), (e: Error) => {
      assert.ok(e instanceof kind, `${Deno.inspect(options)}: got ${e.name}: ${e.message}`);
      assert.match(e.message, /^Cannot create context /);
      assert.match(e.message, message);
      return true;
    });
  }
}, { hostMemory: 64 * MB });

backendTest("reservations that cannot be honoured are refused with AdmissionError", () => {
  createContext("big", { maxVram: 48 * MB, qos: QoSPolicy.GUARANTEED });
  assert.throws(
    () => createContext("too-big", { maxVram: 17 * MB, qos: QoSPolicy.GUARANTEED }),
    AdmissionError,
  );
  assert.throws(
    () => createContext("base-too-big", { maxVram: 32 * MB, baseVram: 17 * MB }),
    AdmissionError,
  );
  // Best effort reserves nothing, so it is always admitted.
  createContext("bg", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT });
  // Memory held by buffers that cannot be evicted is not reservable either.
  const bg = createContext("bg2", { maxVram: 16 * MB, qos: QoSPolicy.BEST_EFFORT });
  const pinned = bg.alloc(12 * MB);
  assert.throws(
    () => createContext("g", { maxVram: 8 * MB, qos: QoSPolicy.GUARANTEED }),
    AdmissionError,
  );
  pinned.free();
  bg.pool.trim();
  createContext("g", { maxVram: 8 * MB, qos: QoSPolicy.GUARANTEED });
}, { hostMemory: 64 * MB });

backendTest("sessions: sync scopes nest and restore, alloc outside any session throws", () => {
  const a = createContext("a", { maxVram: 8 * MB }), b = createContext("b", { maxVram: 8 * MB });
  assert.equal(currentContext(), undefined);
  assert.throws(() => alloc(1024), (e: unknown) => e instanceof NoActiveSessionError);
  {
    using _outer = contextSession(a);
    assert.equal(currentContext(), a);
    {
      using _inner = contextSession(b);
      assert.equal(currentContext(), b);
      const buf = alloc(4096);
      assert.equal(buf.context, b);
      buf.free();
    }
    assert.equal(currentContext(), a);
  }
  assert.equal(currentContext(), undefined);
  destroyContext(b);
  assert.throws(() => contextSession(b), /context "b" was destroyed/);
  assert.throws(() => contextSession({} as never), TypeError);
}, { hostMemory: 64 * MB });

backendTest(
  "the current context follows its task across awaits and never leaks into others",
  async () => {
    const contexts = Array.from(
      { length: 8 },
      (_, i) => createContext(`m${i}`, { maxVram: 8 * MB }),
    );
    const seen = await Promise.all(Array.from({ length: 400 }, (_, i) => {
      const ctx = contexts[i % contexts.length]!;
      return contextSession(ctx, async (inner) => {
        const observed: (ExecutionContext | undefined)[] = [];
        for (let step = 0; step < 4; step++) {
          await new Promise((r) => setTimeout(r, (i * 7 + step) % 3));
          observed.push(currentContext());
          const nested = contexts[(i + 1) % contexts.length]!;
          await contextSession(nested, async () => {
            await Promise.resolve();
            observed.push(currentContext() === nested ? inner : undefined);
          });
          observed.push(currentContext());
        }
        const buf = alloc(1024);
        observed.push(buf.context);
        buf.free();
        return observed.every((c) => c === inner);
      });
    }));
    assert.ok(seen.every(Boolean), "every task saw only its own context");
    assert.equal(currentContext(), undefined);
  },
  { hostMemory: 64 * MB },
);

backendTest("a sync session held across an await is reported when it closes", async () => {
  const a = createContext("a", { maxVram: 8 * MB });
  const session = contextSession(a);
  await Promise.resolve();
  assert.throws(() => session[Symbol.dispose](), /held across an await/);
  assert.equal(currentContext(), undefined, "closed anyway");
}, { hostMemory: 64 * MB });

backendTest(
  "no context ever holds more than maxVram: its own evictable buffers make room first",
  async () => {
    const ctx = createContext("llm", { maxVram: 8 * MB });
    const a = ctx.alloc(4 * MB, { evictable: true });
    const data = randomBytes(4 * MB, 1);
    await a.write(data);
    const b = ctx.alloc(4 * MB);
    const c = ctx.alloc(4 * MB); // evicts a
    assert.equal(a.state, "evicted");
    assert.ok(getContextUsage(ctx).used <= 8 * MB);
    assert.throws(() => ctx.alloc(4 * MB), (e: unknown) => {
      assert.ok(e instanceof VramBudgetExceededError);
      assert.equal(e.contextName, "llm");
      assert.equal(e.requested, 4 * MB);
      return true;
    });
    assert.throws(
      () => ctx.alloc(9 * MB),
      VramBudgetExceededError,
      "larger than the budget itself",
    );
    c.free();
    const back = new Uint8Array(4 * MB);
    await a.read(back);
    assert.deepEqual(back, data, "restored bit-exact");
    const u = getContextUsage(ctx);
    assert.equal(u.max, 8 * MB);
    assert.ok(u.peak >= 8 * MB && u.peak <= 8 * MB);
    assert.equal(u.evicted, 0);
    b.free();
  },
  { hostMemory: 64 * MB },
);

backendTest(
  "guaranteed allocations inside the budget succeed while best effort filled the device",
  async () => {
    const bg = createContext("bg", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT });
    const llm = createContext("llm", { maxVram: 24 * MB, qos: QoSPolicy.GUARANTEED });
    // Best effort may only use what is not reserved: 40 MiB.
    const bgBuffers = [];
    for (let i = 0; i < 10; i++) bgBuffers.push(bg.alloc(4 * MB));
    assert.throws(
      () => bg.alloc(4 * MB),
      VramBudgetExceededError,
      "the reservation is not for best effort",
    );
    const mine = [];
    for (let i = 0; i < 6; i++) mine.push(llm.alloc(4 * MB));
    assert.equal(getContextUsage(llm).used, 24 * MB);
    assert.ok(bgBuffers.every((b) => b.state === "resident"), "nothing of bg needed to move");
    await Promise.resolve();
  },
  { hostMemory: 64 * MB },
);

backendTest(
  "burst memory above base is reclaimed by eviction when a reservation needs it",
  async () => {
    const tts = createContext("tts", { maxVram: 48 * MB, baseVram: 8 * MB });
    const burst = [];
    const datas = [];
    for (let i = 0; i < 10; i++) {
      const b = tts.alloc(4 * MB, { evictable: true });
      datas.push(
        await (async () => {
          const d = randomBytes(4 * MB, i + 10);
          await b.write(d);
          return d;
        })(),
      );
      burst.push(b);
    }
    // 40 MiB held; a 40 MiB guarantee needs 16 MiB of tts's burst back.
    const llm = createContext("llm", { maxVram: 40 * MB, qos: QoSPolicy.GUARANTEED });
    const evicted = burst.filter((b) => b.state === "evicted");
    assert.ok(evicted.length >= 4, `${evicted.length} buffers evicted`);
    assert.ok(getContextUsage(tts).used >= 8 * MB, "base stays");
    for (let i = 0; i < 10; i++) llm.alloc(4 * MB);
    // Evicted burst data comes back bit-exact once there is room again.
    destroyContext(llm);
    for (let i = 0; i < burst.length; i++) {
      const out = new Uint8Array(4 * MB);
      await burst[i]!.read(out);
      assert.deepEqual(out, datas[i]);
    }
  },
  { hostMemory: 64 * MB },
);

backendTest(
  "pressure handlers are asked first: false refuses, a throw refuses with cause, none makes room",
  () => {
    const bg = createContext("bg", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT });
    const llm = createContext("llm", { maxVram: 48 * MB });
    for (let i = 0; i < 8; i++) bg.alloc(4 * MB, { evictable: true });
    for (let i = 0; i < 8; i++) llm.alloc(4 * MB);
    const calls: [string, number, number][] = [];
    const off = onMemoryPressure((ctx, requested, available) => {
      calls.push([ctx.name, requested, available]);
      return false;
    });
    assert.throws(() => llm.alloc(4 * MB), VramBudgetExceededError);
    assert.deepEqual(calls, [["llm", 4 * MB, 0]]);
    assert.equal(bg.usage().evicted, 0, "refused at once: nothing evicted");
    off();
    const boom = new Error("handler failed");
    const off2 = onMemoryPressure(() => {
      throw boom;
    });
    assert.throws(
      () => llm.alloc(4 * MB),
      (e: unknown) => e instanceof VramBudgetExceededError && e.cause === boom,
    );
    off2();
    llm.alloc(4 * MB); // no handler: the scheduler evicts bg (lower class)
    assert.equal(bg.usage().evicted, 4 * MB);
    assert.throws(() => onMemoryPressure("no" as never), TypeError);
  },
  { hostMemory: 64 * MB },
);

backendTest(
  "events order one context's stream after another's; events die with their context",
  async (sched) => {
    const producer = createContext("producer", { maxVram: 8 * MB });
    const consumer = createContext("consumer", { maxVram: 8 * MB });
    const n = 4096;
    const buf = producer.alloc(n * 4);
    const g = gate(); // holds the producer until the test opens it: no timing assumption
    hold(sched.backend, getStream(producer).handle, g);
    assert.equal(
      kernels(sched.backend).gs_fill_u32(getStream(producer).handle, buf.ptr, 42, BigInt(n)),
      0,
    );
    const ready = recordEvent(producer);
    waitEvent(consumer, ready);
    const done = recordEvent(consumer);
    assert.equal(done.query(), false, "consumer waits on the device");
    g.open();
    await done.synchronize();
    assert.equal(ready.query(), true);
    destroyContext(producer);
    assert.throws(() => ready.query(), SchedulerError);
    assert.throws(() => waitEvent(consumer, ready), SchedulerError);
    assert.throws(() => recordEvent(producer), SchedulerError);
    assert.throws(() => waitEvent(consumer, {} as never), TypeError);
  },
  { hostMemory: 64 * MB },
);

backendTest("users' own kernels run on stream.handle over buf.ptr", async (sched) => {
  const ctx = createContext("mine", { maxVram: 8 * MB });
  const n = 100_000;
  await contextSession(ctx, async () => {
    using buf = alloc(n * 4);
    assert.equal(
      kernels(sched.backend).gs_fill_u32(getStream(ctx).handle, buf.ptr, 7, BigInt(n)),
      0,
    );
    const words = new Uint32Array(n);
    await buf.read(words);
    for (const i of [0, 1, 4242, n - 1]) assert.equal(words[i], 7 + i);
  });
}, { hostMemory: 64 * MB });

backendTest(
  "many tasks allocating, writing and reading at once never exceed any budget",
  async () => {
    const contexts = [
      createContext("g", { maxVram: 12 * MB, qos: QoSPolicy.GUARANTEED }),
      createContext("b", { maxVram: 16 * MB, baseVram: 4 * MB }),
      createContext("e1", { maxVram: 16 * MB, qos: QoSPolicy.BEST_EFFORT }),
      createContext("e2", { maxVram: 16 * MB, qos: QoSPolicy.BEST_EFFORT }),
    ];
    let violations = 0;
    const check = () => {
      for (const c of contexts) if (getContextUsage(c).used > c.maxVram) violations++;
    };
    let failures = 0;
    await Promise.all(
      Array.from({ length: 32 }, (_, task) =>
        contextSession(contexts[task % 4]!, async (ctx) => {
          for (let round = 0; round < 6; round++) {
            const size = (1 + ((task * 13 + round * 7) % 8)) * 256 * 1024;
            let buf;
            try {
              buf = alloc(size, { evictable: task % 2 === 0 });
            } catch (error) {
              if (!(error instanceof VramBudgetExceededError)) throw error;
              failures++;
              continue;
            }
            check();
            const data = randomBytes(size, task * 100 + round);
            const out = new Uint8Array(size);
            try {
              await buf.write(data);
              check();
              // An evictable buffer may be evicted by another task between the
              // two calls; restoring it needs room, which may not be there.
              await buf.read(out);
              assert.deepEqual(out, data, `task ${task} round ${round} in ${ctx.name}`);
            } catch (error) {
              if (!(error instanceof VramBudgetExceededError)) throw error;
              failures++;
            }
            buf.free();
            check();
          }
        })),
    );
    assert.equal(violations, 0);
    assert.ok(failures < 32 * 6, "most allocations succeeded");
  },
  { hostMemory: 48 * MB },
);

Deno.test("calls before initialize and after shutdown are clear errors", () => {
  assert.throws(() => createContext("x", { maxVram: MB }), /Scheduler is not initialized/);
  assert.throws(() => getAvailableVram(), /Scheduler is not initialized/);
  // alloc() outside a session before initialize: still NoActiveSessionError, saying why.
  assert.throws(
    () => alloc(1024),
    (e: unknown) => e instanceof NoActiveSessionError && /not initialized/.test(e.message),
  );
  initialize({ backend: "host", hostMemory: 64 * MB });
  const ctx = createContext("x", { maxVram: MB });
  const buf = ctx.alloc(1024);
  shutdown();
  assert.equal(ctx.alive, false);
  assert.throws(() => ctx.alloc(10), SchedulerError);
  assert.throws(() => buf.ptr, SchedulerError);
  assert.throws(() => getContextUsage(ctx), /not initialized/);
  assert.throws(() => contextSession(ctx), /was destroyed/);
  assert.throws(() => alloc(10), /not initialized/);
  destroyContext(ctx);
});

backendTest("a context bound to a partition gets its streams from that partition", (sched) => {
  const manager = new PartitionManager(new PartitionConfig({ totalMemory: 64 * MB }));
  manager.createPartition(
    "inference",
    "Inference",
    new PartitionLimits().memory(32 * MB).compute(0.5),
  );
  const llm = createContext("llm", {
    maxVram: 8 * MB,
    qos: QoSPolicy.GUARANTEED,
    partition: "inference",
  });
  const other = createContext("other", { maxVram: 8 * MB });
  assert.equal(llm.partition, "inference");
  assert.equal(getStream(llm).partition, "inference");
  assert.equal(getStream(other).partition, undefined);
  // 0.5 of 132 SMs (both backends report an H100/H200-sized device here), in groups of 8.
  assert.equal(manager.getPartition("inference")!.smCount, 64);
  void sched;
  assert.throws(
    () => createContext("x", { maxVram: MB, partition: "training" }),
    /Cannot create context "x": unknown partition "training"/,
  );
}, { hostMemory: 64 * MB });
