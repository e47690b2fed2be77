/**
 * Bad input the probe_* files did not try (the bar: "Bad input gets a clear
 * TypeError/RangeError naming the option and value, and loses nothing"):
 * objects that pass `instanceof` but are not the library's (a Proxy of a
 * context, as reactive stores such as Vue's or MobX's hand out, and objects
 * made from the prototype), option getters that throw, frozen and
 * inherited options, -0, detached and resizable host arrays. Written from
 * API.md and README.md only.
 */
import assert from "node:assert/strict";
import {
  contextSession,
  createContext,
  destroyContext,
  DeviceBuffer,
  ExecutionContext,
  getContextUsage,
  getStream,
  GpuEvent,
  MB,
  QoSPolicy,
  recordEvent,
  waitEvent,
} from "../mod.ts";
import { caught, probe, rejected } from "./_probe.ts";

/** A TypeError whose message names what was expected (not an engine message about private fields). */
function assertClearTypeError(error: unknown, names: string, what: string): void {
  assert.ok(error instanceof TypeError, `${what}: expected a TypeError, got ${error}`);
  assert.ok(
    error.message.includes(names),
    `${what}: message ${JSON.stringify(error.message)} names ${names}`,
  );
  assert.ok(!/private member|Receiver must be/.test(error.message), `${what}: ${error.message}`);
}

probe(
  "look-alike contexts (a Proxy, Object.create) are refused clearly, nothing changes",
  async () => {
    const ctx = createContext("real", { maxVram: 8 * MB });
    using _buf = ctx.alloc(1 * MB);
    const fakes: [string, ExecutionContext][] = [
      ["Proxy", new Proxy(ctx, {})],
      ["Object.create", Object.create(ExecutionContext.prototype)],
    ];
    for (const [kind, fake] of fakes) {
      const calls: [string, () => unknown][] = [
        ["getContextUsage", () => getContextUsage(fake)],
        ["destroyContext", () => destroyContext(fake)],
        ["getStream", () => getStream(fake)],
        ["recordEvent", () => recordEvent(fake)],
        ["waitEvent", () => waitEvent(fake, recordEvent(ctx))],
        ["contextSession", () => contextSession(fake)],
      ];
      for (const [name, call] of calls) {
        assertClearTypeError(caught(call), "ExecutionContext", `${name}(${kind})`);
      }
      assertClearTypeError(
        await rejected(() => contextSession(fake, () => 1)),
        "ExecutionContext",
        `contextSession(${kind}, fn)`,
      );
    }
    assert.equal(ctx.alive, true);
    assert.equal(getContextUsage(ctx).used, 1 * MB);
  },
);

probe("look-alike buffers and events are refused clearly by copyFrom and waitEvent", async () => {
  const ctx = createContext("real", { maxVram: 8 * MB });
  using src = ctx.alloc(4096);
  using dst = ctx.alloc(4096);
  await src.write(new Uint8Array(4096).fill(6));
  for (
    const [kind, fake] of [
      ["Proxy", new Proxy(src, {})],
      ["Object.create", Object.create(DeviceBuffer.prototype)],
    ] as const
  ) {
    assertClearTypeError(await rejected(() => dst.copyFrom(fake)), "src", `copyFrom(${kind})`);
  }
  const ev = recordEvent(ctx);
  for (
    const [kind, fake] of [
      ["Proxy", new Proxy(ev, {})],
      ["Object.create", Object.create(GpuEvent.prototype)],
    ] as const
  ) {
    assertClearTypeError(caught(() => waitEvent(ctx, fake)), "GpuEvent", `waitEvent(${kind})`);
  }
  await dst.copyFrom(src);
  const back = new Uint8Array(4096);
  await dst.read(back);
  assert.ok(back.every((v) => v === 6), "a real copy still works");
});

probe("option objects: throwing getters propagate and create nothing; frozen ones work", () => {
  const boom = new Error("getter");
  const throwing = {
    get maxVram(): number {
      throw boom;
    },
  };
  assert.equal(caught(() => createContext("a", throwing)), boom);
  const qosBoom = new Proxy({ maxVram: 1 * MB }, {
    get(target, key) {
      if (key === "qos") throw boom;
      return Reflect.get(target, key);
    },
  });
  assert.equal(caught(() => createContext("a", qosBoom as never)), boom);
  // Nothing was made: the name is free and no context appears.
  const a = createContext("a", Object.freeze({ maxVram: 1 * MB, qos: QoSPolicy.GUARANTEED }));
  assert.equal(a.qos, QoSPolicy.GUARANTEED);
  assert.equal(getContextUsage(a).reserved, 1 * MB);
  // -0 is 0: not a positive size.
  assert.ok(caught(() => createContext("z", { maxVram: -0 })) instanceof RangeError);
  assert.ok(caught(() => a.alloc(-0)) instanceof RangeError);
  const allocBoom = caught(() =>
    a.alloc(4096, {
      get evictable(): boolean {
        throw boom;
      },
    })
  );
  assert.equal(allocBoom, boom);
  assert.equal(getContextUsage(a).used, 0, "the refused alloc holds nothing");
});

probe("host arrays detached or shrunk mid-read reject; the buffer stays usable", async () => {
  const ctx = createContext("c", { maxVram: 8 * MB });
  using buf = ctx.alloc(1 * MB);
  await buf.write(new Uint8Array(1 * MB).fill(8));
  for (let i = 0; i < 20; i++) {
    const host = new Uint8Array(1 * MB);
    const reading = buf.read(host);
    host.buffer.transfer(); // detached while the copy is in flight
    await reading.then(() => {}, (e) => assert.ok(e instanceof TypeError, `${e}`));
    const growable = new ArrayBuffer(1 * MB, { maxByteLength: 1 * MB });
    const r2 = buf.read(new Uint8Array(growable));
    growable.resize(0);
    await r2.then(() => {}, (e) => assert.ok(e instanceof RangeError || e instanceof TypeError));
  }
  const back = new Uint8Array(1 * MB);
  await buf.read(back);
  assert.ok(back.every((v) => v === 8));
  // A write whose array is detached right after the call still writes what it held then.
  const data = new Uint8Array(1 * MB).fill(9);
  const writing = buf.write(data);
  data.buffer.transfer();
  await writing;
  await buf.read(back);
  assert.ok(back.every((v) => v === 9));
});
