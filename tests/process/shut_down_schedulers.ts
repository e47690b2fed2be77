/**
 * Child of tests/retention_test.ts: initialize/shutdown cycles run in one
 * synchronous stretch (one V8 job, as a loop that never waits for the
 * event loop is), each making contexts, streams, explicit and recorded
 * events, and a pool. Prints the JS heap after gc() before and after the
 * cycles, as JSON. Run with --v8-flags=--expose-gc.
 */
import {
  createContext,
  initialize,
  KB,
  MB,
  MemoryPool,
  recordEvent,
  shutdown,
  waitEvent,
} from "../../mod.ts";

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --v8-flags=--expose-gc");
const cycles = Number(Deno.args[0] ?? 300);

function cycle(): void {
  const sched = initialize({ backend: "host", hostMemory: 64 * MB });
  const a = createContext("a", { maxVram: 4 * MB }), b = createContext("b", { maxVram: 4 * MB });
  for (let i = 0; i < 10; i++) waitEvent(b, recordEvent(a));
  sched.createEvent().record(a.stream);
  new MemoryPool({ quota: MB }).allocate(64 * KB);
  b.stream.synchronizeSync();
  shutdown();
}

for (let i = 0; i < 20; i++) cycle(); // code compiled and caches filled before the first reading
gc();
const before = Deno.memoryUsage().heapUsed;
for (let i = 0; i < cycles; i++) cycle();
gc();
const after = Deno.memoryUsage().heapUsed;
console.log(JSON.stringify({ cycles, before, after }));
