/**
 * Sessions: which context `alloc()` charges, carried across `await`.
 *
 * Async sessions (`await contextSession(ctx, fn)`) use AsyncLocalStorage,
 * so the context follows its task through every await and never leaks into
 * concurrent tasks. Sync sessions (`using s = contextSession(ctx)`) are for
 * synchronous code: a module-level stack, ten times cheaper than
 * AsyncLocalStorage.enterWith, valid until the scope ends. Holding a sync
 * session across an `await` would expose it to whatever runs meanwhile, so
 * it is detected: the first microtask checkpoint that finds a sync session
 * open marks it, and closing it then throws.
 *
 * @module
 */

import { AsyncLocalStorage } from "node:async_hooks";
import { NoActiveSessionError, SchedulerError } from "../errors.ts";
import { ExecutionContext } from "./execution_context.ts";
import { show } from "../validate.ts";
import { getScheduler } from "../scheduler.ts";

function initialized(): boolean {
  try {
    getScheduler();
    return true;
  } catch {
    return false;
  }
}

/**
 * One per async session call, so that tasks in sessions of the same context
 * are still told apart: a sync scope applies only to the task (the frame)
 * that opened it.
 */
interface Frame {
  readonly context: ExecutionContext;
}

const asyncCurrent = new AsyncLocalStorage<Frame>();
const syncStack: SyncSession[] = [];
let checkQueued = false;

function checkSyncSessionsAtCheckpoint(): void {
  checkQueued = false;
  for (const session of syncStack) session.crossedAwait = true;
}

/** A synchronous session scope; close it with `using` or `[Symbol.dispose]()`. */
export interface ContextScope extends Disposable {
  /** The context this session made current. */
  readonly context: ExecutionContext;
}

class SyncSession implements ContextScope {
  crossedAwait = false;
  #open = true;
  /** The async session it was opened in (undefined outside any): only that task sees it. */
  readonly frame: Frame | undefined = asyncCurrent.getStore();
  constructor(readonly context: ExecutionContext) {}

  /** False once closed. */
  get open(): boolean {
    return this.#open;
  }

  /** Closed without a check: its context's scheduler shut down. */
  drop(): void {
    this.#open = false;
  }

  [Symbol.dispose](): void {
    if (!this.#open) return;
    this.#open = false;
    if (syncStack[syncStack.length - 1] === this) {
      syncStack.pop();
    } else {
      // Out-of-order closes (possible only by hand, not with `using`) still remove this scope.
      const index = syncStack.lastIndexOf(this);
      if (index >= 0) syncStack.splice(index, 1);
    }
    if (this.crossedAwait) {
      throw new SchedulerError(
        `Context session of "${this.context.name}" was held across an await: ` +
          `use \`await contextSession(ctx, async (ctx) => ...)\` for async code`,
      );
    }
  }
}

/**
 * Makes `ctx` current: for a synchronous scope (`using s = contextSession(ctx)`),
 * or, with `fn`, for an async one whose result it returns
 * (`await contextSession(ctx, async (ctx) => ...)`). Sessions nest: the inner
 * wins, the outer is restored.
 *
 * @example
 * ```ts
 * import { contextSession, createContext, currentContext, initialize, MB, shutdown } from "@gpusched/core";
 * import assert from "node:assert/strict";
 * initialize({ backend: "host" });
 * const llm = createContext("llm", { maxVram: 64 * MB });
 * {
 *   using _s = contextSession(llm);
 *   assert.equal(currentContext(), llm);
 * }
 * const name = await contextSession(llm, async (ctx) => {
 *   await new Promise((r) => setTimeout(r, 1));
 *   return currentContext()?.name ?? ctx.name;
 * });
 * assert.equal(name, "llm");
 * shutdown();
 * ```
 * @throws {TypeError} when ctx is not a context, or fn not a function
 * @throws {SchedulerError} when ctx was destroyed
 */
export function contextSession(ctx: ExecutionContext): ContextScope;
/** Runs `fn` with `ctx` current across every await; resolves to its result. */
export function contextSession<T>(
  ctx: ExecutionContext,
  fn: (ctx: ExecutionContext) => T | Promise<T>,
): Promise<T>;
export function contextSession<T>(
  ctx: ExecutionContext,
  fn?: (ctx: ExecutionContext) => T | Promise<T>,
): ContextScope | Promise<T> {
  requireLiveContext(ctx, "Cannot open a context session");
  if (fn === undefined) {
    const session = new SyncSession(ctx);
    syncStack.push(session);
    if (!checkQueued) {
      checkQueued = true;
      queueMicrotask(checkSyncSessionsAtCheckpoint);
    }
    return session;
  }
  if (typeof fn !== "function") {
    return Promise.reject(
      new TypeError(`Cannot open a context session: fn must be a function, got ${show(fn)}`),
    );
  }
  // A sync session open around this call must not shadow the async one inside it.
  const outer = syncStack.splice(0);
  try {
    // Resolved inside the frame: a thenable's then() (a lazy query, a task) runs in the session too.
    return asyncCurrent.run({ context: ctx }, () => Promise.resolve(fn(ctx)));
  } catch (error) {
    return Promise.reject(error);
  } finally {
    // fn may have closed some of them (by hand): only those still open come back.
    for (const session of outer) if (session.open) syncStack.push(session);
  }
}

/**
 * @internal The scheduler of ctx shut down: sync sessions still open on it
 * are closed, so no later `alloc()` (after a new `initialize()`) is charged
 * to a context of the old scheduler.
 */
export function dropSessionsOf(ctx: ExecutionContext): void {
  for (let i = syncStack.length - 1; i >= 0; i--) {
    const session = syncStack[i]!;
    if (session.context === ctx) {
      session.drop();
      syncStack.splice(i, 1);
    }
  }
}

/**
 * The context of the innermost open session, or undefined outside any.
 *
 * @example
 * ```ts
 * import { contextSession, createContext, currentContext, initialize, MB, shutdown } from "@gpusched/core";
 * import assert from "node:assert/strict";
 * initialize({ backend: "host" });
 * const llm = createContext("llm", { maxVram: 64 * MB });
 * assert.equal(currentContext(), undefined); // outside any session
 * await contextSession(llm, () => assert.equal(currentContext(), llm));
 * shutdown();
 * ```
 * @throws {SchedulerError} before `initialize()` (like every function but
 * `initialize`), since no context can exist then
 */
export function currentContext(): ExecutionContext | undefined {
  getScheduler(); // throws a clear SchedulerError when not initialized
  return activeContext();
}

/** The innermost open session's context, without the initialized check. */
function activeContext(): ExecutionContext | undefined {
  const frame = asyncCurrent.getStore();
  // A sync scope wrongly held across an await stays on the stack until it is
  // closed; another task running meanwhile must not see it, only its opener.
  for (let i = syncStack.length - 1; i >= 0; i--) {
    const session = syncStack[i]!;
    if (session.frame === frame) return session.context;
  }
  return frame?.context;
}

/** The current context, or NoActiveSessionError naming what needed one. */
export function requireCurrentContext(doing: string): ExecutionContext {
  const ctx = activeContext();
  if (!ctx) {
    throw new NoActiveSessionError(
      initialized()
        ? `${doing}: no active context session, open one with contextSession(ctx)`
        : `${doing}: the scheduler is not initialized (call initialize() first), so no context session is active`,
    );
  }
  return ctx;
}

function requireLiveContext(ctx: unknown, doing: string): void {
  if (!ExecutionContext.isReal(ctx)) {
    throw new TypeError(`${doing}: expected an ExecutionContext, got ${show(ctx)}`);
  }
  ctx.assertAlive(doing);
}
