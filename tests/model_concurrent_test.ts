/**
 * The model-based test's concurrent variant: several async tasks share a
 * fixed set of contexts (one of each class) and interleave on the event
 * loop, each allocating, writing, reading, pinning and freeing its own
 * buffers and recording and awaiting events, so waits resolve out of order
 * and evictions triggered by one task hit another's buffers. After every
 * operation of any task the shared invariants are checked: no context over
 * maxVram, Σ claims ≤ memoryLimit, usage equal to the model's, and every
 * buffer reads back what its task last wrote.
 */
import assert from "node:assert/strict";
import {
  createContext,
  type DeviceBuffer,
  type ExecutionContext,
  getContextUsage,
  initialize,
  KB,
  MB,
  QoSPolicy,
  recordEvent,
  shutdown,
  VramBudgetExceededError,
  waitEvent,
} from "../mod.ts";
import { BACKENDS, readEnvInt, seededRandom as rng } from "./_helpers.ts";

const LIMIT = 16 * MB;
const TASKS = 8;

interface Owned {
  buf: DeviceBuffer;
  contents: Uint8Array | undefined;
  pin: Disposable | undefined;
}

const STEPS = readEnvInt("GPUSCHED_MODEL_STEPS", 400);
const SEEDS = readEnvInt("GPUSCHED_MODEL_SEEDS", 3);

async function run(backend: "host" | "cuda", seed: number, steps: number): Promise<void> {
  initialize({ backend, hostMemory: LIMIT, memoryLimit: LIMIT });
  try {
    const contexts: ExecutionContext[] = [
      createContext("g", { maxVram: 4 * MB, qos: QoSPolicy.GUARANTEED }),
      createContext("b", { maxVram: 8 * MB, baseVram: 2 * MB }),
      createContext("e", { maxVram: 12 * MB, qos: QoSPolicy.BEST_EFFORT }),
    ];
    const owned: Owned[][] = Array.from({ length: TASKS }, () => []);
    const check = (where: string) => {
      let claims = 0;
      for (const ctx of contexts) {
        const u = getContextUsage(ctx);
        assert.ok(u.used <= u.max, `${where}: ${ctx.name} holds ${u.used} > ${u.max}`);
        claims += Math.max(u.used + u.cached, u.reserved);
        const model = owned.flat().filter((o) =>
          o.buf.context === ctx && o.buf.state === "resident"
        )
          .reduce((sum, o) => sum + o.buf.classSize, 0);
        assert.equal(u.used, model, `${where}: usage of ${ctx.name}`);
      }
      assert.ok(claims <= LIMIT, `${where}: claims ${claims} > ${LIMIT}`);
    };
    const budgetError = (e: unknown) => {
      if (!(e instanceof VramBudgetExceededError)) throw e;
    };
    await Promise.all(Array.from({ length: TASKS }, async (_, task) => {
      const r = rng(seed * 1000 + task);
      const int = (n: number) => Math.floor(r() * n);
      const mine = owned[task]!;
      for (let step = 0; step < steps / TASKS; step++) {
        const where = `seed ${seed} task ${task} step ${step}`;
        const x = r();
        const pick = mine[int(Math.max(1, mine.length))];
        try {
          if (x < 0.3 || !pick) {
            const ctx = contexts[int(contexts.length)]!;
            mine.push({
              buf: ctx.alloc(1 + int(1024 * KB), { evictable: r() < 0.7 }),
              contents: undefined,
              pin: undefined,
            });
          } else if (x < 0.45) {
            if (!pick.pin) {
              pick.buf.free();
              mine.splice(mine.indexOf(pick), 1);
            }
          } else if (x < 0.65) {
            const data = new Uint8Array(pick.buf.size).map(() => int(256));
            await pick.buf.write(data);
            pick.contents = data;
          } else if (x < 0.85) {
            if (pick.contents) {
              const out = new Uint8Array(pick.buf.size);
              await pick.buf.read(out);
              assert.ok(out.every((v, i) => v === pick.contents![i]), `${where}: contents differ`);
            }
          } else if (x < 0.92) {
            if (pick.pin) {
              pick.pin[Symbol.dispose]();
              pick.pin = undefined;
            } else {
              pick.pin = pick.buf.pin();
            }
          } else {
            const from = contexts[int(contexts.length)]!, to = contexts[int(contexts.length)]!;
            const ev = recordEvent(from);
            waitEvent(to, ev);
            await ev.synchronize();
            ev.destroy();
          }
        } catch (e) {
          budgetError(e);
        }
        check(where);
      }
      for (const o of mine) o.pin?.[Symbol.dispose]();
    }));
    // The sizes are chosen so that tasks really push each other out.
    const evictions = contexts.reduce((n, ctx) => n + ctx.pool.stats().evictionCount, 0);
    assert.ok(evictions > 0, `seed ${seed}: no eviction happened, the test would prove little`);
  } finally {
    shutdown();
  }
}

for (const backend of BACKENDS) {
  Deno.test({
    name:
      `[${backend.name}] ${TASKS} concurrent tasks keep every promise (${SEEDS} seeds x ${STEPS} steps)${
        backend.skip ? ` (skipped: ${backend.skip})` : ""
      }`,
    ignore: backend.skip !== undefined,
    async fn() {
      for (let seed = 1; seed <= SEEDS; seed++) await run(backend.name, seed, STEPS);
    },
  });
}
