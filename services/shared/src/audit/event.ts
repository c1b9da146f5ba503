import { isDeepStrictEqual } from 'node:util';
import { AuditError, AuditErrorCode } from './errors.js';

export type AuditOutcome = 'success' | 'failure' | 'denied';

export const AUDIT_OUTCOMES: readonly AuditOutcome[] = ['success', 'failure', 'denied'];

/** What happened, as the domain code tells it; the facility adds who, when and from where. */
export interface AuditEvent {
  /** Lowercase dotted: 'organization.updated', 'auth.login.failed'. */
  action: string;
  outcome: AuditOutcome;
  resourceType?: string;
  resourceId?: string;
  /** Before/after of the fields that changed; secrets, password hashes and tokens are stripped. */
  changes?: { before?: Record<string, unknown>; after?: Record<string, unknown> };
  /** Defaults to the request context's user and roles; `system` names a component (operator). */
  actor?: { userId?: string; roles?: readonly string[]; system?: string };
  details?: Record<string, unknown>;
}

/** A JSON value as PostgreSQL's jsonb stores it and gives it back. */
export type JsonValue =
  null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** Lowercase dotted names of at least two parts: `organization.updated`. */
export const ACTION_PATTERN = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/;

/**
 * Keys whose values never reach the audit log: passwords and their hashes, secrets, tokens,
 * keys and credentials. The key stays, with REDACTED as its value, so that the record still
 * says that (for example) the password changed.
 */
const SECRET_KEY = new RegExp(
  [
    'pass(word|phrase)?',
    'secret',
    'token',
    'credential',
    'api[-_]?key',
    'private[-_]?key',
    'hash',
    'salt',
    'otp',
    'cookie',
    'authorization',
  ].join('|'),
  'i',
);

export const REDACTED = '[redacted]';

const MAX_DEPTH = 16;
const MAX_STRING = 4096;
/**
 * The most values one change or details object keeps; the rest read '[truncated]'. Depth alone
 * does not bound the work: an object that holds the same object twice at every level of 16 has
 * 65,536 paths to it, and the record would hold each of them.
 */
const MAX_VALUES = 10_000;

/** A high surrogate not followed by a low one, or a low surrogate not preceded by a high one. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * Text as PostgreSQL stores it: NUL dropped (text and jsonb refuse it), at most `max` UTF-16
 * units without cutting a character in two, and any lone surrogate (which jsonb refuses, and a
 * client can send as `\udfff` in JSON) replaced by U+FFFD, so that an odd string in a request
 * can never make its audit record, and so its change, fail.
 */
function clean(value: string, max: number): string {
  let result = value.replaceAll('\u0000', '');
  if (result.length > max) {
    const last = result.charCodeAt(max - 1);
    result = result.slice(0, last >= 0xd800 && last <= 0xdbff ? max - 1 : max);
  }
  return result.replace(LONE_SURROGATE, '\uFFFD');
}

/**
 * Turns a value into something jsonb accepts: Dates become ISO strings, bigints strings, undefined
 * members vanish, non-finite numbers become null, strings are cleaned (see clean: NUL dropped,
 * long strings cut, lone surrogates replaced), and the values of secret-looking keys are redacted.
 * At most MAX_DEPTH levels and MAX_VALUES values are kept.
 */
export function toJson(value: unknown): JsonValue {
  return convert(value, 0, { left: MAX_VALUES });
}

function convert(value: unknown, depth: number, budget: { left: number }): JsonValue {
  if (value === null || value === undefined) return null;
  if (depth > MAX_DEPTH) return '[too deep]';
  if (budget.left <= 0) return '[truncated]';
  budget.left -= 1;
  switch (typeof value) {
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : null;
    case 'bigint':
      return value.toString();
    case 'string':
      return clean(value, MAX_STRING);
    case 'object':
      break;
    default:
      return null;
  }
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (Buffer.isBuffer(value) || ArrayBuffer.isView(value)) return '[binary]';
  if (Array.isArray(value)) return value.map((item: unknown) => convert(item, depth + 1, budget));
  // Without a prototype, a key named __proto__ is an own key like any other (on a plain object,
  // assigning it would set the prototype, and the key would vanish from the record).
  const object = Object.create(null) as JsonObject;
  for (const [key, member] of Object.entries(value)) {
    if (member === undefined) continue;
    const name = clean(key, MAX_STRING);
    object[name] = SECRET_KEY.test(name) ? REDACTED : convert(member, depth + 1, budget);
  }
  return object;
}

function toJsonObject(value: Record<string, unknown> | undefined): JsonObject | null {
  if (value === undefined) return null;
  const json = toJson(value);
  return json !== null && typeof json === 'object' && !Array.isArray(json) ? json : null;
}

/** The event's optional parts as they are stored: redacted, JSON-safe, null when absent. */
export function normalizeChanges(changes: AuditEvent['changes']): JsonObject | null {
  if (!changes) return null;
  const normalized: JsonObject = {};
  const before = toJsonObject(changes.before);
  const after = toJsonObject(changes.after);
  if (before) normalized.before = before;
  if (after) normalized.after = after;
  return Object.keys(normalized).length > 0 ? normalized : null;
}

export { toJsonObject as normalizeDetails };

/** Optional text as stored: cleaned (see clean), and null when nothing is left of it. */
function text(value: string | undefined, max: number): string | null {
  if (value === undefined) return null;
  const cleaned = clean(value, max);
  return cleaned === '' ? null : cleaned;
}

/** Refuses events that would make a useless record; these are programming errors. */
export function validateEvent(event: AuditEvent): void {
  const problem =
    typeof event.action !== 'string' ||
    !ACTION_PATTERN.test(event.action) ||
    event.action.length > 100
      ? `action ${JSON.stringify(event.action)} is not lowercase dotted (organization.updated)`
      : !AUDIT_OUTCOMES.includes(event.outcome)
        ? `outcome ${JSON.stringify(event.outcome)} is not one of ${AUDIT_OUTCOMES.join(', ')}`
        : undefined;
  if (problem) {
    throw new AuditError(AuditErrorCode.InvalidEvent, `cannot record an audit event: ${problem}`);
  }
}

export { text as boundedText };

/**
 * The fields that differ between two snapshots of a resource, for AuditEvent.changes: each
 * changed key appears in `before` and `after` (absent on one side when it was added or
 * removed). Values compare deeply (Dates by time), before any redaction, so a changed password
 * hash shows as a changed key with both values redacted. Undefined when nothing changed.
 */
export function diffFields(
  before: Record<string, unknown>,
  after: Record<string, unknown>,
): AuditEvent['changes'] {
  const changedBefore: Record<string, unknown> = {};
  const changedAfter: Record<string, unknown> = {};
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  for (const key of keys) {
    const old = before[key];
    const now = after[key];
    if (isDeepStrictEqual(old, now)) continue;
    if (old !== undefined) changedBefore[key] = old;
    if (now !== undefined) changedAfter[key] = now;
  }
  if (Object.keys(changedBefore).length === 0 && Object.keys(changedAfter).length === 0) {
    return undefined;
  }
  return { before: changedBefore, after: changedAfter };
}
