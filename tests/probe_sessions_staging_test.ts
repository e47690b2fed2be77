/**
 * Sessions (API.md "Sessions"), staging of transfers per device (README
 * "Transfers", "Several devices"), compute reservations' accounting on the
 * host (API.md "Compute reservations") and reclaiming across a partition's
 * boundary, written from API.md and README.md only.
 */
import assert from "node:assert/strict";
import {
  AdmissionError,
  alloc,
  contextSession,
  createContext,
  currentContext,
  destroyContext,
  getContextUsage,
  MB,
  PartitionConfig,
  PartitionLimits,
  PartitionManager,
  QoSPolicy,
} from "../mod.ts";
import { nativeCounts } from "../src/native/debug_counts.ts";
import { assertBudgetRefusal, caught, probe } from "./_probe.ts";

probe("1000 concurrent async sessions never see each other's context", async () => {
  const contexts = Array.from(
    { length: 10 },
    (_, i) => createContext(`c${i}`, { maxVram: 8 * MB }),
  );
  const results = await Promise.all(
    Array.from({ length: 1000 }, (_, i) =>
      contextSession(contexts[i % 10]!, async (ctx) => {
        const seen: string[] = [];
        for (let k = 0; k < 5; k++) {
          await new Promise((r) => setTimeout(r, (i * 7 + k) % 3));
          seen.push(currentContext()!.name);
          // Nested: inner wins, outer restored.
          const inner = contexts[(i + 1) % 10]!;
          const nested = await contextSession(inner, async () => {
            await Promise.resolve();
            return currentContext()!.name;
          });
          assert.equal(nested, inner.name);
          seen.push(currentContext()!.name);
        }
        using _b = alloc(4096);
        assert.equal(_b.context, ctx);
        return seen.every((n) => n === ctx.name);
      })),
  );
  assert.ok(results.every(Boolean));
  assert.equal(currentContext(), undefined);
  for (const c of contexts) assert.equal(getContextUsage(c).used, 0);
});

probe("a sync session inside an async one, and an async one inside a sync one", async () => {
  const a = createContext("a", { maxVram: 8 * MB });
  const b = createContext("b", { maxVram: 8 * MB });
  await contextSession(a, async () => {
    {
      using _s = contextSession(b);
      assert.equal(currentContext(), b);
    }
    assert.equal(currentContext(), a);
    await Promise.resolve();
    assert.equal(currentContext(), a);
  });
  {
    using _s = contextSession(a);
    const inner = contextSession(b, async () => {
      await new Promise((r) => setTimeout(r, 1));
      return currentContext();
    });
    assert.equal(currentContext(), a);
    _s[Symbol.dispose]();
    assert.equal(await inner, b);
  }
  assert.equal(currentContext(), undefined);
});

probe("an async session whose fn throws or rejects restores the outer context", async () => {
  const a = createContext("a", { maxVram: 8 * MB });
  const b = createContext("b", { maxVram: 8 * MB });
  await contextSession(a, async () => {
    await assert.rejects(
      contextSession(b, () => {
        throw new RangeError("sync throw");
      }),
      RangeError,
    );
    assert.equal(currentContext(), a);
    await assert.rejects(
      contextSession(b, async () => {
        await Promise.resolve();
        throw new TypeError("async throw");
      }),
      TypeError,
    );
    assert.equal(currentContext(), a);
  });
  assert.equal(currentContext(), undefined);
});

probe("one write larger than a device's staging (300 MiB) is bit-exact", async () => {
  const ctx = createContext("c", { maxVram: 512 * MB });
  const buf = ctx.alloc(300 * MB);
  const data = new Uint8Array(300 * MB);
  for (let i = 0; i < data.length; i += 4093) data[i] = (i * 7) & 0xff;
  await buf.write(data);
  const out = new Uint8Array(300 * MB);
  await buf.read(out);
  for (let i = 0; i < data.length; i += 4093) {
    if (out[i] !== data[i]) assert.fail(`byte ${i}: ${out[i]} !== ${data[i]}`);
  }
}, { hostMemory: 512 * MB });

