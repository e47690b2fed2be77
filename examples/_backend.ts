/**
 * How every example picks its backend: `--backend host|cuda|auto` on the
 * command line (default auto), or the caller's choice when a test runs it.
 */
import { parseArgs } from "node:util";

export type BackendChoice = "auto" | "cuda" | "host";

/**
 * The --backend flag of a command line (`--backend cuda` or
 * `--backend=cuda`), or undefined when there is none. Other arguments are
 * left to the example.
 *
 * @throws {RangeError} for a value other than host, cuda or auto, or a missing one
 */
export function backendOption(args: readonly string[]): BackendChoice | undefined {
  const { values } = parseArgs({
    args: [...args],
    options: { backend: { type: "string" } },
    strict: false,
    allowPositionals: true,
  });
  const value = values["backend"];
  if (value === undefined) return undefined;
  if (value === "auto" || value === "cuda" || value === "host") return value;
  throw new RangeError(
    `--backend must be host, cuda or auto, got ${
      typeof value === "string" ? JSON.stringify(value) : "no value"
    }`,
  );
}

/** The --backend flag of a command line, or "auto". */
export function backendFlag(args: readonly string[] = Deno.args): BackendChoice {
  return backendOption(args) ?? "auto";
}
