/**
 * The bad-input catalogue: every public function tried with wrong types,
 * NaN, Infinity, negative, fractional and enormous numbers, empty and very
 * long names, objects of another (shut-down) scheduler, and calls after
 * shutdown, asserting the exact error class of each. Nothing it does may
 * change state: the scheduler is checked to be intact afterwards.
 */
import assert from "node:assert/strict";
import {
  alloc,
  contextSession,
  createContext,
  destroyContext,
  GB,
  getAvailableVram,
  getContextUsage,
  getStream,
  initialize,
  MB,
  MemoryPool,
  onMemoryPressure,
  PartitionConfig,
  PartitionLimits,
  PartitionManager,
  QosPolicyEvaluator,
  QosTaskMeta,
  recordEvent,
  SchedulerError,
  shutdown,
  waitEvent,
} from "../mod.ts";

type ErrorClass = typeof TypeError | typeof RangeError | typeof SchedulerError;

/** Values that are not byte counts, with the error class a byte option must raise for each. */
const BAD_BYTES: [unknown, ErrorClass][] = [
  ["1", TypeError],
  [1n, TypeError],
  [null, TypeError],
  [{}, TypeError],
  [true, TypeError],
  [NaN, RangeError],
  [Infinity, RangeError],
  [-Infinity, RangeError],
  [-1, RangeError],
  [0.5, RangeError],
  [2 ** 53, RangeError],
  [Number.MAX_VALUE, RangeError],
];

function expectError(what: string, fn: () => unknown, kind: ErrorClass): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof kind, `${what}: expected ${kind.name}, got ${Deno.inspect(e)}`);
    assert.ok((e as Error).message.length > 0, `${what}: the message says what was wrong`);
    return true;
  }, what);
}

Deno.test("every public function refuses bad numbers with the exact error class", () => {
  const sched = initialize({ backend: "host", hostMemory: 64 * MB });
  try {
    const ctx = createContext("ctx", { maxVram: 8 * MB });
    const pool = new MemoryPool({ quota: 8 * MB });
    const evaluator = new QosPolicyEvaluator({ totalMemory: 8 * GB });
    for (const [bad, kind] of BAD_BYTES) {
      const label = Deno.inspect(bad);
      expectError(
        `initialize hostMemory ${label}`,
        () => initialize({ backend: "host", hostMemory: bad as number }),
        kind,
      );
      expectError(
        `createContext maxVram ${label}`,
        () => createContext(`x${label}`, { maxVram: bad as number }),
        kind,
      );
      expectError(`ctx.alloc ${label}`, () => ctx.alloc(bad as number), kind);
      expectError(`pool.allocate ${label}`, () => pool.allocate(bad as number), kind);
      expectError(
        `MemoryPool quota ${label}`,
        () => new MemoryPool({ quota: bad as number }),
        kind,
      );
      expectError(
        `QosTaskMeta memory ${label}`,
        () => QosTaskMeta.guaranteed("t", "t", bad as number),
        kind,
      );
      expectError(
        `QosPolicyEvaluator totalMemory ${label}`,
        () => new QosPolicyEvaluator({ totalMemory: bad as number }),
        kind,
      );
      expectError(
        `PartitionLimits memory ${label}`,
        () => new PartitionLimits().memory(bad as number),
        kind,
      );
      expectError(
        `PartitionConfig totalMemory ${label}`,
        () => new PartitionConfig({ totalMemory: bad as number }),
        kind,
      );
      expectError(`pool.evict ${label}`, () => pool.evict(bad as number), kind);
      {
        using _s = contextSession(ctx);
        expectError(`alloc ${label}`, () => alloc(bad as number), kind);
      }
    }
    for (const share of [0, -0.5, 1.5, NaN, Infinity]) {
      expectError(`compute(${share})`, () => new PartitionLimits().compute(share), RangeError);
    }
    expectError("compute('0.5')", () => new PartitionLimits().compute("0.5" as never), TypeError);
    expectError(
      "createStream priority 0.5",
      () => sched.createStream({ priority: 0.5 }),
      RangeError,
    );
    expectError(
      "createStream priority NaN",
      () => sched.createStream({ priority: NaN }),
      RangeError,
    );
    // Nothing above changed anything.
    assert.equal(getContextUsage(ctx).used, 0);
    assert.equal(pool.stats().activeBlocks, 0);
    assert.equal(evaluator.reservedMemory, 0);
  } finally {
    shutdown();
  }
});

