/**
 * Metrics counters and getAvailableVram() against a model, over random
 * sequences (fast-check, shrunk to a minimal one on failure): contexts of
 * the three classes, evictable and plain buffers, frees, reads, restores,
 * sleeps and wakes, and a pressure handler that says yes or no. Checked
 * after every step, from API.md "Metrics" and "Device memory" only:
 *   - `allocations`: successful allocations, from cache or not;
 *   - `allocationFailures`: each VramBudgetExceededError of an allocation;
 *   - `evictions` / `restores`: buffers moved out and back (each buffer's
 *     `state` going resident -> evicted, evicted -> resident);
 *   - `pressureEvents`: handler calls made for that context's allocations;
 *   - `getAvailableVram()` bytes are really there: a GUARANTEED reservation
 *     of exactly that size is admitted, and a best-effort allocation of it
 *     succeeds;
 *   - every buffer reads back what was written, bit-exact.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  AdmissionError,
  createContext,
  destroyContext,
  type DeviceBuffer,
  type ExecutionContext,
  getAvailableVram,
  getMetrics,
  MB,
  onMemoryPressure,
  QoSPolicy,
  SchedulerError,
  VramBudgetExceededError,
} from "../mod.ts";
import { probe } from "./_probe.ts";

const DEVICE = 48 * MB;

type Step =
  | { op: "create"; qos: 0 | 1 | 2; max: number; base: number }
  | { op: "alloc"; ctx: number; size: number; evictable: boolean }
  | { op: "free"; buf: number }
  | { op: "read"; buf: number }
  | { op: "sleep"; ctx: number }
  | { op: "wake"; ctx: number }
  | { op: "destroy"; ctx: number }
  | { op: "handler"; answer: boolean | undefined };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    op: fc.constant("create" as const),
    qos: fc.constantFrom(0 as const, 1 as const, 2 as const),
    max: fc.integer({ min: 1, max: 24 }),
    base: fc.integer({ min: 0, max: 8 }),
  }),
  fc.record({
    op: fc.constant("alloc" as const),
    ctx: fc.nat(7),
    size: fc.oneof(fc.integer({ min: 1, max: 12 * MB }), fc.constantFrom(MB, 2 * MB, 4096)),
    evictable: fc.boolean(),
  }),
  fc.record({ op: fc.constant("free" as const), buf: fc.nat(31) }),
  fc.record({ op: fc.constant("read" as const), buf: fc.nat(31) }),
  fc.record({ op: fc.constant("sleep" as const), ctx: fc.nat(7) }),
  fc.record({ op: fc.constant("wake" as const), ctx: fc.nat(7) }),
  fc.record({ op: fc.constant("destroy" as const), ctx: fc.nat(7) }),
  fc.record({
    op: fc.constant("handler" as const),
    answer: fc.constantFrom(true, false, undefined),
  }),
);

interface Counters {
  allocations: number;
  allocationFailures: number;
  evictions: number;
  restores: number;
  pressureEvents: number;
}

interface Tracked {
  buf: DeviceBuffer;
  fill: number;
  state: "resident" | "evicted";
}

async function walk(steps: Step[]): Promise<void> {
  const contexts: ExecutionContext[] = [];
  const model = new Map<ExecutionContext, Counters>();
  const buffers: Tracked[] = [];
  let answer: boolean | undefined = undefined;
  let off: (() => void) | undefined;
  let made = 0;
  const live = () => contexts.filter((c) => c.alive);
  const at = <T>(xs: T[], i: number): T | undefined => xs.length ? xs[i % xs.length] : undefined;

  /** Diffs each buffer's state against the last one seen: evictions and restores. */
  const observeStates = () => {
    for (const t of buffers) {
      if (!t.buf.context.alive) continue;
      const now = t.buf.state;
      if (now === t.state) continue;
      const c = model.get(t.buf.context)!;
      if (now === "evicted") c.evictions++;
      else c.restores++;
      t.state = now;
    }
  };

  const check = (i: number, what: string) => {
    const m = getMetrics();
    assert.deepEqual(JSON.parse(JSON.stringify(m)), m, "JSON-serialisable");
    assert.deepEqual(
      m.contexts.map((c) => c.name).sort(),
      live().map((c) => c.name).sort(),
      "only live contexts appear",
    );
    for (const c of live()) {
      const got = m.contexts.find((x) => x.name === c.name)!;
      assert.deepEqual(got.counters, model.get(c), `step ${i} (${what}): counters of ${c.name}`);
      assert.ok(got.used <= got.max, `${c.name} used ${got.used} > max ${got.max}`);
    }
    const available = getAvailableVram();
    assert.ok(available >= 0);
    if (available > 0) {
      // The bytes getAvailableVram() reports are really there, for both kinds of asker.
      off?.(); // the probe below must not consult the walk's handler nor count against it
      const probeCtx = createContext(`probe-g-${i}`, {
        maxVram: available,
        qos: QoSPolicy.GUARANTEED,
      });
      destroyContext(probeCtx);
      const be = createContext(`probe-be-${i}`, { maxVram: available, qos: QoSPolicy.BEST_EFFORT });
      try {
        be.alloc(available).free();
      } finally {
        destroyContext(be);
      }
      off = registerHandler();
      observeStates(); // reclaiming for the probes may have evicted buffers: that is theirs too
    }
  };

  const registerHandler = () =>
    onMemoryPressure((ctx) => {
      const c = model.get(ctx);
      if (c) c.pressureEvents++;
      return answer ?? true;
    });

  const expected = (e: unknown) =>
    e instanceof VramBudgetExceededError || e instanceof AdmissionError ||
    e instanceof SchedulerError;

  for (const [i, s] of steps.entries()) {
    try {
      switch (s.op) {
        case "create": {
          if (live().length >= 6) break;
          const qos = [QoSPolicy.GUARANTEED, QoSPolicy.BURSTABLE, QoSPolicy.BEST_EFFORT][s.qos]!;
          const options = qos === QoSPolicy.BURSTABLE
            ? { maxVram: s.max * MB, baseVram: Math.min(s.base, s.max) * MB, qos }
            : { maxVram: s.max * MB, qos };
          const ctx = createContext(`c${made++}`, options);
          contexts.push(ctx);
          model.set(ctx, {
            allocations: 0,
            allocationFailures: 0,
            evictions: 0,
            restores: 0,
            pressureEvents: 0,
          });
          break;
        }
        case "alloc": {
          const ctx = at(live().filter((c) => !c.sleeping), s.ctx);
          if (!ctx) break;
          try {
            const buf = ctx.alloc(s.size, { evictable: s.evictable });
            model.get(ctx)!.allocations++;
            const fill = (i % 250) + 1;
            buffers.push({ buf, fill, state: buf.state });
            await buf.write(new Uint8Array(Math.min(s.size, 4096)).fill(fill));
          } catch (e) {
            if (e instanceof VramBudgetExceededError) model.get(ctx)!.allocationFailures++;
            throw e;
          }
          break;
        }
        case "free": {
          const t = at(buffers, s.buf);
          if (!t) break;
          t.buf.free();
          buffers.splice(buffers.indexOf(t), 1);
          break;
        }
        case "read": {
          const t = at(buffers.filter((b) => !b.buf.context.sleeping), s.buf);
          if (!t) break;
          const back = new Uint8Array(Math.min(t.buf.size, 4096));
          await t.buf.read(back);
          assert.ok(back.every((v) => v === t.fill), `buffer ${t.buf.id} reads back ${t.fill}`);
          break;
        }
        case "sleep": {
          const ctx = at(live().filter((c) => !c.sleeping), s.ctx);
          if (ctx) await ctx.sleep();
          break;
        }
        case "wake": {
          const ctx = at(live().filter((c) => c.sleeping), s.ctx);
          if (ctx) await ctx.wake();
          break;
        }
        case "destroy": {
          const ctx = at(live(), s.ctx);
          if (!ctx) break;
          destroyContext(ctx);
          for (let k = buffers.length - 1; k >= 0; k--) {
            if (buffers[k]!.buf.context === ctx) buffers.splice(k, 1);
          }
          break;
        }
        case "handler":
          answer = s.answer;
          if (!off) off = registerHandler();
          break;
      }
    } catch (e) {
      if (!expected(e)) throw e;
    }
    observeStates();
    check(i, s.op);
  }
  off?.();
  // Everything still held reads back bit-exact.
  for (const ctx of live()) if (ctx.sleeping) await ctx.wake().catch(() => {});
  for (const t of buffers) {
    if (t.buf.context.sleeping) continue;
    const back = new Uint8Array(Math.min(t.buf.size, 4096));
    try {
      await t.buf.read(back);
    } catch (e) {
      if (e instanceof VramBudgetExceededError) continue; // no room to restore it now
      throw e;
    }
    assert.ok(
      back.every((v) => v === t.fill),
      `buffer ${t.buf.id} reads back ${t.fill} at the end`,
    );
  }
  for (const ctx of live()) destroyContext(ctx);
}

probe("counters and getAvailableVram() agree with a model over random walks", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(step, { maxLength: 40 }), async (steps) => {
      await walk(steps);
    }),
    { numRuns: 60, seed: 42, endOnFailure: true },
  );
}, { hostMemory: DEVICE, memoryLimit: DEVICE });
