/**
 * Model-based randomized test: seeded random sequences of public API calls
 * (contexts of every class, sessions, alloc/free, evictable buffers, pins,
 * writes and reads with known contents, events, pressure handlers that
 * accept, refuse or throw), checked after every step against a plain
 * reference model of what must hold:
 *   - no context ever holds more than maxVram;
 *   - reservations hold: Σ max(held, reserved) ≤ memoryLimit;
 *   - every buffer reads back what was last written, through eviction too;
 *   - usage equals the model's bookkeeping; every error is a documented one.
 * A failure prints the seed and a shrunk list of steps that reproduces it.
 *
 * CI runs a bounded number of steps; `GPUSCHED_MODEL_STEPS` and
 * `GPUSCHED_MODEL_SEEDS` run longer (see `deno task test:model`).
 */
import assert from "node:assert/strict";
import {
  AdmissionError,
  contextSession,
  createContext,
  type DeviceBuffer,
  type ExecutionContext,
  getContextUsage,
  initialize,
  KB,
  MB,
  onMemoryPressure,
  QoSPolicy,
  recordEvent,
  shutdown,
  VramBudgetExceededError,
  waitEvent,
} from "../mod.ts";
import { contextManager } from "../src/api.ts";
import { BACKENDS, readEnvInt, seededRandom as rng } from "./_helpers.ts";

type Op =
  | { kind: "create"; qos: number; max: number; base: number }
  | { kind: "destroy"; pick: number }
  | { kind: "alloc"; pick: number; size: number; evictable: boolean; viaSession: boolean }
  | { kind: "free"; pick: number }
  | { kind: "write"; pick: number; seed: number }
  | { kind: "read"; pick: number }
  | { kind: "pin"; pick: number }
  | { kind: "unpin"; pick: number }
  | { kind: "event"; from: number; to: number }
  | { kind: "handler"; mode: number }
  | { kind: "unhandler" };

function generate(seed: number, steps: number): Op[] {
  const r = rng(seed);
  const int = (n: number) => Math.floor(r() * n);
  const ops: Op[] = [];
  for (let i = 0; i < steps; i++) {
    const x = r();
    if (x < 0.08) {
      const max = (1 + int(16)) * 256 * KB;
      ops.push({ kind: "create", qos: int(3), max, base: int(2) ? int(max / KB) * KB : 0 });
    } else if (x < 0.11) ops.push({ kind: "destroy", pick: int(1e6) });
    else if (x < 0.40) {
      ops.push({
        kind: "alloc",
        pick: int(1e6),
        size: 1 + int(512 * KB),
        evictable: r() < 0.6,
        viaSession: r() < 0.5,
      });
    } else if (x < 0.55) ops.push({ kind: "free", pick: int(1e6) });
    else if (x < 0.70) ops.push({ kind: "write", pick: int(1e6), seed: int(1e9) });
    else if (x < 0.84) ops.push({ kind: "read", pick: int(1e6) });
    else if (x < 0.88) ops.push({ kind: "pin", pick: int(1e6) });
    else if (x < 0.92) ops.push({ kind: "unpin", pick: int(1e6) });
    else if (x < 0.96) ops.push({ kind: "event", from: int(1e6), to: int(1e6) });
    else if (x < 0.98) ops.push({ kind: "handler", mode: int(3) });
    else ops.push({ kind: "unhandler" });
  }
  return ops;
}

interface ModelBuffer {
  buf: DeviceBuffer;
  ctx: ExecutionContext;
  contents: Uint8Array | undefined; // undefined until first written
  pins: Disposable[];
}

const QOS = [QoSPolicy.GUARANTEED, QoSPolicy.BURSTABLE, QoSPolicy.BEST_EFFORT] as const;
const LIMIT = 16 * MB;

function bytesFor(seed: number, n: number): Uint8Array {
  const r = rng(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() * 256) | 0;
  return out;
}

