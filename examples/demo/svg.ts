/**
 * The timeline as a self-contained SVG: one lane per context, a colored bar
 * per span (hover for its details), a time axis in milliseconds.
 *
 * @module
 */
import { busyMs, type Timeline } from "./timeline.ts";

const WIDTH = 1200;
/** Label column bounds; it grows with the longest label, up to MAX. */
const MIN_LABEL_WIDTH = 200, MAX_LABEL_WIDTH = 480, LABEL_X = 16, LABEL_PAD = 12;
/** Widths of a character, generous for system-ui: 12px bold lane names, 11px details. */
const NAME_CHAR = 7.6, DETAIL_CHAR = 6.4;
const RIGHT = 24;
const TOP = 64;
const LANE = 44;
const GAP = 10;
const AXIS = 36;
const PALETTE: Readonly<Record<string, string>> = {
  llm: "#4e79a7",
  vision: "#f28e2b",
  tts: "#59a14f",
  background: "#9d9da1",
};
const SPARE_COLORS = ["#e15759", "#76b7b2", "#edc948", "#b07aa1"];

/**
 * Renders a timeline.
 *
 * @param subtitle a line under the title (backend, device, wall time)
 * @returns the SVG document
 */
export function timelineSvg(timeline: Timeline, subtitle: string): string {
  const end = Math.max(1e-3, ...timeline.spans.map((s) => s.startMs + s.durationMs));
  const step = niceStep(end / 8);
  const axisEnd = Math.ceil(end / step) * step;
  const labels = timeline.lanes.map((lane) => ({
    name: lane.id,
    detail: `${lane.detail}, busy ${duration(busyMs(timeline, lane.id))}`,
  }));
  const wanted = Math.max(
    ...labels.map((l) => Math.max(l.name.length * NAME_CHAR, l.detail.length * DETAIL_CHAR)),
  );
  const LABEL_WIDTH = Math.min(
    MAX_LABEL_WIDTH,
    Math.max(MIN_LABEL_WIDTH, Math.ceil(wanted) + LABEL_X + LABEL_PAD),
  );
  // What still does not fit is squeezed to the column, never drawn over the lanes.
  const fit = (chars: number, charWidth: number) =>
    chars * charWidth > LABEL_WIDTH - LABEL_X - LABEL_PAD
      ? ` textLength="${LABEL_WIDTH - LABEL_X - LABEL_PAD}" lengthAdjust="spacingAndGlyphs"`
      : "";
  const plot = WIDTH - LABEL_WIDTH - RIGHT;
  const x = (ms: number) => LABEL_WIDTH + (ms / axisEnd) * plot;
  const lanesBottom = TOP + timeline.lanes.length * (LANE + GAP);
  const height = lanesBottom + AXIS;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" ` +
    `viewBox="0 0 ${WIDTH} ${height}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
    `<text x="16" y="24" font-size="16" font-weight="bold">${escape(timeline.title)}</text>`,
    `<text x="16" y="44" fill="#555">${escape(subtitle)}</text>`,
  ];
  for (let t = 0; t <= axisEnd + step / 2; t += step) {
    const tx = x(t).toFixed(1);
    out.push(
      `<line x1="${tx}" y1="${TOP - 6}" x2="${tx}" y2="${lanesBottom}" stroke="#e3e3e3"/>`,
      `<text x="${tx}" y="${lanesBottom + 18}" text-anchor="middle" fill="#555">${
        formatMs(t, step)
      }</text>`,
    );
  }
  out.push(
    `<text x="${WIDTH - RIGHT}" y="${
      lanesBottom + 32
    }" text-anchor="end" fill="#555">time (ms) on the device</text>`,
  );
  timeline.lanes.forEach((lane, i) => {
    const y = TOP + i * (LANE + GAP);
    const color = PALETTE[lane.id] ?? SPARE_COLORS[i % SPARE_COLORS.length]!;
    const label = labels[i]!;
    out.push(
      `<rect x="${LABEL_WIDTH}" y="${y}" width="${plot}" height="${LANE}" fill="#f6f6f6"/>`,
      `<text x="${LABEL_X}" y="${y + 18}" font-weight="bold" fill="${color}"${
        fit(label.name.length, NAME_CHAR)
      }>${escape(label.name)}</text>`,
      `<text x="${LABEL_X}" y="${y + 34}" fill="#555" font-size="11"${
        fit(label.detail.length, DETAIL_CHAR)
      }>${escape(label.detail)}</text>`,
    );
    for (const span of timeline.spans.filter((s) => s.lane === lane.id)) {
      const left = x(span.startMs);
      const width = Math.max(1, x(span.startMs + span.durationMs) - left);
      const details = Object.entries(span.args).map(([k, v]) => `\n${k}: ${v}`).join("");
      out.push(
        `<rect x="${left.toFixed(2)}" y="${y + 6}" width="${width.toFixed(2)}" height="${
          LANE - 12
        }" rx="2" fill="${color}" stroke="#ffffff" stroke-width="0.5">` +
          `<title>${escape(span.name)}: ${span.startMs.toFixed(3)} ms, lasted ${
            span.durationMs.toFixed(3)
          } ms${escape(details)}</title></rect>`,
      );
      if (width > span.name.length * 6.5 + 8) {
        out.push(
          `<text x="${(left + 4).toFixed(2)}" y="${
            y + LANE / 2 + 4
          }" fill="#ffffff" font-size="11" ` +
            `pointer-events="none">${escape(span.name)}</text>`,
        );
      }
    }
  });
  out.push("</svg>", "");
  return out.join("\n");
}

/** "12.3 ms" below a second, "4.56 s" above. */
function duration(ms: number): string {
  return ms < 1000 ? `${ms.toFixed(1)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/** 1, 2 or 5 times a power of ten, at least `rough`. */
function niceStep(rough: number): number {
  const power = 10 ** Math.floor(Math.log10(rough));
  for (const m of [1, 2, 5, 10]) if (m * power >= rough) return m * power;
  return 10 * power;
}

function formatMs(ms: number, step: number): string {
  const digits = Math.max(0, -Math.floor(Math.log10(step)));
  return ms.toFixed(digits);
}

function escape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(
    /"/g,
    "&quot;",
  );
}