probe("concurrent writes past 256 MiB on two devices: staging bounded, data exact", async () => {
  const a = createContext("a", { maxVram: 512 * MB, device: 0 });
  const b = createContext("b", { maxVram: 512 * MB, device: 1 });
  const bufs = Array.from({ length: 40 }, (_, i) => (i % 2 ? b : a).alloc(16 * MB));
  const writes = bufs.map((x, i) => x.write(new Uint8Array(16 * MB).fill(i + 1)));
  assert.ok(
    nativeCounts().pinnedBytes <= 2 * 256 * MB + 8 * MB,
    `pinned ${nativeCounts().pinnedBytes} with 640 MiB in flight on two devices`,
  );
  await Promise.all(writes);
  for (const [i, x] of bufs.entries()) {
    const tail = new Uint8Array(64);
    await x.read(tail, { offset: 16 * MB - 64 });
    assert.ok(tail.every((v) => v === i + 1), `buffer ${i}`);
  }
}, { hostMemory: 512 * MB, hostDevices: 2 });

probe("compute reservations: whole groups, at least one, one group always shared", (sched) => {
  const { smGroups, smGranularity } = sched.device;
  const mk = (name: string, compute: number) =>
    createContext(name, { maxVram: 1 * MB, qos: QoSPolicy.GUARANTEED, compute });
  const a = mk("a", 0.25);
  assert.equal(a.compute, 0.25);
  assert.equal(a.smCount, Math.round(0.25 * smGroups) * smGranularity);
  const tiny = mk("tiny", 0.001);
  assert.equal(tiny.smCount, smGranularity, "at least one group");
  const burst = createContext("burst", { maxVram: 1 * MB, compute: 0.1 }); // BURSTABLE: allowed
  assert.ok(burst.smCount >= smGranularity);
  const used = (a.smCount + tiny.smCount + burst.smCount) / smGranularity;
  const left = smGroups - used;
  // Exactly what leaves one group shared is admitted; one more group is refused.
  const tooMuch = left / smGroups;
  const e = caught(() => mk("too-much", tooMuch));
  assert.ok(e instanceof AdmissionError, `got ${e}`);
  const fits = mk("fits", (left - 1) / smGroups);
  assert.equal(fits.smCount, (left - 1) * smGranularity);
  assert.ok(caught(() => mk("none-left", 0.001)) instanceof AdmissionError);
  destroyContext(fits);
  assert.equal(mk("again", 0.001).smCount, smGranularity, "destroy gives groups back");
  assert.equal(createContext("plain", { maxVram: 1 * MB }).smCount, 0);
}, { hostDevices: 2 });

probe("reclaiming crosses a partition's boundary only for the device's limit", () => {
  const m = new PartitionManager(new PartitionConfig({ totalMemory: 64 * MB }));
  m.createPartition("p", "P", new PartitionLimits().memory(32 * MB));
  // Outside evictable memory gives way to a reservation inside (the device lacked room)...
  const out = createContext("out", { maxVram: 64 * MB, qos: QoSPolicy.BEST_EFFORT });
  out.alloc(48 * MB, { evictable: true });
  const g = createContext("g", { maxVram: 32 * MB, qos: QoSPolicy.GUARANTEED, partition: "p" });
  assert.equal(getContextUsage(out).evicted, 48 * MB);
  // ...but never makes room past the partition's own limit.
  const inside = createContext("in", { maxVram: 64 * MB, partition: "p" });
  const outBack = out.alloc(16 * MB, { evictable: true });
  assertBudgetRefusal(caught(() => inside.alloc(8 * MB)), inside, 8 * MB);
  assert.equal(getContextUsage(out).used, 16 * MB, "outside buffers were not evicted");
  destroyContext(g);
  inside.alloc(24 * MB); // partition room again; device room too (64 - 16 - 24)
  void outBack;
}, { hostMemory: 64 * MB });