/** Runs ops; resolves, or rejects with the failing step's index in `step`. */
async function run(backend: "host" | "cuda", ops: Op[]): Promise<void> {
  initialize({ backend, hostMemory: LIMIT, memoryLimit: LIMIT });
  const contexts: ExecutionContext[] = [];
  const buffers: ModelBuffer[] = [];
  const offs: (() => void)[] = [];
  let step = 0;
  let named = 0;
  const pick = <T>(list: T[], n: number): T | undefined =>
    list.length ? list[n % list.length] : undefined;
  const fail = (error: unknown): never => {
    throw Object.assign(
      new Error(`step ${step} (${JSON.stringify(ops[step])}): ${error}`, { cause: error }),
      { step },
    );
  };
  const expectDocumented = (error: unknown, allowed: (new (...a: never[]) => Error)[]) => {
    if (!allowed.some((k) => error instanceof k)) fail(error);
  };
  try {
    for (step = 0; step < ops.length; step++) {
      const op = ops[step]!;
      try {
        switch (op.kind) {
          case "create": {
            const qos = QOS[op.qos]!;
            const base = qos === QoSPolicy.BURSTABLE ? Math.min(op.base, op.max) : undefined;
            try {
              contexts.push(
                createContext(`c${named++}`, {
                  maxVram: op.max,
                  qos,
                  ...(base !== undefined ? { baseVram: base } : {}),
                }),
              );
            } catch (e) {
              expectDocumented(e, [AdmissionError]);
              if (qos === QoSPolicy.BEST_EFFORT) {
                fail(new Error("best effort must always be admitted"));
              }
            }
            break;
          }
          case "destroy": {
            const ctx = pick(contexts, op.pick);
            if (!ctx) break;
            ctx.destroy();
            contexts.splice(contexts.indexOf(ctx), 1);
            for (let i = buffers.length - 1; i >= 0; i--) {
              if (buffers[i]!.ctx === ctx) {
                assert.equal(
                  buffers[i]!.buf.freed,
                  true,
                  "a destroyed context's buffers are freed",
                );
                buffers.splice(i, 1);
              }
            }
            break;
          }
          case "alloc": {
            const ctx = pick(contexts, op.pick);
            if (!ctx) break;
            try {
              const buf = op.viaSession
                ? await contextSession(ctx, () => ctx.alloc(op.size, { evictable: op.evictable }))
                : ctx.alloc(op.size, { evictable: op.evictable });
              assert.equal(buf.context, ctx);
              buffers.push({ buf, ctx, contents: undefined, pins: [] });
            } catch (e) {
              expectDocumented(e, [VramBudgetExceededError]);
            }
            break;
          }
          case "free": {
            const b = pick(buffers, op.pick);
            if (!b) break;
            if (b.pins.length > 0) {
              assert.throws(() => b.buf.free(), /pinned/);
              break;
            }
            b.buf.free();
            buffers.splice(buffers.indexOf(b), 1);
            break;
          }
          case "write": {
            const b = pick(buffers, op.pick);
            if (!b) break;
            const data = bytesFor(op.seed, b.buf.size);
            try {
              await b.buf.write(data);
              b.contents = data;
            } catch (e) {
              expectDocumented(e, [VramBudgetExceededError]); // restoring needed room that could not be made
            }
            break;
          }
          case "read": {
            const b = pick(buffers, op.pick);
            if (!b?.contents) break;
            const out = new Uint8Array(b.buf.size);
            try {
              await b.buf.read(out);
            } catch (e) {
              expectDocumented(e, [VramBudgetExceededError]);
              break;
            }
            if (!out.every((v, i) => v === b.contents![i])) {
              fail(
                new Error(
                  `buffer of ${b.ctx.name} read back different bytes (state ${b.buf.state})`,
                ),
              );
            }
            break;
          }
          case "pin": {
            const b = pick(buffers, op.pick);
            if (!b) break;
            try {
              b.pins.push(b.buf.pin());
              assert.equal(b.buf.state, "resident");
            } catch (e) {
              expectDocumented(e, [VramBudgetExceededError]);
            }
            break;
          }
          case "unpin": {
            const b = pick(buffers, op.pick);
            b?.pins.pop()?.[Symbol.dispose]();
            break;
          }
          case "event": {
            const from = pick(contexts, op.from), to = pick(contexts, op.to);
            if (!from || !to) break;
            const ev = recordEvent(from);
            waitEvent(to, ev);
            await ev.synchronize();
            assert.equal(ev.query(), true);
            break;
          }
          case "handler": {
            const mode = op.mode;
            offs.push(onMemoryPressure(() => {
              if (mode === 2) throw new Error("handler refuses by throwing");
              return mode === 0;
            }));
            break;
          }
          case "unhandler":
            offs.pop()?.();
            break;
        }
      } catch (e) {
        if ((e as { step?: number }).step !== undefined) throw e;
        fail(e);
      }
      // Invariants after every step.
      let claims = 0;
      for (const ctx of contexts) {
        const u = getContextUsage(ctx);
        if (u.used > u.max) fail(new Error(`${ctx.name} holds ${u.used} > max ${u.max}`));
        claims += Math.max(u.used + u.cached, u.reserved);
        const modelUsed = buffers
          .filter((b) => b.ctx === ctx && b.buf.state === "resident")
          .reduce((sum, b) => sum + b.buf.classSize, 0);
        if (modelUsed !== u.used) {
          fail(new Error(`${ctx.name}: usage ${u.used} != model ${modelUsed}`));
        }
      }
      if (claims > LIMIT) fail(new Error(`claims ${claims} exceed the limit ${LIMIT}`));
      if (contexts.length && contextManager().spare < 0) fail(new Error("negative spare"));
    }
    // Finally every written buffer, evicted or not, must read back.
    for (const b of buffers) {
      for (const pin of b.pins) pin[Symbol.dispose]();
      b.pins = [];
    }
    for (const b of buffers) {
      if (!b.contents) continue;
      // Free everything else of the context first so a restore always has room.
      const out = new Uint8Array(b.buf.size);
      try {
        await b.buf.read(out);
      } catch (e) {
        expectDocumented(e, [VramBudgetExceededError]);
        continue;
      }
      if (!out.every((v, i) => v === b.contents![i])) {
        fail(new Error(`final check: buffer of ${b.ctx.name} differs`));
      }
    }
  } finally {
    for (const off of offs) off();
    shutdown();
  }
}

