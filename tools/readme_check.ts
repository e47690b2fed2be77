/**
 * `deno task check:readme`: type-checks every ```ts block of README.md the
 * way a user would paste it, with "@gpusched/core" (and each subpath
 * deno.json exports) mapped to this checkout's files. A fragment that uses names it does not define says so in an HTML
 * comment just above it, invisible on the rendered page:
 * `<!-- prelude: declare const llm: ExecutionContext; -->`; the prelude is
 * prepended (its imports from "@gpusched/core" are mapped too).
 *
 * Writes the blocks to out/readme/ and runs `deno check` on them.
 *
 * @module
 */

const root = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
const readme = await Deno.readTextFile(`${root}/README.md`);
const outDir = `${root}/out/readme`;
/** "@gpusched/core" and its subpaths ("@gpusched/core/cublas"), as deno.json exports them. */
const denoJson = JSON.parse(await Deno.readTextFile(`${root}/deno.json`));
const exportsMap: Record<string, string> = typeof denoJson.exports === "string"
  ? { ".": denoJson.exports }
  : denoJson.exports;
const specifiers = Object.entries(exportsMap).map(([key, file]) => ({
  specifier: `${denoJson.name}${key.slice(1)}`,
  url: new URL(file, `file://${root}/`).href,
}));

/** Each ts block with its prelude and the README line it starts on. */
function tsBlocks(markdown: string): { line: number; code: string }[] {
  const blocks: { line: number; code: string }[] = [];
  for (
    const match of markdown.matchAll(/(?:<!-- prelude: ([\s\S]*?) -->\n+)?```ts\n([\s\S]*?)```/g)
  ) {
    const line = markdown.slice(0, match.index).split("\n").length + (match[1] ? 2 : 0);
    blocks.push({ line, code: `${match[1] ?? ""}\n${match[2]}` });
  }
  return blocks;
}

const blocks = tsBlocks(readme);
if (blocks.length === 0) throw new Error("README.md has no ts blocks");
await Deno.remove(outDir, { recursive: true }).catch(() => {});
await Deno.mkdir(outDir, { recursive: true });
const files: string[] = [];
for (const { line, code } of blocks) {
  const file = `${outDir}/readme_line_${line}.ts`;
  // Each block is its own module, like a user's file.
  let mapped = code;
  for (const { specifier, url } of specifiers) {
    mapped = mapped.replaceAll(`from "${specifier}"`, `from "${url}"`);
  }
  await Deno.writeTextFile(file, `${mapped}\nexport {};\n`);
  files.push(file);
}
console.log(
  `checking ${files.length} ts blocks of README.md (files in out/readme/, named by line)`,
);
const { success } = await new Deno.Command(Deno.execPath(), {
  args: ["check", ...files],
  cwd: root,
  stdout: "inherit",
  stderr: "inherit",
}).output();
if (!success) Deno.exit(1);
