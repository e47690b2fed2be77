/**
 * A shut-down scheduler must be collectable at once, also inside one V8
 * job (a loop of initialize/shutdown cycles that never waits for the event
 * loop). V8 keeps every object a WeakRef is made for, or deref'd, alive
 * until the job ends; events used to make a WeakRef to their scheduler, so
 * such a loop kept every cycle's scheduler with its contexts, pools and
 * streams (14.6 KiB a cycle here, 13 KiB a cycle of bench/rss_cycles.ts
 * `ring` on an H200). Runs in a subprocess with --expose-gc, which the test
 * task does not give; needs --allow-run (ignored without it, with the reason).
 */
import assert from "node:assert/strict";

const DENO = "deno";
const runGranted = Deno.permissions.querySync({ name: "run", command: DENO }).state === "granted";
const child = decodeURIComponent(
  new URL("./process/shut_down_schedulers.ts", import.meta.url).pathname,
);
const CYCLES = 300;
/** JS heap growth allowed over the cycles: noise of a full gc; the leak was 4.3 MiB. */
const HEAP_BOUND = 1 * 1024 * 1024;

Deno.test({
  name: `[host] ${CYCLES} shut-down schedulers in one V8 job are collected` +
    (runGranted ? "" : " (skipped: needs --allow-run)"),
  ignore: !runGranted,
  async fn() {
    const state = Deno.permissions.querySync({ name: "env", variable: "GPUSCHED_LIB" }).state;
    const lib = state === "granted" ? Deno.env.get("GPUSCHED_LIB") : undefined;
    const out = await new Deno.Command(DENO, {
      args: [
        "run",
        "--v8-flags=--expose-gc",
        "--allow-ffi",
        "--allow-env=GPUSCHED_LIB",
        child,
        String(CYCLES),
      ],
      env: { ...(lib ? { GPUSCHED_LIB: lib } : {}), NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    const { before, after } = JSON.parse(new TextDecoder().decode(out.stdout));
    assert.ok(
      after - before < HEAP_BOUND,
      `JS heap after gc() grew from ${before} to ${after} bytes over ${CYCLES} cycles`,
    );
  },
});
