/**
 * The demo's closing report: where it ran, what each context was given and
 * used, what each stage did and how long it took, where the files are.
 *
 * @module
 */
import { type ContextUsage, type DeviceInfo, MB } from "../../mod.ts";

/** One context's row. */
export interface ContextRow {
  readonly name: string;
  readonly qos: string;
  readonly priority: number;
  readonly usage: ContextUsage;
  /** Times one of its buffers was moved out to host memory. */
  readonly evictions: number;
}

/** One stage's row. */
export interface StageRow {
  readonly name: string;
  /** What it did, in words. */
  readonly work: string;
  /** Device milliseconds its stream spent on the stage's spans. */
  readonly busyMs: number;
  /** Host milliseconds from its first work queued to its result in hand. */
  readonly latencyMs: number;
  /** Appended to the latency, e.g. per-token figures. */
  readonly note?: string;
}

/** Everything the report shows. */
export interface DemoReport {
  readonly backend: string;
  readonly device: DeviceInfo;
  readonly memoryLimit: number;
  readonly availableAtEnd: number;
  /** A line on SM partitions, or undefined when none were made. */
  readonly partitions: string | undefined;
  readonly contexts: readonly ContextRow[];
  readonly stages: readonly StageRow[];
  /** Host milliseconds of the concurrent llm + vision phase. */
  readonly concurrentMs: number;
  /** Device milliseconds during which llm and vision both ran work. */
  readonly overlapMs: number;
  readonly pressure: ReadonlyMap<string, number>;
  readonly wallMs: number;
  /** The sleep phase's line (examples/demo/sleep_phase.ts). */
  readonly sleepWake?: string;
  readonly text: string;
  readonly seen: string;
  readonly files: readonly string[];
}

/** The report, a line per entry. */
export function formatReport(r: DemoReport): string[] {
  const { device } = r;
  const compute = r.backend === "cuda"
    ? `sm_${device.computeCapability.join("")}, ${device.smCount} SMs`
    : `${device.smCount} simulated SMs, one worker thread per stream`;
  const lines = [
    "",
    "== gpusched multi-model demo ==",
    `backend     ${r.backend}`,
    `device      ${device.name}: ${compute}`,
    `memory      ${mib(r.memoryLimit)} managed (memoryLimit, kept small so contexts compete), ` +
    `${mib(r.availableAtEnd)} unclaimed at the end`,
  ];
  if (r.partitions !== undefined) lines.push(`partitions  ${r.partitions}`);
  lines.push(
    "",
    ...table(
      ["context", "qos", "priority", "budget", "reserved", "used", "peak", "evictions"],
      r.contexts.map((c) => [
        c.name,
        c.qos,
        String(c.priority),
        mib(c.usage.max),
        mib(c.usage.reserved),
        mib(c.usage.used),
        mib(c.usage.peak),
        String(c.evictions),
      ]),
    ),
  );
  if (r.pressure.size > 0) {
    const list = [...r.pressure].map(([name, n]) => `${name} x${n}`).join(", ");
    lines.push(`memory pressure (allocations that needed evictions first): ${list}`);
  }
  lines.push(
    "",
    ...table(
      ["stage", "work", "busy (device)", "latency (host)"],
      r.stages.map((s) => [
        s.name,
        s.work,
        ms(s.busyMs),
        ms(s.latencyMs) + (s.note ? `  ${s.note}` : ""),
      ]),
    ),
    "",
    `llm + vision ran concurrently for ${ms(r.concurrentMs)}; ` +
      `their streams overlapped on the device for ${ms(r.overlapMs)}`,
    `wall time   ${ms(r.wallMs)}`,
    ...(r.sleepWake ? [`sleep/wake  ${r.sleepWake}`] : []),
    "",
    `llm said    "${r.text}"`,
    `vision saw  ${r.seen}`,
    "",
    "files",
    ...r.files.map((f) => `  ${f}`),
  );
  return lines;
}

/** Bytes in MiB, with a decimal below 10 MiB. */
export function mib(bytes: number): string {
  const m = bytes / MB;
  return `${m === 0 || m >= 10 ? m.toFixed(0) : m.toFixed(1)} MiB`;
}

/** Milliseconds with a sensible number of digits. */
export function ms(value: number): string {
  return `${value >= 100 ? value.toFixed(0) : value >= 1 ? value.toFixed(1) : value.toFixed(3)} ms`;
}

function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join("  ");
  return [line(header), ...rows.map(line)];
}