Deno.test("names: empty, very long and wrong-typed names are refused or kept exactly", () => {
  initialize({ backend: "host", hostMemory: 64 * MB });
  try {
    expectError("empty context name", () => createContext("", { maxVram: MB }), RangeError);
    expectError("number as name", () => createContext(7 as never, { maxVram: MB }), TypeError);
    expectError(
      "symbol as name",
      () => createContext(Symbol("x") as never, { maxVram: MB }),
      TypeError,
    );
    const long = "m".repeat(100_000);
    const ctx = createContext(long, { maxVram: MB });
    assert.equal(ctx.name, long, "a long name is just a name");
    expectError("the same long name twice", () => createContext(long, { maxVram: MB }), RangeError);
    expectError("empty task id", () => QosTaskMeta.guaranteed("", "n", MB), RangeError);
    const manager = new PartitionManager(new PartitionConfig({ totalMemory: 32 * MB }));
    expectError(
      "empty partition id",
      () => manager.createPartition("", "n", new PartitionLimits()),
      RangeError,
    );
    expectError(
      "partition limits of the wrong type",
      () => manager.createPartition("p", "n", {} as never),
      TypeError,
    );
    expectError("memory pool name ''", () => new MemoryPool({ quota: MB, name: "" }), RangeError);
    expectError(
      "memory pool name 7",
      () => new MemoryPool({ quota: MB, name: 7 as never }),
      TypeError,
    );
  } finally {
    shutdown();
  }
});

for (const hostDevices of [1, 2]) {
  Deno.test(
    `${
      hostDevices === 1 ? "" : "[host, 2 devices] "
    }objects of a shut-down scheduler are refused by the next one, which stays intact`,
    () => staleObjectsAreRefused(hostDevices),
  );
}

async function staleObjectsAreRefused(hostDevices: number): Promise<void> {
  const first = initialize({ backend: "host", hostDevices, hostMemory: 64 * MB });
  const last = hostDevices - 1; // on two devices, the old objects live on the second
  const oldCtx = createContext("model", { maxVram: 8 * MB, device: last });
  const oldStream = first.createStream({ device: last });
  const oldEvent = first.createEvent({ device: last });
  const oldPool = new MemoryPool({ quota: MB, device: last });
  const oldBlock = oldPool.allocate(64);
  const oldBuf = oldCtx.alloc(64);
  shutdown();

  initialize({ backend: "host", hostDevices, hostMemory: 64 * MB });
  try {
    const ctx = createContext("model", { maxVram: 8 * MB, device: last }); // the old name is free again
    const buf = ctx.alloc(1024);
    const data = new Uint8Array(1024).fill(9);
    await buf.write(data);
    const stale: [string, () => unknown, ErrorClass][] = [
      ["old context alloc", () => oldCtx.alloc(64), SchedulerError],
      ["old context session", () => contextSession(oldCtx), SchedulerError],
      ["old context usage", () => getContextUsage(oldCtx), SchedulerError],
      ["old context stream", () => getStream(oldCtx), SchedulerError],
      ["old context event", () => recordEvent(oldCtx), SchedulerError],
      ["old stream query", () => oldStream.query(), SchedulerError],
      ["old event query", () => oldEvent.query(), SchedulerError],
      ["old event as a wait", () => waitEvent(ctx, oldEvent), SchedulerError],
      ["old pool allocate", () => oldPool.allocate(64), SchedulerError],
      ["old block ptr", () => oldBlock.ptr, SchedulerError],
      ["old buffer ptr", () => oldBuf.ptr, SchedulerError],
      [
        "old block freed by the new pool",
        () => new MemoryPool({ quota: MB }).free(oldBlock),
        RangeError,
      ],
      ["a stranger as a context", () => getStream({} as never), TypeError],
      ["a stranger as a handler", () => onMemoryPressure(42 as never), TypeError],
      ["a stranger destroyed", () => destroyContext({} as never), TypeError],
    ];
    for (const [what, fn, kind] of stale) expectError(what, fn, kind);
    destroyContext(oldCtx); // idempotent on a dead context
    const back = new Uint8Array(1024);
    await buf.read(back);
    assert.deepEqual(back, data, "the live scheduler's data is intact");
  } finally {
    shutdown();
  }
}

Deno.test("every module-level function after shutdown throws SchedulerError", () => {
  initialize({ backend: "host", hostMemory: 64 * MB });
  const ctx = createContext("gone", { maxVram: MB });
  shutdown();
  const calls: [string, () => unknown][] = [
    ["createContext", () => createContext("x", { maxVram: MB })],
    ["getAvailableVram", () => getAvailableVram()],
    ["getContextUsage", () => getContextUsage(ctx)],
    ["getStream", () => getStream(ctx)],
    ["recordEvent", () => recordEvent(ctx)],
    ["onMemoryPressure", () => onMemoryPressure(() => true)],
    ["new MemoryPool", () => new MemoryPool({ quota: MB })],
    ["new PartitionManager", () => new PartitionManager()],
    ["contextSession", () => contextSession(ctx)],
    ["ctx.alloc", () => ctx.alloc(64)],
  ];
  for (const [what, fn] of calls) expectError(`${what} after shutdown`, fn, SchedulerError);
});