/** Shortest prefix that still fails, then drop single steps while it keeps failing. */
async function shrink(backend: "host" | "cuda", ops: Op[], failingStep: number): Promise<Op[]> {
  let current = ops.slice(0, failingStep + 1);
  const fails = async (candidate: Op[]) => {
    try {
      await run(backend, candidate);
      return false;
    } catch {
      return true;
    }
  };
  for (let i = current.length - 2; i >= 0; i--) {
    const candidate = current.filter((_, j) => j !== i);
    if (await fails(candidate)) current = candidate;
  }
  return current;
}

const STEPS = readEnvInt("GPUSCHED_MODEL_STEPS", 400);
const SEEDS = readEnvInt("GPUSCHED_MODEL_SEEDS", 3);

for (const backend of BACKENDS) {
  Deno.test({
    name:
      `[${backend.name}] random API sequences keep every promise (${SEEDS} seeds x ${STEPS} steps)${
        backend.skip ? ` (skipped: ${backend.skip})` : ""
      }`,
    ignore: backend.skip !== undefined,
    async fn() {
      for (let seed = 1; seed <= SEEDS; seed++) {
        const ops = generate(seed, STEPS);
        try {
          await run(backend.name, ops);
        } catch (error) {
          const step = (error as { step?: number }).step ?? ops.length - 1;
          const shrunk = await shrink(backend.name, ops, step);
          throw new Error(
            `seed ${seed} failed: ${
              (error as Error).message
            }\nshrunk to ${shrunk.length} steps:\n` +
              shrunk.map((op) => JSON.stringify(op)).join("\n"),
            { cause: error },
          );
        }
      }
    },
  });
}
