/**
 * Scheduler API hot paths: a sync context session (enter + exit), an async
 * one, and alloc + free of a cached size through a context, in and out of
 * a session.
 *
 * Run: deno task bench (GPUSCHED_BACKEND=host|cuda to force a backend).
 */
import { alloc, contextSession, createContext, MB, QoSPolicy } from "../mod.ts";
import { benchScheduler } from "./_backend.ts";

benchScheduler({ banner: false });
const llm = createContext("bench-llm", { maxVram: 256 * MB, qos: QoSPolicy.GUARANTEED });
llm.alloc(64 * 1024).free(); // warm the size class

Deno.bench("sync session enter + exit (using contextSession(ctx))", { group: "session" }, () => {
  using _s = contextSession(llm);
});

Deno.bench("async session (await contextSession(ctx, fn))", { group: "session" }, async () => {
  await contextSession(llm, () => 1);
});

Deno.bench("ctx.alloc + free, cached 64 KiB", { group: "alloc", baseline: true }, () => {
  llm.alloc(64 * 1024).free();
});

Deno.bench("alloc + free in a sync session, cached 64 KiB", { group: "alloc" }, () => {
  using _s = contextSession(llm);
  alloc(64 * 1024).free();
});
