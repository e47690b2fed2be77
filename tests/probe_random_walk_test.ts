/**
 * A seeded random walk over everything that changed today together: two
 * simulated devices, partitions with memory limits, contexts of every
 * class (some in partitions), evictable and plain buffers, whole-buffer
 * writes and cross-device copies, sleeps and wakes, standalone pools, and
 * a pressure handler that sometimes refuses or frees. After every step:
 * no context past maxVram, no partition past its limit, no device past
 * its memoryLimit, available never negative. At the end every buffer
 * reads back what was last written into it. Written from API.md/README.md.
 */
import assert from "node:assert/strict";
import {
  AdmissionError,
  createContext,
  type DeviceBuffer,
  type ExecutionContext,
  getAvailableVram,
  getContextUsage,
  getMetrics,
  MB,
  MemoryPool,
  NativeError,
  onMemoryPressure,
  PartitionConfig,
  PartitionLimits,
  PartitionManager,
  type PoolBlock,
  QoSPolicy,
  SchedulerError,
  VramBudgetExceededError,
} from "../mod.ts";
import { probe } from "./_probe.ts";

const DEVICE = 24 * MB;
const PART = 10 * MB;
const SIZES = [256 * 1024, 1 * MB, 2 * MB, 4 * MB];

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 997) out[i] = (i + seed * 31) & 0xff;
  out[n - 1] = seed & 0xff;
  return out;
}

function sameAsPattern(data: Uint8Array, seed: number): boolean {
  const want = pattern(data.length, seed);
  for (let i = 0; i < data.length; i += 997) if (data[i] !== want[i]) return false;
  return data[data.length - 1] === want[data.length - 1];
}

interface Tracked {
  buf: DeviceBuffer;
  seed: number | undefined; // undefined: never written
}

/** Errors a step may legitimately end with. */
function expected(error: unknown): boolean {
  return error instanceof VramBudgetExceededError || error instanceof AdmissionError ||
    error instanceof SchedulerError;
}

