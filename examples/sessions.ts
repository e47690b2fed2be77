/**
 * Context sessions (API.md "Sessions"): a sync scope for synchronous code,
 * an async scope that follows its task across every await, and many of
 * them concurrently without leaking into each other.
 *
 * Run: deno run --allow-ffi examples/sessions.ts [--backend host|cuda]
 */
import {
  alloc,
  contextSession,
  createContext,
  currentContext,
  initialize,
  MB,
  shutdown,
} from "../mod.ts";
import { type BackendChoice, backendFlag } from "./_backend.ts";

/** Runs the example; returns what it printed, for tests. */
export async function main(backend: BackendChoice = backendFlag()): Promise<string[]> {
  const lines: string[] = [];
  initialize({ backend });
  try {
    const llm = createContext("llm", { maxVram: 64 * MB });
    const tts = createContext("tts", { maxVram: 64 * MB });
    {
      using _s = contextSession(llm); // sync scope
      using buf = alloc(4 * MB); // charged to llm
      lines.push(`sync scope: ${currentContext()?.name}, buffer of ${buf.context.name}`);
    }
    lines.push(`after the scope: ${currentContext()?.name ?? "no context"}`);

    const names = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        contextSession(i % 2 ? llm : tts, async (ctx) => {
          await new Promise((r) => setTimeout(r, i % 5));
          using buf = alloc(64 * 1024);
          return currentContext() === ctx && buf.context === ctx;
        })),
    );
    lines.push(`100 concurrent async sessions, all saw their own context: ${names.every(Boolean)}`);
  } finally {
    shutdown();
  }
  return lines;
}

if (import.meta.main) console.log((await main()).join("\n"));
