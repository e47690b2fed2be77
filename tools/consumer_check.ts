/**
 * `deno task test:consumer`: proves the README's "Using it from JSR" flow
 * offline. It takes the platform package tarball made by `deno task dist`,
 * serves it from a one-package npm registry on 127.0.0.1, and in a fresh
 * project outside the repository (its own deno.json):
 * 1. copies the TypeScript package exactly as `deno publish --dry-run` lists
 *    it (JSR is not reachable here; "@gpusched/core" maps to the copy),
 * 2. runs the README's `deno add` for the platform package,
 * 3. runs the README's Quick start with the README's run command (only the
 *    documented permissions, GPUSCHED_LIB unset), and checks it printed its
 *    result and loaded libsched from the platform package.
 * Throws (exit code 1) with the reason on the first failure.
 *
 * @module
 */

import { serveTarball } from "./local_npm_registry.ts";
import { installCommand, platformPackageName, VERSION } from "../src/native/platform_package.ts";

const root = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
const readme = await Deno.readTextFile(`${root}/README.md`);
const denoJson = JSON.parse(await Deno.readTextFile(`${root}/deno.json`));
const name = platformPackageName() ?? fail("no platform package for this machine");
const tarball = Deno.args[0] ??
  `${root}/out/dist/${name.replace("@", "").replace("/", "-")}-${VERSION}.tgz`;

// The commands as the README writes them: the test runs what users read.
const addLine = `deno add jsr:@gpusched/core npm:${name}@${VERSION}`;
const runLine = readme.match(/^\s*(deno run --allow-ffi[^\n]* main\.ts)$/m)?.[1] ??
  fail("README.md has no `deno run --allow-ffi ... main.ts` line");
if (!readme.includes(addLine)) fail(`README.md does not say \`${addLine}\``);
if (!readme.includes(`"nodeModulesDir": "auto"`)) {
  fail(`README.md does not say to set "nodeModulesDir": "auto"`);
}
const quickStart = readme.match(/## Quick start\n\n```ts\n([\s\S]*?)```/)?.[1] ??
  fail("README.md has no Quick start ts block");

const project = await Deno.makeTempDir({ prefix: "gpusched-consumer-" });
if (project.startsWith(root)) fail(`${project} is inside the repository`);
console.log(`consumer project: ${project}`);
let steps = 0;
try {
  const files = await publishedFiles();
  for (const file of files) {
    await Deno.mkdir(`${project}/gpusched_core/${file}`.replace(/\/[^/]*$/, ""), {
      recursive: true,
    });
    await Deno.copyFile(`${root}/${file}`, `${project}/gpusched_core/${file}`);
  }
  // A deno.json in a folder of the project is a config Deno reads there:
  // `deno add` would install the repository's dev-only imports (test
  // libraries), which a JSR consumer never gets (only what the module graph
  // uses). The library imports nothing from them; the copy drops them.
  const copied = JSON.parse(await Deno.readTextFile(`${project}/gpusched_core/deno.json`));
  delete copied.imports;
  await Deno.writeTextFile(`${project}/gpusched_core/deno.json`, JSON.stringify(copied));
  console.log(
    `copied the ${files.length} files deno publish --dry-run lists (deno.json without its dev imports)`,
  );

  // The steps are the README's, numbered as it numbers them.
  step(`write deno.json with "nodeModulesDir": "auto"`);
  await Deno.writeTextFile(
    `${project}/deno.json`,
    JSON.stringify({
      nodeModulesDir: "auto",
      imports: packageImports(),
    }),
  );

  await using registry = await serveTarball(tarball, name, VERSION);
  step(`${installCommand(name)} (the README's \`${addLine}\` without the JSR half)`);
  await sh(installCommand(name), registry.url);

  step(`write main.ts (the README Quick start), then ${runLine}`);
  await Deno.writeTextFile(`${project}/main.ts`, quickStart);
  const output = await sh(runLine, registry.url);
  if (!/^hello /m.test(output)) fail(`the Quick start did not print "hello ...":\n${output}`);

  // Which library did it load? Nothing else but the platform package exists there.
  await Deno.writeTextFile(
    `${project}/which.ts`,
    `import "@gpusched/core";\nimport { lib, libraryPath } from "./gpusched_core/src/native/loader.ts";\n` +
      `lib();\nconsole.log(libraryPath());\n`,
  );
  const loaded = (await sh(runLine.replace("main.ts", "which.ts"), registry.url)).trim();
  if (!loaded.startsWith(`${project}/node_modules/`) || !loaded.endsWith("/libsched.so")) {
    fail(`libsched was loaded from ${loaded}, not from the platform package`);
  }
  console.log(`libsched loaded from ${loaded}`);
  console.log(
    `consumer flow passed: ${steps} steps (deno add of jsr:@gpusched/core replaced by the copy)`,
  );
} finally {
  await Deno.remove(project, { recursive: true });
}

function step(what: string): void {
  steps += 1;
  console.log(`step ${steps}: ${what}`);
}

/** Runs `line` in the consumer project, with no GPUSCHED_LIB, against the local registry. */
async function sh(line: string, registry: string): Promise<string> {
  const env: Record<string, string> = {
    ...Deno.env.toObject(),
    NPM_CONFIG_REGISTRY: registry,
    // The README's commands say `deno`: this Deno, wherever it came from (npx in CI).
    PATH: `${Deno.execPath().replace(/\/[^/]*$/, "")}:${Deno.env.get("PATH") ?? ""}`,
    NO_COLOR: "1",
  };
  delete env["GPUSCHED_LIB"];
  const out = await new Deno.Command("bash", {
    args: ["-c", line],
    cwd: project,
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const err = new TextDecoder().decode(out.stderr);
  if (!out.success) fail(`\`${line}\` exited with ${out.code}:\n${text}${err}`);
  echoIndented(text);
  return text;
}

function echoIndented(text: string): void {
  if (text.trim()) console.log(text.trimEnd().replace(/^/gm, "  | "));
}

/** "@gpusched/core" and each subpath deno.json exports, mapped to the copy. */
function packageImports(): Record<string, string> {
  const exportsMap: Record<string, string> = typeof denoJson.exports === "string"
    ? { ".": denoJson.exports }
    : denoJson.exports;
  return Object.fromEntries(
    Object.entries(exportsMap).map((
      [key, file],
    ) => [`${denoJson.name}${key.slice(1)}`, `./gpusched_core/${file.replace(/^\.\//, "")}`]),
  );
}

/** The files of the TS package, as `deno publish --dry-run` lists them. */
async function publishedFiles(): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["publish", "--dry-run", "--allow-dirty"],
    cwd: root,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) fail(`deno publish --dry-run failed:\n${text}`);
  const prefix = `file://${root}/`;
  const files = [...text.matchAll(/^\s+(file:\/\/\S+) \(/gm)].map((m) => m[1]!)
    .filter((url) => url.startsWith(prefix)).map((url) =>
      decodeURIComponent(url.slice(prefix.length))
    );
  if (!files.includes("mod.ts")) fail(`deno publish --dry-run listed no mod.ts:\n${text}`);
  return files;
}

function fail(message: string): never {
  // Thrown, not Deno.exit: the finally above removes the temp project.
  throw new Error(`consumer check failed: ${message}`);
}
