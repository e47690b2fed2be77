/**
 * Process-level promises (API.md "Units and lifecycle": initialize twice
 * without shutdown throws; the bar: no crash in any order of calls), in
 * subprocesses: a program that ends (Deno.exit, an uncaught exception, an
 * unhandled rejection) while a sleep(), a wake(), host waits behind a long
 * kernel or a cross-device copyFrom are in flight exits with Deno's code,
 * never 134/139; the main thread and a Worker contending for the one
 * scheduler of the process get a SchedulerError, not a hang. Scripts in
 * tests/probe2_process/. Needs --allow-run (ignored, with the reason,
 * without it), like tests/process_test.ts.
 */
import assert from "node:assert/strict";
import { cudaSkipReason } from "./_helpers.ts";
import { DENO, envPassThrough, type Outcome, runSkip } from "./_subprocess.ts";

const dir = decodeURIComponent(new URL("./probe2_process/", import.meta.url).pathname);
const root = decodeURIComponent(new URL("../", import.meta.url).pathname);
const RUNS = 2;

async function run(script: string, args: string[]): Promise<Outcome> {
  const out = await new Deno.Command(DENO, {
    args: [
      "run",
      "--allow-ffi",
      "--allow-env=GPUSCHED_LIB",
      `--allow-read=${root}`,
      `${dir}${script}`,
      ...args,
    ],
    env: { ...envPassThrough(), NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: out.code,
    signal: out.signal,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

function assertEnded(o: Outcome, code: number, what: string): void {
  const where = `${what}: exit ${o.code}${o.signal ? ` (${o.signal})` : ""}\n${o.stdout}\n${
    o.stderr.slice(-2000)
  }`;
  assert.notEqual(o.code, 134, `aborted, ${where}`);
  assert.notEqual(o.code, 139, `SIGSEGV, ${where}`);
  assert.equal(o.signal, null, where);
  assert.equal(o.code, code, where);
}

const backends = [
  { name: "host", skip: runSkip },
  { name: "cuda", skip: runSkip ?? cudaSkipReason },
];

for (const b of backends) {
  const test = (name: string, fn: () => Promise<void>) =>
    Deno.test({
      name: `[probe2] [${b.name}] ${name}${b.skip ? ` (skipped: ${b.skip})` : ""}`,
      ignore: b.skip !== undefined,
      fn,
    });

  for (const work of ["sleep", "wake", "waits", "copy"]) {
    test(`ending with a ${work} in flight: Deno.exit, throw, rejection exit with their codes`, async () => {
      const endings: [string, number][] = [["exit", 7], ["throw", 1], ["reject", 1], ["clean", 0]];
      for (let i = 0; i < RUNS; i++) {
        const outcomes = await Promise.all(
          endings.map(([ending]) => run("mid_flight_exit.ts", [ending, work, b.name])),
        );
        outcomes.forEach((o, k) => {
          const [ending, code] = endings[k]!;
          assertEnded(o, code, `${ending} with ${work} in flight`);
          assert.ok(o.stdout.includes("in flight"), `the work was queued: ${o.stdout}`);
          if (ending === "throw") assert.match(o.stderr, /mid-flight end: uncaught/);
          if (ending === "reject") assert.match(o.stderr, /mid-flight end: unhandled/);
          if (ending === "clean") assert.match(o.stdout, /clean end/);
        });
      }
    });
  }

  for (const mode of ["main-holds", "worker-holds"]) {
    test(`initialize in a second isolate while one holds the scheduler (${mode}): SchedulerError, no hang`, async () => {
      const o = await run("contended_main.ts", [mode, b.name]);
      assertEnded(o, 0, mode);
      assert.match(o.stdout, /all as promised/);
    });
  }
}
