/**
 * How every example picks its backend: `--backend host|cuda|auto` on the
 * command line (default auto), or the caller's choice when a test runs it.
 */
export type BackendChoice = "auto" | "cuda" | "host";

/** The --backend flag of a command line, or "auto". */
export function backendFlag(args: readonly string[] = Deno.args): BackendChoice {
  const i = args.indexOf("--backend");
  const value = i >= 0 ? args[i + 1] : args.find((a) => a.startsWith("--backend="))?.slice(10);
  if (value === undefined) return "auto";
  if (value === "auto" || value === "cuda" || value === "host") return value;
  throw new RangeError(`--backend must be host, cuda or auto, got ${JSON.stringify(value)}`);
}
