/**
 * Shared bits of the probe_* tests: a host-backend test with a scheduler
 * initialized for it (and shut down after, also on failure), and checks of
 * the error shapes API.md promises. Written from API.md and README.md only.
 */
import assert from "node:assert/strict";
import {
  type ExecutionContext,
  initialize,
  type InitializeOptions,
  type Scheduler,
  shutdown,
  VramBudgetExceededError,
} from "../mod.ts";

/** Registers a host-backend test with its own scheduler. */
export function probe(
  name: string,
  fn: (sched: Scheduler) => void | Promise<void>,
  options: InitializeOptions = {},
  extra: { ignore?: boolean } = {},
): void {
  Deno.test({
    name: `[probe] ${name}`,
    ignore: extra.ignore ?? false,
    async fn() {
      const sched = initialize({ backend: "host", hostMemory: 256 * 1024 ** 2, ...options });
      try {
        await fn(sched);
      } finally {
        shutdown();
      }
    },
  });
}

/** Runs `fn`, expecting a throw; returns what it threw. */
export function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  assert.fail("expected a throw");
}

/** `fn()`'s result, or what it threw: for calls where either outcome is allowed. */
export function outcome(fn: () => unknown): unknown {
  try {
    return fn();
  } catch (error) {
    return error;
  }
}

/** Awaits `fn()`, expecting a rejection (or a throw); returns the reason. */
export async function rejected(fn: () => unknown): Promise<unknown> {
  try {
    await fn();
  } catch (error) {
    return error;
  }
  assert.fail("expected a rejection");
}

/** Asserts a budget refusal of `ctx` for `requested` bytes, with `available < requested`. */
export function assertBudgetRefusal(
  error: unknown,
  ctx: ExecutionContext,
  requested: number,
): VramBudgetExceededError {
  assert.ok(error instanceof VramBudgetExceededError, `expected a refusal, got ${error}`);
  assert.equal(error.context, ctx);
  assert.equal(error.requested, requested);
  assert.ok(
    error.available < error.requested,
    `available ${error.available} < requested ${error.requested}`,
  );
  assert.ok(error.available >= 0, `available ${error.available} >= 0`);
  return error;
}

/** Asserts a TypeError or RangeError whose message names `option`. */
export function assertArgError(error: unknown, option: string, what = ""): void {
  assert.ok(
    error instanceof TypeError || error instanceof RangeError,
    `${what}: expected TypeError/RangeError, got ${error}`,
  );
  assert.ok(
    (error as Error).message.includes(option),
    `${what}: message ${JSON.stringify((error as Error).message)} names ${option}`,
  );
}

/** Bad values of every type, with a label for messages. */
export const BAD_VALUES: readonly [string, unknown][] = [
  ["undefined", undefined],
  ["null", null],
  ["{}", {}],
  ["NaN", NaN],
  ["-1", -1],
  ["2**53", 2 ** 53],
  ["Infinity", Infinity],
  ["1.5", 1.5],
  ["'1'", "1"],
  ["symbol", Symbol("x")],
  ["function", () => 1],
  ["bigint", 1n],
  ["[]", []],
];

/** Runs `fn`; returns what it threw, or undefined when it returned. */
export function attempt(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}
