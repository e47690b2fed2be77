import assert from "node:assert/strict";
import { ABI_VERSION, type LibrarySources, openLibrary } from "../src/native/loader.ts";
import {
  lookUpPlatformLibrary,
  platformPackageName,
  platformSpecifier,
  resolvePublished,
  VERSION,
} from "../src/native/platform_package.ts";
import { SchedulerError } from "../mod.ts";
import denoJson from "../deno.json" with { type: "json" };
import platformJson from "../packages/libsched-linux-x64/package.json" with { type: "json" };

const fakeLib = (abi = ABI_VERSION) => ({ sched_abi_version: () => abi });

function opener(loadable: Record<string, number>) {
  const tried: string[] = [];
  const open = (path: string) => {
    tried.push(path);
    const abi = loadable[path];
    if (abi === undefined) throw new Error(`${path}: cannot open shared object file`);
    return fakeLib(abi);
  };
  return { tried, open };
}

const nothing: LibrarySources = {
  env: { missing: "not set" },
  platform: { missing: "npm:@gpusched/libsched-linux-x64@0.1.0/libsched.so is not installed" },
  local: "/repo/build/libsched.so",
};

Deno.test("the loader takes GPUSCHED_LIB first, then the platform package, then the local build", () => {
  const all: LibrarySources = {
    env: { path: "/env/libsched.so" },
    platform: { path: "/nm/libsched.so" },
    local: "/repo/build/libsched.so",
  };
  const loadable = {
    "/env/libsched.so": ABI_VERSION,
    "/nm/libsched.so": ABI_VERSION,
    "/repo/build/libsched.so": ABI_VERSION,
  };
  assert.equal(openLibrary(all, opener(loadable).open).path, "/env/libsched.so");
  const noEnv = { ...all, env: { missing: "not set" } };
  assert.equal(openLibrary(noEnv, opener(loadable).open).path, "/nm/libsched.so");
  const { tried, open } = opener({ "/repo/build/libsched.so": ABI_VERSION });
  assert.equal(openLibrary(noEnv, open).path, "/repo/build/libsched.so");
  assert.deepEqual(tried, ["/nm/libsched.so", "/repo/build/libsched.so"]);
});

Deno.test("a GPUSCHED_LIB that does not load is its own error and nothing else is tried", () => {
  const { tried, open } = opener({ "/repo/build/libsched.so": ABI_VERSION });
  assert.throws(
    () => openLibrary({ ...nothing, env: { path: "/wrong.so" } }, open),
    (e: unknown) =>
      e instanceof SchedulerError && e.message.includes("GPUSCHED_LIB=/wrong.so") &&
      e.message.includes("cannot open shared object file") && e.message.includes("unset it"),
  );
  assert.deepEqual(tried, ["/wrong.so"]);
});

Deno.test("when nothing loads the error names every place tried and every fix", () => {
  const { open } = opener({});
  assert.throws(() => openLibrary(nothing, open), (e: unknown) => {
    assert.ok(e instanceof SchedulerError);
    for (
      const part of [
        "GPUSCHED_LIB: not set",
        "platform package: npm:@gpusched/libsched-linux-x64@0.1.0/libsched.so is not installed",
        "local build /repo/build/libsched.so: /repo/build/libsched.so: cannot open",
        "deno add npm:@gpusched/libsched-linux-x64@0.1.0",
        "task build",
        "--allow-env=GPUSCHED_LIB",
      ]
    ) assert.ok(e.message.includes(part), `${JSON.stringify(part)} missing from: ${e.message}`);
    return true;
  });
  assert.throws(
    () => openLibrary({ ...nothing, local: undefined }, open),
    /local build: none \(gpusched is not running from a checkout\)/,
  );
});

Deno.test("a library of another ABI version is refused with its path and source", () => {
  const { open } = opener({ "/nm/libsched.so": ABI_VERSION + 1 });
  assert.throws(
    () => openLibrary({ ...nothing, platform: { path: "/nm/libsched.so" } }, open),
    new RegExp(`/nm/libsched.so \\(platform package\\) has ABI version ${ABI_VERSION + 1}`),
  );
});

Deno.test("the platform package is found only as a file of a node_modules folder", () => {
  const name = "@gpusched/libsched-linux-x64";
  const spec = `npm:${name}@${VERSION}/libsched.so`;
  let asked = "";
  const file = lookUpPlatformLibrary((s) => {
    asked = s;
    return "file:///app/node_modules/@gpusched/libsched-linux-x64/libsched%20x.so";
  }, name);
  assert.equal(asked, spec);
  assert.deepEqual(file, { path: "/app/node_modules/@gpusched/libsched-linux-x64/libsched x.so" });
  assert.deepEqual(lookUpPlatformLibrary((s) => s, name), {
    missing: `${spec} is not installed in a node_modules folder`,
  });
  const unresolved = lookUpPlatformLibrary(() => {
    throw new TypeError("not a dependency");
  }, name);
  assert.ok("missing" in unresolved && unresolved.missing.includes("not a dependency"));
  const none = lookUpPlatformLibrary(() => "file:///x", null);
  assert.ok("missing" in none && none.missing.startsWith("no platform package is published for"));
});

Deno.test("the platform package is version-locked to the TS package", () => {
  // The literal of resolvePublished() is this version's specifier.
  const specifier = platformSpecifier(platformPackageName("linux", "x86_64")!);
  assert.equal(typeof resolvePublished(specifier), "string");
  assert.throws(() => resolvePublished(specifier.replace(VERSION, "0.0.0")), TypeError);
  assert.equal(VERSION, denoJson.version);
  assert.equal(platformJson.version, denoJson.version);
  assert.equal(platformJson.name, platformPackageName("linux", "x86_64"));
  assert.equal(platformPackageName("darwin", "aarch64"), undefined);
  assert.equal(denoJson.license, platformJson.license);
});
