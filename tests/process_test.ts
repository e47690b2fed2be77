/**
 * Process-level tests: programs that end abruptly with gpusched work in
 * flight (an uncaught exception, an unhandled rejection, Deno.exit in the
 * middle of an await, a signal), and Workers terminated mid-copy. Each
 * scenario runs in a fresh subprocess several times, since the crashes this
 * guards against were races (about half of the runs crashed): with 8 runs
 * a 50% crash escapes with probability 1/256. Every run must end with the
 * exit code Deno gives, never 134 (abort) or 139 (SIGSEGV).
 *
 * Needs `--allow-run` (the subprocesses run `deno` from PATH). The task
 * grants it unscoped: Deno refuses `--allow-run=deno` for a child whose
 * environment holds LD_LIBRARY_PATH, which CUDA machines often set for the
 * driver. Without the grant the tests are ignored, with the reason.
 */

import assert from "node:assert/strict";
import { cudaSkipReason } from "./_helpers.ts";
import { DENO, envPassThrough, type Outcome, runSkip } from "./_subprocess.ts";

/** Runs of the scenarios that crashed in about half of the runs before the fix. */
const RUNS = 8;
/** Runs of the others (they guard the same mechanism from other endings). */
const FEW_RUNS = 4;
const PARALLEL = 4;
const dir = decodeURIComponent(new URL("./process/", import.meta.url).pathname);
const root = decodeURIComponent(new URL("../", import.meta.url).pathname);

/**
 * Runs `script` with `args`; with `signal`, sends it once the child printed
 * "in flight" (its work is queued), then waits for the end.
 */
async function runOnce(
  script: string,
  args: string[],
  signal?: Deno.Signal,
  denoFlags: string[] = [],
): Promise<Outcome> {
  const child = new Deno.Command(DENO, {
    args: [
      "run",
      ...denoFlags,
      "--allow-ffi",
      "--allow-env=GPUSCHED_LIB",
      `--allow-read=${root}`, // a Worker loads the library's modules
      `${dir}${script}`,
      ...args,
    ],
    env: { ...envPassThrough(), NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const decoder = new TextDecoder();
  let stdout = "";
  const reading = (async () => {
    for await (const chunk of child.stdout) {
      stdout += decoder.decode(chunk, { stream: true });
      if (signal && stdout.includes("in flight")) {
        child.kill(signal);
        signal = undefined;
      }
    }
  })();
  const stderrText = new Response(child.stderr).text();
  const status = await child.status;
  await reading;
  return { code: status.code, signal: status.signal, stdout, stderr: await stderrText };
}

/** Runs a scenario `runs` times (PARALLEL at once) and checks every outcome. */
async function runMany(
  script: string,
  args: string[],
  check: (o: Outcome) => void,
  { signal, runs = RUNS }: { signal?: Deno.Signal; runs?: number } = {},
): Promise<void> {
  const outcomes: Outcome[] = [];
  for (let i = 0; i < runs; i += PARALLEL) {
    const batch = Array.from(
      { length: Math.min(PARALLEL, runs - i) },
      () => runOnce(script, args, signal),
    );
    outcomes.push(...await Promise.all(batch));
  }
  for (const [i, o] of outcomes.entries()) {
    const where = `run ${i + 1}/${runs} of ${script} ${args.join(" ")}: exit ${o.code}` +
      `${o.signal ? ` (${o.signal})` : ""}\n${o.stderr.slice(-2000)}`;
    assert.notEqual(o.code, 134, `aborted, ${where}`);
    assert.notEqual(o.code, 139, `crashed with SIGSEGV, ${where}`);
    assert.ok(o.signal !== "SIGSEGV" && o.signal !== "SIGABRT" && o.signal !== "SIGBUS", where);
    check(o);
  }
}

function exitsWith(code: number, saying?: string): (o: Outcome) => void {
  return (o) => {
    assert.equal(o.code, code, `expected exit ${code}, got ${o.code}: ${o.stderr.slice(-2000)}`);
    if (saying) assert.match(o.stdout + o.stderr, new RegExp(saying));
  };
}

const backends = [
  { name: "host", skip: runSkip },
  { name: "cuda", skip: runSkip ?? cudaSkipReason },
];

function processTest(name: string, fn: (backend: string) => Promise<void>): void {
  for (const b of backends) {
    Deno.test({
      name: `[${b.name}] ${name}${b.skip ? ` (skipped: ${b.skip})` : ""}`,
      ignore: b.skip !== undefined,
      fn: () => fn(b.name),
    });
  }
}

processTest(
  "an uncaught exception with 128 MiB copies in flight exits with 1",
  (b) => runMany("abrupt_exit.ts", ["throw", "copies", b], exitsWith(1, "abrupt end: uncaught")),
);

processTest(
  "an unhandled rejection with 128 MiB copies in flight exits with 1",
  (b) => runMany("abrupt_exit.ts", ["reject", "copies", b], exitsWith(1, "abrupt end: unhandled")),
);

processTest(
  "an uncaught exception while a user kernel runs on the stream exits with 1",
  (b) => runMany("abrupt_exit.ts", ["throw", "kernel", b], exitsWith(1, "abrupt end: uncaught")),
);

processTest(
  "an unhandled rejection with a kernel and copies in flight exits with 1",
  (b) =>
    runMany("abrupt_exit.ts", ["reject", "both", b], exitsWith(1, "abrupt end: unhandled"), {
      runs: FEW_RUNS,
    }),
);

processTest(
  "Deno.exit with copies in flight exits with its code",
  (b) => runMany("abrupt_exit.ts", ["exit", "copies", b], exitsWith(3), { runs: FEW_RUNS }),
);

processTest(
  "Deno.exit in the middle of an awaited copy exits with its code",
  (b) =>
    runMany("abrupt_exit.ts", ["exit-in-await", "copies", b], exitsWith(4), { runs: FEW_RUNS }),
);

processTest(
  "SIGTERM with copies and a kernel in flight ends by the signal, not a crash",
  (b) =>
    runMany("abrupt_exit.ts", ["hang", "both", b], (o) => {
      assert.ok(o.signal === "SIGTERM" || o.code === 143, `exit ${o.code} ${o.signal}`);
    }, { signal: "SIGTERM", runs: FEW_RUNS }),
);

processTest(
  "SIGINT handled with Deno.exit(130) while copies are in flight exits with 130",
  (b) =>
    runMany("abrupt_exit.ts", ["signal-handler", "copies", b], exitsWith(130), {
      signal: "SIGINT",
      runs: FEW_RUNS,
    }),
);

processTest(
  "terminating a Worker mid-copy, then initialize() on the main thread works",
  (b) => runMany("worker_main.ts", ["terminate", b], exitsWith(0, "main initialized")),
);

processTest(
  "a Worker that throws with copies in flight frees the scheduler for main",
  (b) =>
    runMany("worker_main.ts", ["throw", b], exitsWith(0, "worker ends with an uncaught"), {
      runs: FEW_RUNS,
    }),
);

processTest(
  "two Workers in turn, each terminated mid-copy, then main initializes",
  (b) =>
    runMany("worker_main.ts", ["twice", b], exitsWith(0, "main initialized"), { runs: FEW_RUNS }),
);

processTest("explicit events dropped without destroy() are destroyed once collected", async (b) => {
  const o = await runOnce("abandoned_events.ts", [b], undefined, ["--v8-flags=--expose-gc"]);
  exitsWith(0, "abandoned events left after collection")(o);
});
