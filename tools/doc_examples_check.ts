/**
 * Part of `deno task check`: every function and class that mod.ts exports
 * has an `@example` in its JSDoc (`deno doc --lint` only asks for a JSDoc,
 * and `deno test --doc` runs the examples that exist).
 *
 * @module
 */

interface DocDeclaration {
  kind: string;
  jsDoc?: { tags?: { kind: string }[] };
  location: { filename: string; line: number };
}
interface DocSymbol {
  name: string;
  declarations: DocDeclaration[];
}

const out = await new Deno.Command(Deno.execPath(), {
  args: ["doc", "--json", new URL("../mod.ts", import.meta.url).pathname],
  stdout: "piped",
}).output();
if (!out.success) Deno.exit(1);
const doc = JSON.parse(new TextDecoder().decode(out.stdout));
const symbols: DocSymbol[] = Object.values(doc.nodes as Record<string, { symbols?: DocSymbol[] }>)
  .flatMap((node) => node.symbols ?? []);
const missing: string[] = [];
for (const { name, declarations } of symbols) {
  const code = declarations.filter((d) => d.kind === "function" || d.kind === "class");
  if (code.length === 0) continue;
  // An overloaded function needs the example on one of its signatures.
  if (code.some((d) => d.jsDoc?.tags?.some((tag) => tag.kind === "example"))) continue;
  const { filename, line } = code[0]!.location;
  missing.push(`${name} (${filename.replace(/^.*?\/(src\/|mod\.ts)/, "$1")}:${line})`);
}
if (missing.length > 0) {
  console.error(`Exported functions and classes without an @example:\n  ${missing.join("\n  ")}`);
  Deno.exit(1);
}
console.log(
  `every exported function and class of mod.ts has an @example (${symbols.length} symbols)`,
);
