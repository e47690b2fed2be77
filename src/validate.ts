/**
 * Argument checks shared by every public function. Messages follow one
 * shape: `<what was being done>: <option> must be <rule>, got <value>`.
 *
 * @module
 */

/** Shows a value the way a message should quote it. */
export function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "function") return "a function";
  if (value === null) return "null";
  if (typeof value === "object") {
    try {
      return JSON.stringify(value) ?? String(value);
    } catch {
      return Object.prototype.toString.call(value);
    }
  }
  return String(value);
}

/** A number of any value (NaN and infinities too): the type check alone, before a range check. */
export function requireNumber(value: unknown, option: string, doing: string): number {
  if (typeof value !== "number") {
    throw new TypeError(`${doing}: ${option} must be a number, got ${show(value)}`);
  }
  return value;
}

/** A byte count or index: a non-negative safe integer. */
export function requireNonNegativeInteger(value: unknown, option: string, doing: string): number {
  if (typeof value !== "number") {
    throw new TypeError(`${doing}: ${option} must be a number, got ${show(value)}`);
  }
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${doing}: ${option} must be a non-negative integer, got ${show(value)}`);
  }
  return value;
}

/** A size: a positive safe integer. */
export function requirePositiveInteger(value: unknown, option: string, doing: string): number {
  if (typeof value !== "number") {
    throw new TypeError(`${doing}: ${option} must be a number, got ${show(value)}`);
  }
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(`${doing}: ${option} must be a positive integer, got ${show(value)}`);
  }
  return value;
}

/** An integer in [min, max]. */
export function requireIntegerIn(
  value: unknown,
  min: number,
  max: number,
  option: string,
  doing: string,
): number {
  if (typeof value !== "number") {
    throw new TypeError(`${doing}: ${option} must be a number, got ${show(value)}`);
  }
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(
      `${doing}: ${option} must be an integer from ${min} to ${max}, got ${show(value)}`,
    );
  }
  return value;
}

/** One of a fixed set of strings. */
export function requireOneOf<T extends string>(
  value: unknown,
  allowed: readonly T[],
  option: string,
  doing: string,
): T {
  if (typeof value !== "string") {
    throw new TypeError(`${doing}: ${option} must be a string, got ${show(value)}`);
  }
  if (!(allowed as readonly string[]).includes(value)) {
    throw new RangeError(
      `${doing}: ${option} must be one of ${
        allowed.map((a) => JSON.stringify(a)).join(", ")
      }, got ${show(value)}`,
    );
  }
  return value as T;
}

/** An options bag: undefined (defaults) or a plain object. */
export function requireOptions<T extends object>(value: unknown, doing: string): Partial<T> {
  if (value === undefined) return {};
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new TypeError(`${doing}: options must be an object, got ${show(value)}`);
  }
  return value as Partial<T>;
}

/** A boolean flag. */
export function requireBoolean(value: unknown, option: string, doing: string): boolean {
  if (typeof value !== "boolean") {
    throw new TypeError(`${doing}: ${option} must be a boolean, got ${show(value)}`);
  }
  return value;
}

/** A non-empty string, such as an id or a name. */
export function requireNonEmptyString(value: unknown, option: string, doing: string): string {
  if (typeof value !== "string") {
    throw new TypeError(`${doing}: ${option} must be a string, got ${show(value)}`);
  }
  if (value.length === 0) {
    throw new RangeError(`${doing}: ${option} must be a non-empty string, got ""`);
  }
  return value;
}

/** A share of something whole, such as a device's compute: a number in (0, 1]. */
export function requireFraction(value: unknown, option: string, doing: string): number {
  if (typeof value !== "number") {
    throw new TypeError(`${doing}: ${option} must be a number, got ${show(value)}`);
  }
  if (!(value > 0 && value <= 1)) {
    throw new RangeError(`${doing}: ${option} must be a fraction in (0, 1], got ${show(value)}`);
  }
  return value;
}

/** A nested options object, e.g. `priorityRange`. */
export function requireObject(value: unknown, option: string, doing: string): object {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new TypeError(`${doing}: ${option} must be an object, got ${show(value)}`);
  }
  return value;
}
