/**
 * The one path from a libsched status to a thrown error.
 *
 * @module
 */

import { NativeError } from "../errors.ts";
import { lib } from "./loader.ts";
import { Status } from "./status_codes.ts";

const messageBuffer = new Uint8Array(1024);
const decoder = new TextDecoder();

/** The calling thread's last libsched error text. */
export function lastError(): string {
  const length = lib().sched_last_error(messageBuffer, messageBuffer.length);
  const end = Math.min(length, messageBuffer.length - 1);
  return decoder.decode(messageBuffer.subarray(0, end));
}

/** A NativeError for a failed status, with libsched's message. */
export function nativeError(status: number, context?: string): NativeError {
  const text = lastError() || `libsched status ${status}`;
  return new NativeError(status, context ? `${context}: ${text}` : text);
}

/**
 * Throws a NativeError unless status is OK.
 *
 * @param status what a libsched call returned
 * @param context optional prefix saying what was being done
 */
export function unwrap(status: number, context?: string): void {
  if (status !== Status.OK) throw nativeError(status, context);
}
