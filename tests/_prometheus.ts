/**
 * Reading Prometheus text (format 0.0.4) in tests: the npm parser
 * (parse-prometheus-text-format, a port of the Prometheus Python client's
 * parser) for families and samples, and a strict line grammar of our own,
 * because that parser is lenient about malformed lines.
 */
import assert from "node:assert/strict";
import parsePrometheusTextFormat from "parse-prometheus-text-format";

/** One metric family as the parser returns it. */
export interface ParsedFamily {
  name: string;
  help: string;
  type: "GAUGE" | "COUNTER" | "UNTYPED" | "HISTOGRAM" | "SUMMARY";
  metrics: { value: string; labels?: Record<string, string> }[];
}

/** Parses exposition text with the npm parser, after checking every line's grammar. */
export function parsePrometheus(text: string): ParsedFamily[] {
  assertExpositionGrammar(text);
  return parsePrometheusTextFormat(text) as ParsedFamily[];
}

const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const LABEL_VALUE = '"(?:[^"\\\\\\n]|\\\\[\\\\"n])*"';
const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*=${LABEL_VALUE}`;
const VALUE = "(?:[-+]?[0-9]+(?:\\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|NaN|[+-]Inf)";
const SAMPLE = new RegExp(`^${NAME}(?:\\{(?:${LABEL}(?:,${LABEL})*)?\\})? ${VALUE}$`);
const HELP = new RegExp(`^# HELP ${NAME} (?:[^\\\\\\n]|\\\\[\\\\n])*$`);
const TYPE = new RegExp(`^# TYPE ${NAME} (?:counter|gauge|histogram|summary|untyped)$`);

/**
 * Every line is a HELP, a TYPE or a sample of the 0.0.4 grammar; the text
 * ends with a line feed; each family's HELP and TYPE come before its samples.
 */
export function assertExpositionGrammar(text: string): void {
  assert.ok(text.endsWith("\n"), "exposition text ends with a line feed");
  const typed = new Set<string>();
  for (const line of text.slice(0, -1).split("\n")) {
    if (line.startsWith("# HELP ")) assert.match(line, HELP);
    else if (line.startsWith("# TYPE ")) {
      assert.match(line, TYPE);
      typed.add(line.split(" ")[2]!);
    } else {
      assert.match(line, SAMPLE, `a sample line: ${JSON.stringify(line)}`);
      const name = line.match(new RegExp(`^${NAME}`))![0];
      assert.ok(typed.has(name), `# TYPE of ${name} comes before its samples`);
    }
  }
}

/** The family called `name`; fails when absent. */
export function family(families: ParsedFamily[], name: string): ParsedFamily {
  const found = families.find((f) => f.name === name);
  assert.ok(found, `family ${name} present`);
  return found;
}

/** The value of the sample of `name` whose `context` label is `context`, as a number. */
export function contextSample(families: ParsedFamily[], name: string, context: string): number {
  const sample = family(families, name).metrics.find((m) => m.labels?.["context"] === context);
  assert.ok(sample, `${name} has a sample for context ${JSON.stringify(context)}`);
  return Number(sample.value);
}
