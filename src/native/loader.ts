/**
 * Finds and opens libsched, once per process.
 *
 * Resolution order, first match wins:
 * 1. `GPUSCHED_LIB`, a path to the shared library (read only when
 *    `--allow-env=GPUSCHED_LIB` grants it). When it is set but does not load,
 *    that is an error of its own: the loader does not silently fall back.
 * 2. The platform package (`npm:@gpusched/libsched-linux-x64`, same version
 *    as this package) installed in a `node_modules` folder.
 * 3. The local build (`build/libsched.so` of a checkout, written by
 *    `deno task build`).
 *
 * When nothing loads, the error lists what was tried and why each failed.
 *
 * @module
 */

import { SchedulerError } from "../errors.ts";
import {
  installCommand,
  LIBRARY_FILE,
  lookUpPlatformLibrary,
  type PlatformLookup,
  platformPackageName,
} from "./platform_package.ts";
import { type Symbols, symbols } from "./symbols.ts";

/** The command that builds libsched in a checkout, quoted in "not found" messages. */
export const BUILD_COMMAND = "npx --yes deno@2.9.6 task build";

/** SCHED_ABI_VERSION this code was written against. */
export const ABI_VERSION = 2;

let opened: { symbols: Symbols; path: string } | undefined;

const LOCAL_FILE = Deno.build.os === "darwin"
  ? "libsched.dylib"
  : Deno.build.os === "windows"
  ? "sched.dll"
  : LIBRARY_FILE;

/** Path of a file in the local build folder of a checkout (may not exist). */
export function localLibraryPath(file: string = LOCAL_FILE): string {
  return decodeURIComponent(new URL(`../../build/${file}`, import.meta.url).pathname);
}

/** The value of GPUSCHED_LIB, or why it was not read. */
export type EnvLookup = { path: string } | { missing: string };

function lookUpEnvLibrary(): EnvLookup {
  // Query first: reading an env var without permission would prompt or throw,
  // and most users never set this one.
  const state = Deno.permissions.querySync({ name: "env", variable: "GPUSCHED_LIB" }).state;
  if (state !== "granted") {
    return { missing: "not read (no --allow-env=GPUSCHED_LIB grant)" };
  }
  const path = Deno.env.get("GPUSCHED_LIB");
  return path ? { path } : { missing: "not set" };
}

/** Where each source of the library points, as `openLibrary` takes them. */
export interface LibrarySources {
  env: EnvLookup;
  platform: PlatformLookup;
  /** The local build's path, or undefined when there is no checkout. */
  local: string | undefined;
}

/** The sources of this process: environment, platform package, local build. */
export function librarySources(): LibrarySources {
  return {
    env: lookUpEnvLibrary(),
    platform: lookUpPlatformLibrary(),
    local: import.meta.url.startsWith("file:") ? localLibraryPath() : undefined,
  };
}

/**
 * Opens the first source that loads and checks its ABI version.
 *
 * @param open `Deno.dlopen` with libsched's symbols, or a stand-in in tests.
 * @throws {SchedulerError} naming every path tried and what to do; a set
 * GPUSCHED_LIB that does not load, or a library of another ABI, is its own
 * error. A missing FFI permission throws at once.
 */
export function openLibrary<T extends { sched_abi_version(): number }>(
  sources: LibrarySources,
  open: (path: string) => T,
): { symbols: T; path: string } {
  if ("path" in sources.env) {
    const path = sources.env.path;
    let lib: T;
    try {
      lib = open(path);
    } catch (cause) {
      rethrowPermission(cause, path);
      throw new SchedulerError(
        `Cannot load libsched from GPUSCHED_LIB=${path}: ${messageOf(cause)}; ` +
          `point GPUSCHED_LIB at a libsched.so, or unset it to use the platform package or the local build`,
        { cause },
      );
    }
    return { symbols: checkAbi(lib, path, "GPUSCHED_LIB"), path };
  }
  const tried = [`GPUSCHED_LIB: ${sources.env.missing}`];
  const candidates: { label: string; path: string }[] = [];
  if ("path" in sources.platform) {
    candidates.push({ label: "platform package", path: sources.platform.path });
  } else {
    tried.push(`platform package: ${sources.platform.missing}`);
  }
  if (sources.local !== undefined) candidates.push({ label: "local build", path: sources.local });
  else tried.push("local build: none (gpusched is not running from a checkout)");
  const causes: unknown[] = [];
  for (const { label, path } of candidates) {
    let lib: T;
    try {
      lib = open(path);
    } catch (cause) {
      rethrowPermission(cause, path);
      tried.push(`${label} ${path}: ${messageOf(cause)}`);
      causes.push(cause);
      continue;
    }
    return { symbols: checkAbi(lib, path, label), path };
  }
  const name = platformPackageName();
  const fixes = [
    name === undefined
      ? undefined
      : `install the prebuilt library with \`${installCommand(name)}\` ` +
        `in a project whose deno.json has "nodeModulesDir": "auto"`,
    `in a checkout of gpusched, build it with \`${BUILD_COMMAND}\``,
    "or set GPUSCHED_LIB to a libsched.so and run with --allow-env=GPUSCHED_LIB",
  ].filter((fix) => fix !== undefined);
  throw new SchedulerError(
    `Cannot load libsched; tried, in order:\n${tried.map((t) => `  - ${t}`).join("\n")}\n` +
      `To fix it, ${fixes.join("; ")}`,
    { cause: causes.length === 1 ? causes[0] : new AggregateError(causes) },
  );
}

function checkAbi<T extends { sched_abi_version(): number }>(
  lib: T,
  path: string,
  label: string,
): T {
  const abi = lib.sched_abi_version();
  if (abi !== ABI_VERSION) {
    throw new SchedulerError(
      `libsched at ${path} (${label}) has ABI version ${abi}, expected ${ABI_VERSION}: ` +
        `use the platform package of this gpusched version or rebuild it with \`${BUILD_COMMAND}\``,
    );
  }
  return lib;
}

function rethrowPermission(cause: unknown, path: string): void {
  if (cause instanceof Deno.errors.NotCapable) {
    throw new SchedulerError(
      `Cannot load libsched from ${path}: FFI permission missing, run with --allow-ffi`,
      { cause },
    );
  }
}

function messageOf(error: unknown): string {
  // Deno puts "Could not open library: " (twice) before dlerror()'s text,
  // which already names the file and the reason.
  return (error instanceof Error ? error.message : String(error))
    .replaceAll("Could not open library: ", "");
}

/**
 * Where libsched is loaded from: the opened library's path, else where it
 * would be looked for first.
 */
export function libraryPath(): string {
  if (opened) return opened.path;
  const { env, platform, local } = librarySources();
  if ("path" in env) return env.path;
  if ("path" in platform) return platform.path;
  return local ?? LIBRARY_FILE;
}

/**
 * The opened library's symbols; opens it on first use.
 *
 * @throws {SchedulerError} when the library cannot be loaded (see
 * `openLibrary`).
 */
export function lib(): Symbols {
  if (opened) return opened.symbols;
  opened = openLibrary(librarySources(), (path) => Deno.dlopen(path, symbols).symbols);
  return opened.symbols;
}
