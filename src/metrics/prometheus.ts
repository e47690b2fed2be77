/**
 * `formatPrometheus()`: a metrics snapshot in the Prometheus text
 * exposition format, version 0.0.4.
 *
 * @module
 */

import { show } from "../validate.ts";
import {
  type ContextCounters,
  type ContextMetrics,
  type DeviceMetrics,
  getMetrics,
  type Metrics,
} from "./snapshot.ts";

/**
 * The `Content-Type` a `/metrics` endpoint serves `formatPrometheus()` output with.
 *
 * @example
 * ```ts ignore
 * import { formatPrometheus, PROMETHEUS_CONTENT_TYPE } from "@gpusched/core";
 * Deno.serve({ hostname: "127.0.0.1", port: 9464 }, () =>
 *   new Response(formatPrometheus(), { headers: { "content-type": PROMETHEUS_CONTENT_TYPE } }));
 * ```
 */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

interface Family<T> {
  readonly name: string;
  readonly type: "gauge" | "counter";
  readonly help: string;
  readonly value: (item: T) => number;
}

const DEVICE_FAMILIES: readonly Family<DeviceMetrics>[] = [
  {
    name: "gpusched_device_memory_limit_bytes",
    type: "gauge",
    help: "Bytes of device memory the scheduler manages on the device.",
    value: (d) => d.memoryLimit,
  },
  {
    name: "gpusched_device_available_bytes",
    type: "gauge",
    help:
      "Bytes a new reservation or best-effort allocation could still get (cached memory counts).",
    value: (d) => d.available,
  },
];

function gauge(
  field: "used" | "max" | "reserved" | "cached" | "evicted" | "peak",
  help: string,
): Family<ContextMetrics> {
  return { name: `gpusched_context_${field}_bytes`, type: "gauge", help, value: (c) => c[field] };
}

function counter(field: keyof ContextCounters, name: string, help: string): Family<ContextMetrics> {
  return {
    name: `gpusched_context_${name}_total`,
    type: "counter",
    help,
    value: (c) => c.counters[field],
  };
}

const CONTEXT_FAMILIES: readonly Family<ContextMetrics>[] = [
  gauge("used", "Bytes held by the context's live buffers (size classes included)."),
  gauge("max", "The context's budget (maxVram): it never holds more."),
  gauge("reserved", "Bytes reserved for the context at creation, whether used or not."),
  gauge("cached", "Freed bytes the context's pool keeps for reuse; available to everyone."),
  gauge("evicted", "Bytes of the context's buffers currently moved out to host memory."),
  gauge("peak", "Highest bytes the context's live buffers held."),
  counter("allocations", "allocations", "Successful allocations of the context, cached or not."),
  counter(
    "allocationFailures",
    "allocation_failures",
    "Allocations of the context refused with VramBudgetExceededError.",
  ),
  counter("evictions", "evictions", "Buffers of the context moved out to host memory."),
  counter("restores", "restores", "Buffers of the context moved back to the device."),
  counter(
    "pressureEvents",
    "pressure_events",
    "Memory-pressure handler calls made for allocations of the context.",
  ),
];

/**
 * The Prometheus text exposition format (0.0.4) of a snapshot: gauges
 * `gpusched_device_{memory_limit,available}_bytes{device}` and
 * `gpusched_context_{used,max,reserved,cached,evicted,peak}_bytes{context,qos,device}`,
 * counters `gpusched_context_{allocations,allocation_failures,evictions,restores,pressure_events}_total{context,qos,device}`,
 * each family with `# HELP` and `# TYPE` (also when it has no sample), label
 * values escaped as the format requires. Serve it with
 * `PROMETHEUS_CONTENT_TYPE`.
 *
 * @param metrics a snapshot from `getMetrics()` (or its JSON round trip); default: a fresh one
 * @returns the exposition text, ending with a newline
 *
 * @example
 * ```ts
 * import { createContext, formatPrometheus, initialize, MB, shutdown } from "@gpusched/core";
 * import assert from "node:assert/strict";
 * initialize({ backend: "host" });
 * createContext('say "hi"', { maxVram: 64 * MB });
 * const text = formatPrometheus();
 * assert.ok(text.includes("# TYPE gpusched_context_used_bytes gauge\n"));
 * assert.ok(text.includes('gpusched_context_max_bytes{context="say \\"hi\\"",qos="burstable",device="0"} 67108864\n'));
 * shutdown();
 * ```
 * @throws {TypeError} when `metrics` is not a snapshot
 * @throws {SchedulerError} without `metrics`, before `initialize()`
 */
export function formatPrometheus(metrics?: Metrics): string {
  const m = metrics === undefined ? getMetrics() : requireMetrics(metrics);
  const lines: string[] = [];
  for (const family of DEVICE_FAMILIES) {
    writeFamily(lines, family, m.devices, (d) => `{device="${labelValue(d.index)}"}`);
  }
  for (const family of CONTEXT_FAMILIES) {
    writeFamily(
      lines,
      family,
      m.contexts,
      (c) =>
        `{context="${labelValue(c.name)}",qos="${labelValue(c.qos)}",device="${
          labelValue(c.device)
        }"}`,
    );
  }
  return lines.join("\n") + "\n";
}

function writeFamily<T>(
  lines: string[],
  family: Family<T>,
  items: readonly T[],
  labels: (item: T) => string,
): void {
  lines.push(
    `# HELP ${family.name} ${helpText(family.help)}`,
    `# TYPE ${family.name} ${family.type}`,
  );
  for (const item of items) {
    lines.push(`${family.name}${labels(item)} ${sampleValue(family.value(item))}`);
  }
}

/** Label values escape backslash, double quote and line feed (text format 0.0.4). */
function labelValue(value: string | number): string {
  return String(value).replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

/** HELP text escapes backslash and line feed only. */
function helpText(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

/** Go's ParseFloat spellings for the special values; integers as digits. */
function sampleValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

function requireMetrics(metrics: unknown): Metrics {
  const m = metrics as Partial<Metrics> | null;
  if (
    typeof m !== "object" || m === null || !Array.isArray(m.devices) || !Array.isArray(m.contexts)
  ) {
    throw new TypeError(
      `Cannot format metrics: expected a snapshot from getMetrics() with devices and contexts arrays, got ${
        show(metrics)
      }`,
    );
  }
  for (const c of m.contexts) {
    if (typeof c !== "object" || c === null || typeof c.counters !== "object" || !c.counters) {
      throw new TypeError(
        `Cannot format metrics: every context needs counters, got ${show(c)}`,
      );
    }
  }
  return m as Metrics;
}
