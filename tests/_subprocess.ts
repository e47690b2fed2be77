/**
 * What process-level tests share: how a child `deno` ended, and the
 * environment it inherits (the GPUSCHED_LIB override, when this run may
 * read it), so children load the same libsched as the test.
 *
 * @module
 */

/** `deno` from PATH, the command children run. */
export const DENO = "deno";

/** Why process-level tests are ignored, or undefined when children may be run. */
export const runSkip: string | undefined =
  Deno.permissions.querySync({ name: "run", command: DENO }).state === "granted"
    ? undefined
    : "needs --allow-run";

/** How a child ended and what it printed. */
export interface Outcome {
  code: number;
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
}

/** GPUSCHED_LIB for a child, when this process may read it and it is set. */
export function envPassThrough(): Record<string, string> {
  const state = Deno.permissions.querySync({ name: "env", variable: "GPUSCHED_LIB" }).state;
  const lib = state === "granted" ? Deno.env.get("GPUSCHED_LIB") : undefined;
  return lib ? { GPUSCHED_LIB: lib } : {};
}
