/**
 * Sessions (API.md "Sessions": "currentContext() === llm here, across every
 * await, and never leaks into concurrent tasks running other sessions"),
 * probed with what real async code does: sync scopes misused across an
 * await in one task, async generators, thenables, microtasks, errors thrown
 * at every point, thousands of tasks at once. Written from API.md and
 * README.md only.
 */
import assert from "node:assert/strict";
import {
  alloc,
  contextSession,
  createContext,
  currentContext,
  destroyContext,
  type ExecutionContext,
  getContextUsage,
  MB,
  NoActiveSessionError,
  SchedulerError,
} from "../mod.ts";
import { caught, probe } from "./_probe.ts";

/** A promise and the function that resolves it. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

probe(
  "a sync session held across an await in one task never leaks into a concurrent async session",
  async () => {
    const a = createContext("a", { maxVram: 8 * MB });
    const b = createContext("b", { maxVram: 8 * MB });
    const c = createContext("c", { maxVram: 8 * MB });
    const opened = gate(), checked = gate();
    const misuse = contextSession(a, async () => {
      const scope = contextSession(b); // a sync scope, wrongly held across the await below
      opened.open();
      await checked.wait;
      assert.throws(() => scope[Symbol.dispose](), SchedulerError, "the misuse is reported");
    });
    const other = contextSession(c, async () => {
      await opened.wait;
      const seen = currentContext();
      using buf = alloc(1 * MB);
      const chargedTo = buf.context;
      const usedB = getContextUsage(b).used;
      checked.open();
      return { seen, chargedTo, usedB };
    });
    const [, r] = await Promise.all([misuse, other]);
    assert.equal(r.seen, c, `currentContext() in c's session is ${r.seen?.name}`);
    assert.equal(r.chargedTo, c, `alloc() in c's session charged ${r.chargedTo.name}`);
    assert.equal(r.usedB, 0, "nothing charged to b");
    assert.equal(currentContext(), undefined);
  },
);

probe(
  "two async sessions of the same context: a sync scope held by one is not the other's",
  async () => {
    const a = createContext("a", { maxVram: 8 * MB });
    const b = createContext("b", { maxVram: 8 * MB });
    const opened = gate(), checked = gate();
    const misuse = contextSession(a, async () => {
      const scope = contextSession(b);
      opened.open();
      await checked.wait;
      assert.throws(() => scope[Symbol.dispose](), SchedulerError);
    });
    const other = contextSession(a, async () => {
      await opened.wait;
      const seen = currentContext();
      checked.open();
      return seen;
    });
    const [, seen] = await Promise.all([misuse, other]);
    assert.equal(seen, a, `currentContext() is ${seen?.name}`);
  },
);

probe("sync sessions disposed out of order: each closes only itself", () => {
  const a = createContext("a", { maxVram: 8 * MB });
  const b = createContext("b", { maxVram: 8 * MB });
  const c = createContext("c", { maxVram: 8 * MB });
  const sa = contextSession(a), sb = contextSession(b), sc = contextSession(c);
  sb[Symbol.dispose]();
  assert.equal(currentContext(), c, "inner still wins");
  sc[Symbol.dispose]();
  assert.equal(currentContext(), a, "b is gone, a is back");
  sb[Symbol.dispose](); // idempotent
  assert.equal(currentContext(), a);
  sa[Symbol.dispose]();
  assert.equal(currentContext(), undefined);
  assert.ok(caught(() => alloc(1 * MB)) instanceof NoActiveSessionError);
});

probe("after a rejected or throwing session, no context is current", async () => {
  const a = createContext("a", { maxVram: 8 * MB });
  const thrown = new Error("sync throw");
  await assert.rejects(
    contextSession(a, () => {
      throw thrown;
    }),
    (e) => e === thrown,
  );
  assert.equal(currentContext(), undefined);
  await assert.rejects(
    contextSession(a, async () => {
      await null;
      throw new RangeError("late");
    }),
    RangeError,
  );
  assert.equal(currentContext(), undefined);
  await assert.rejects(contextSession(a, () => Promise.reject(new Error("rejected"))));
  assert.equal(currentContext(), undefined);
  // Inside an outer session, the outer comes back after an inner one rejects.
  const b = createContext("b", { maxVram: 8 * MB });
  await contextSession(b, async () => {
    await contextSession(a, async () => {
      await null;
      throw new Error("inner");
    }).catch(() => {});
    assert.equal(currentContext(), b);
    using buf = alloc(4096);
    assert.equal(buf.context, b);
  });
});

probe("async generators iterated inside a session see its context at every yield", async () => {
  const a = createContext("a", { maxVram: 8 * MB });
  const b = createContext("b", { maxVram: 8 * MB });
  async function* names(): AsyncGenerator<string> {
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, i % 2));
      yield currentContext()!.name;
    }
  }
  const run = (ctx: ExecutionContext) =>
    contextSession(ctx, async () => {
      const seen: string[] = [];
      for await (const n of names()) seen.push(n);
      return seen;
    });
  const [sa, sb] = await Promise.all([run(a), run(b)]);
  assert.deepEqual(sa, Array(5).fill("a"));
  assert.deepEqual(sb, Array(5).fill("b"));
});

probe("5000 concurrent sessions with timers, microtasks, nesting and errors", async () => {
  const contexts = Array.from(
    { length: 8 },
    (_, i) => createContext(`c${i}`, { maxVram: 64 * MB }),
  );
  const tasks = Array.from({ length: 5000 }, (_, i) => {
    const ctx = contexts[i % contexts.length]!;
    return contextSession(ctx, async () => {
      for (let k = 0; k < 3; k++) {
        if ((i + k) % 3 === 0) await new Promise((r) => setTimeout(r, 0));
        else if ((i + k) % 3 === 1) await new Promise<void>((r) => queueMicrotask(r));
        else await null;
        assert.equal(currentContext(), ctx);
        {
          using inner = contextSession(contexts[(i + 1) % contexts.length]!);
          using buf = alloc(4096);
          assert.equal(buf.context, inner.context);
        }
        assert.equal(currentContext(), ctx);
      }
      if (i % 7 === 0) throw new Error(`task ${i}`);
      using buf = alloc(4096);
      return buf.context === ctx;
    });
  });
  const settled = await Promise.allSettled(tasks);
  settled.forEach((s, i) => {
    if (i % 7 === 0) assert.equal(s.status, "rejected", `task ${i}`);
    else assert.ok(s.status === "fulfilled" && s.value, `task ${i}: ${JSON.stringify(s)}`);
  });
  assert.equal(currentContext(), undefined);
  for (const c of contexts) assert.equal(getContextUsage(c).used, 0, c.name);
});

probe(
  "a session of a context destroyed mid-session refuses alloc, the outer survives",
  async () => {
    const a = createContext("a", { maxVram: 8 * MB });
    const b = createContext("b", { maxVram: 8 * MB });
    await contextSession(a, async () => {
      const inner = contextSession(b, async () => {
        await null;
        destroyContext(b);
        return caught(() => alloc(4096));
      });
      const error = await inner;
      assert.ok(error instanceof SchedulerError, `alloc in a destroyed context: ${error}`);
      assert.equal(currentContext(), a);
      using buf = alloc(4096);
      assert.equal(buf.context, a);
    });
    assert.ok(caught(() => contextSession(b)) instanceof SchedulerError);
  },
);

probe("a thenable returned by the session's fn runs its then() inside the session", async () => {
  const a = createContext("a", { maxVram: 8 * MB });
  // A lazy thenable (a query builder, a lazy task): its work starts in then().
  const lazy = {
    then(resolve: (v: string | undefined) => void) {
      using buf = alloc(4096); // charged to the session's context
      resolve(`${currentContext()?.name}:${buf.context.name}`);
    },
  };
  const seen = await contextSession(a, () => lazy as unknown as Promise<string>);
  assert.equal(seen, "a:a");
  assert.equal(currentContext(), undefined);
});
