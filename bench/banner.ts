/**
 * Prints the bench banner ("gpusched bench: backend ..., device ...") once,
 * before the deno bench suites run (they do not print it themselves; see
 * benchScheduler). Run by the bench tasks.
 */
import { shutdown } from "../mod.ts";
import { benchScheduler } from "./_backend.ts";

benchScheduler();
shutdown();
