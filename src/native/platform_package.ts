/**
 * The prebuilt libsched: an npm platform package per OS and CPU
 * (esbuild-style), version-locked to this package, found through the
 * module resolver so that looking for it needs no permission.
 *
 * @module
 */

/** This package's version; the platform package carries the same one. */
export const VERSION = "0.1.0";

/** The library file inside a platform package. */
export const LIBRARY_FILE = "libsched.so";

/** Platform packages that are built and published, by `os-arch`. */
const PLATFORM_PACKAGES: Readonly<Record<string, string>> = {
  "linux-x86_64": "@gpusched/libsched-linux-x64",
};

/** The platform package for `os` and `arch`, or undefined when none is shipped. */
export function platformPackageName(
  os: string = Deno.build.os,
  arch: string = Deno.build.arch,
): string | undefined {
  return PLATFORM_PACKAGES[`${os}-${arch}`];
}

/** The npm specifier of the library in this platform's package. */
export function platformSpecifier(name: string): string {
  return `npm:${name}@${VERSION}/${LIBRARY_FILE}`;
}

/** The command that installs the platform package, quoted in errors and the README. */
export function installCommand(name: string): string {
  return `deno add npm:${name}@${VERSION}`;
}

/** Where the platform package's library is, or why it cannot be used. */
export type PlatformLookup = { path: string } | { missing: string };

/**
 * Resolves the platform package's library to a file. Resolution is
 * synchronous and needs no permission; it gives a `file:` URL only when the
 * package is installed in a `node_modules` folder (`"nodeModulesDir": "auto"`
 * or "manual" with a package.json), which a shared library needs: Deno
 * cannot `dlopen` a file inside its npm cache without knowing where the
 * cache is.
 */
export function lookUpPlatformLibrary(
  resolve: (specifier: string) => string = resolvePublished,
  name: string | null = platformPackageName() ?? null,
): PlatformLookup {
  if (name === null) {
    return {
      missing: `no platform package is published for ${Deno.build.os}-${Deno.build.arch}`,
    };
  }
  const specifier = platformSpecifier(name);
  let url: string;
  try {
    url = resolve(specifier);
  } catch (error) {
    return { missing: `${specifier} does not resolve: ${messageOf(error)}` };
  }
  if (!url.startsWith("file:")) {
    return { missing: `${specifier} is not installed in a node_modules folder` };
  }
  return { path: decodeURIComponent(new URL(url).pathname) };
}

/**
 * `import.meta.resolve` of a published platform package's library. Each
 * call has its specifier written out: deno publish can only analyze (and
 * keeps working without an import map) a call whose argument is a literal.
 * A test checks that each literal is `platformSpecifier()` of its package.
 */
export function resolvePublished(specifier: string): string {
  switch (specifier) {
    case "npm:@gpusched/libsched-linux-x64@0.1.0/libsched.so":
      return import.meta.resolve("npm:@gpusched/libsched-linux-x64@0.1.0/libsched.so");
    default:
      throw new TypeError(`No platform package is published as ${specifier}`);
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