for (const seed of [1, 2, 3, 4]) {
  probe(`random walk over devices, partitions, sleep and eviction (seed ${seed})`, async () => {
    const random = rng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
    const managers = [0, 1].map((device) => {
      const m = new PartitionManager(new PartitionConfig({ totalMemory: DEVICE, device }));
      m.createPartition("p", "P", new PartitionLimits().memory(PART));
      return m;
    });
    const contexts: ExecutionContext[] = [];
    const buffers = new Map<ExecutionContext, Tracked[]>();
    const pools: { pool: MemoryPool; blocks: PoolBlock[] }[] = [];
    let made = 0;
    let handlerMode: "yes" | "no" | "free" = "yes";
    const off = onMemoryPressure((ctx) => {
      if (handlerMode === "no") return false;
      if (handlerMode === "free") {
        const own = buffers.get(ctx);
        const victim = own?.pop();
        victim?.buf.free();
      }
      return true;
    });

    const check = (step: number, op: string) => {
      const m = getMetrics();
      for (const c of m.contexts) {
        assert.ok(
          c.used + c.cached <= c.max,
          `step ${step} ${op}: ${c.name} holds ${c.used} + ${c.cached} cached > max ${c.max}`,
        );
        assert.ok(c.reserved <= c.max);
      }
      for (const device of [0, 1]) {
        const here = contexts.filter((c) => c.alive && c.device === device);
        const inPart = here.filter((c) => c.partition === "p");
        const held = (cs: ExecutionContext[]) =>
          cs.reduce((sum, c) => {
            const u = getContextUsage(c);
            return sum + Math.max(u.used + u.cached, u.reserved);
          }, 0);
        assert.ok(
          held(inPart) <= PART,
          `step ${step} ${op}: partition on ${device} holds ${held(inPart)}`,
        );
        const poolBytes = pools.filter((p) => p.pool.stream.device === device)
          .reduce((s, p) => s + p.pool.stats().allocatedBytes + p.pool.stats().cachedBytes, 0);
        assert.ok(
          held(here) + poolBytes <= DEVICE,
          `step ${step} ${op}: device ${device} holds ${held(here) + poolBytes}`,
        );
        assert.ok(getAvailableVram(device) >= 0);
        for (const p of pools) {
          const st = p.pool.stats();
          assert.ok(
            st.allocatedBytes + st.cachedBytes <= st.quota,
            `step ${step} ${op}: pool quota`,
          );
        }
      }
    };

    const ops: Record<string, () => Promise<void> | void> = {
      create() {
        if (contexts.filter((c) => c.alive).length >= 8) return;
        const qos = pick([QoSPolicy.GUARANTEED, QoSPolicy.BURSTABLE, QoSPolicy.BEST_EFFORT]);
        const maxVram = pick([4, 6, 8, 12]) * MB;
        const options = {
          maxVram,
          qos,
          device: pick([0, 1, "auto"] as const),
          ...(qos === QoSPolicy.BURSTABLE ? { baseVram: pick([0, 2, 4]) * MB } : {}),
          ...(random() < 0.4 ? { partition: "p" } : {}),
        };
        if (options.partition && options.device === "auto") options.device = 0;
        const ctx = createContext(`c${made++}`, options);
        contexts.push(ctx);
        buffers.set(ctx, []);
      },
      destroy() {
        const ctx = pick(contexts.filter((c) => c.alive).concat([undefined as never]));
        if (!ctx) return;
        ctx.destroy();
        buffers.delete(ctx);
      },
      alloc() {
        const ctx = pick(
          contexts.filter((c) => c.alive && !c.sleeping).concat([undefined as never]),
        );
        if (!ctx) return;
        const buf = ctx.alloc(pick(SIZES), { evictable: random() < 0.6 });
        buffers.get(ctx)!.push({ buf, seed: undefined });
      },
      free() {
        const all = [...buffers.values()].flat();
        if (all.length === 0) return;
        const t = pick(all);
        if (t.buf.context.sleeping && random() < 0.5) return;
        t.buf.free();
        for (const list of buffers.values()) {
          const i = list.indexOf(t);
          if (i >= 0) list.splice(i, 1);
        }
      },
      async write() {
        const all = [...buffers.values()].flat().filter((t) => !t.buf.context.sleeping);
        if (all.length === 0) return;
        const t = pick(all);
        const s = Math.floor(random() * 1e6);
        t.seed = undefined; // a failed write may have landed in part
        await t.buf.write(pattern(t.buf.size, s));
        t.seed = s;
      },
      async copy() {
        const all = [...buffers.values()].flat().filter((t) => !t.buf.context.sleeping);
        if (all.length < 2) return;
        const src = pick(all), dst = pick(all);
        if (src === dst || src.buf.size !== dst.buf.size) return;
        dst.seed = undefined;
        await dst.buf.copyFrom(src.buf);
        dst.seed = src.seed;
      },
      async sleep() {
        const ctx = pick(
          contexts.filter((c) => c.alive && !c.sleeping).concat([undefined as never]),
        );
        if (ctx) await ctx.sleep();
      },
      async wake() {
        const ctx = pick(
          contexts.filter((c) => c.alive && c.sleeping).concat([undefined as never]),
        );
        if (ctx) await ctx.wake();
      },
      pool() {
        if (pools.length < 2 && random() < 0.3) {
          pools.push({
            pool: new MemoryPool({ quota: 6 * MB, device: pick([0, 1]), enableEviction: true }),
            blocks: [],
          });
          return;
        }
        const p = pick(pools.concat([undefined as never]));
        if (!p) return;
        if (p.blocks.length > 0 && random() < 0.5) {
          p.pool.free(p.blocks.pop()!);
        } else if (random() < 0.1) {
          p.pool.destroy();
          pools.splice(pools.indexOf(p), 1);
        } else {
          p.blocks.push(p.pool.allocate(pick(SIZES), { evictable: random() < 0.5 }));
        }
      },
      handler() {
        handlerMode = pick(["yes", "yes", "no", "free"] as const);
      },
    };
    const names = Object.keys(ops);
    const weights = [3, 1, 6, 3, 4, 2, 1, 1, 2, 1];
    const bag = names.flatMap((n, i) => new Array(weights[i]).fill(n) as string[]);
    try {
      for (let step = 0; step < 1500; step++) {
        const op = pick(bag);
        try {
          await ops[op]!();
        } catch (error) {
          if (!expected(error)) {
            throw new Error(`step ${step} ${op}: unexpected ${error}`, { cause: error });
          }
          if (error instanceof NativeError) throw error;
        }
        check(step, op);
      }
    } finally {
      off();
    }
    // Every buffer holds what was last written into it. Make room first: pools go, the other
    // contexts sleep, and a buffer verified is freed (an evicted buffer may need its context's
    // room to come back: nothing is lost meanwhile, it just waits on the host).
    for (const p of pools) p.pool.destroy();
    for (const ctx of contexts.filter((c) => c.alive)) {
      for (const other of contexts) {
        if (other !== ctx && other.alive && !other.sleeping) await other.sleep();
      }
      if (ctx.sleeping) await ctx.wake();
      const list = buffers.get(ctx) ?? [];
      for (const t of list) if (t.seed === undefined) t.buf.free();
      const unchecked = list.filter((t) => t.seed !== undefined);
      unchecked.sort((a, b) =>
        Number(a.buf.state === "evicted") - Number(b.buf.state === "evicted")
      );
      for (const t of unchecked) {
        const out = new Uint8Array(t.buf.size);
        await t.buf.read(out);
        assert.ok(
          sameAsPattern(out, t.seed!),
          `${ctx.name}: buffer of ${t.buf.size} lost its data`,
        );
        t.buf.free();
      }
      await ctx.sleep();
    }
    for (const m of managers) void m;
  }, { hostMemory: DEVICE, hostDevices: 2 });
}
