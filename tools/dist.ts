/**
 * `deno task dist`: builds libsched for the platform package and packs it
 * with `npm pack` into out/dist/. The build is a clean Release build of both
 * backends in build-dist/ (CUDA required unless --host-only), with source
 * paths mapped away, no build id and no static symbol table (it names
 * nvcc's temporary files, which differ per run), so the same sources and
 * toolchain give the same bytes; npm pack writes fixed mtimes in a stable
 * order. Checked: two checkouts at different paths give one tarball.
 *
 * Prints the tarball's path and SHA-256 on the last line.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { ABI_VERSION } from "../src/native/loader.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { "host-only": { type: "boolean", default: false } },
  strict: true,
});

const root = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
const packageDir = `${root}/packages/libsched-linux-x64`;
const buildDir = `${root}/build-dist`;
const stageDir = `${root}/out/dist/libsched-linux-x64`;
const outDir = `${root}/out/dist`;

const manifest = JSON.parse(await Deno.readTextFile(`${packageDir}/package.json`));
const denoJson = JSON.parse(await Deno.readTextFile(`${root}/deno.json`));
if (manifest.version !== denoJson.version) {
  fail(
    `packages/libsched-linux-x64/package.json has version ${manifest.version}, deno.json ${denoJson.version}: they must match`,
  );
}

// Paths of this checkout must not end up in the binary (assert messages,
// debug strings), or two clones would build different bytes.
const prefixMap = `-ffile-prefix-map=${root}=.`;
const configure = await run("cmake", [
  "-S",
  `${root}/libsched`,
  "-B",
  buildDir,
  "-G",
  "Ninja",
  "-DCMAKE_BUILD_TYPE=Release",
  `-DSCHED_CUDA=${values["host-only"] ? "OFF" : "ON"}`,
  `-DCMAKE_C_FLAGS=${prefixMap}`,
  `-DCMAKE_CUDA_FLAGS=-Xcompiler=${prefixMap}`,
  "-DCMAKE_SHARED_LINKER_FLAGS=-Wl,--build-id=none -Wl,--strip-all",
]);
if (!values["host-only"] && !configure.includes("libsched: CUDA backend enabled")) {
  fail(
    "CMake found no CUDA toolkit: the platform package must carry both backends (install nvcc 13, or pass --host-only for a local experiment)",
  );
}
await run("cmake", ["--build", buildDir, "--target", "sched"]);

await Deno.remove(stageDir, { recursive: true }).catch(() => {});
await Deno.mkdir(stageDir, { recursive: true });
await Deno.copyFile(`${buildDir}/libsched.so`, `${stageDir}/libsched.so`);
await Deno.copyFile(`${packageDir}/package.json`, `${stageDir}/package.json`);
await Deno.copyFile(`${packageDir}/README.md`, `${stageDir}/README.md`);
await Deno.copyFile(`${root}/LICENSE`, `${stageDir}/LICENSE`);
// What users get must load: open the staged library and check its ABI.
{
  const staged = Deno.dlopen(`${stageDir}/libsched.so`, {
    sched_abi_version: { parameters: [], result: "i32" },
  });
  const abi = staged.symbols.sched_abi_version();
  staged.close();
  if (abi !== ABI_VERSION) {
    fail(`the built libsched has ABI version ${abi}, expected ${ABI_VERSION}`);
  }
}
const epoch = new Date("2000-01-01T00:00:00Z");
for (const file of ["libsched.so", "package.json", "README.md", "LICENSE"]) {
  await Deno.utime(`${stageDir}/${file}`, epoch, epoch);
}

const packed = await run("npm", ["pack", "--json", "--pack-destination", outDir], {
  cwd: stageDir,
  // Offline: packing needs no registry, and must not read a user's .npmrc hooks.
  env: { npm_config_ignore_scripts: "true", npm_config_offline: "true" },
});
const [{ filename }] = JSON.parse(packed) as [{ filename: string }];
const tarball = `${outDir}/${filename}`;
const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", await Deno.readFile(tarball)));
const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
console.log(`${tarball} sha256:${hex}`);

async function run(
  cmd: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<string> {
  console.error(`+ ${cmd} ${args.join(" ")}`);
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "inherit", ...options })
    .output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    console.error(text);
    fail(`${cmd} exited with code ${out.code}`);
  }
  return text;
}

function fail(message: string): never {
  console.error(`dist: ${message}`);
  Deno.exit(1);
}
