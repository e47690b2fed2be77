/**
 * Finds and opens libsched, once per process.
 *
 * Resolution order: the `GPUSCHED_LIB` environment variable (a path to the
 * shared library), then the local build (`build/libsched.so` at the
 * repository root, written by `deno task build`).
 *
 * @module
 */

import { SchedulerError } from "../errors.ts";
import { type Symbols, symbols } from "./symbols.ts";

/** The command that builds libsched, quoted in every "not found" message. */
export const BUILD_COMMAND = "npx --yes deno@2.9.6 task build";

const LIBRARY_FILE = Deno.build.os === "darwin"
  ? "libsched.dylib"
  : Deno.build.os === "windows"
  ? "sched.dll"
  : "libsched.so";

let opened: Symbols | undefined;

/** Path of the local build's library (may not exist). */
export function localLibraryPath(file: string = LIBRARY_FILE): string {
  return decodeURIComponent(new URL(`../../build/${file}`, import.meta.url).pathname);
}

function envLibraryPath(): string | undefined {
  // Query first: reading an env var without permission would prompt or throw,
  // and most users never set this one.
  const state = Deno.permissions.querySync({ name: "env", variable: "GPUSCHED_LIB" }).state;
  if (state !== "granted") return undefined;
  return Deno.env.get("GPUSCHED_LIB") || undefined;
}

/** Where libsched will be loaded from. */
export function libraryPath(): string {
  return envLibraryPath() ?? localLibraryPath();
}

/**
 * The opened library's symbols; opens it on first use.
 *
 * @throws {SchedulerError} when the library cannot be loaded; the message
 * gives the command that builds it and the loader's error is the `cause`.
 */
export function lib(): Symbols {
  if (opened) return opened;
  const path = libraryPath();
  try {
    opened = Deno.dlopen(path, symbols).symbols;
  } catch (cause) {
    if (cause instanceof Deno.errors.NotCapable) {
      throw new SchedulerError(
        `Cannot load libsched from ${path}: FFI permission missing, run with --allow-ffi`,
        { cause },
      );
    }
    throw new SchedulerError(
      `Cannot load libsched from ${path}: build it with \`${BUILD_COMMAND}\` ` +
        `or set GPUSCHED_LIB to the library's path`,
      { cause },
    );
  }
  const abi = opened.sched_abi_version();
  if (abi !== ABI_VERSION) {
    opened = undefined;
    throw new SchedulerError(
      `libsched at ${path} has ABI version ${abi}, expected ${ABI_VERSION}: rebuild it with \`${BUILD_COMMAND}\``,
    );
  }
  return opened;
}

/** SCHED_ABI_VERSION this code was written against. */
export const ABI_VERSION = 2;
