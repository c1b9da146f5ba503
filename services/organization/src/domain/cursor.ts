import type { SortKey } from './entities.js';

/** Where a page ends: the sort it was read with, and the last row's sort value and id. */
export interface Cursor {
  /** The sort as the query names it, `-` first for descending. */
  sort: string;
  value: string;
  id: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** An opaque, URL-safe cursor. It is not secret: it only holds what the page already showed. */
export function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify([cursor.sort, cursor.value, cursor.id])).toString('base64url');
}

/** The cursor, or undefined when the text is not one of ours (including a tampered one). */
export function decodeCursor(text: string): Cursor | undefined {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
    if (!Array.isArray(parsed) || parsed.length !== 3) return undefined;
    const [sort, value, id] = parsed as unknown[];
    if (typeof sort !== 'string' || typeof value !== 'string' || typeof id !== 'string') {
      return undefined;
    }
    if (!UUID.test(id) || value.length > 1000) return undefined;
    return { sort, value, id };
  } catch {
    return undefined;
  }
}

const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.\d{6}Z$/;

/** Whether text of the cursor's timestamp form names a real instant PostgreSQL can read. */
function isInstant(value: string): boolean {
  const parts = TIMESTAMP.exec(value)?.slice(1).map(Number);
  if (!parts) return false;
  const [year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0] = parts;
  // setUTCFullYear, unlike Date.UTC, takes years below 100 as they are.
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second);
  return (
    year >= 1 &&
    date.getUTCFullYear() === year &&
    date.getUTCMonth() === month - 1 &&
    date.getUTCDate() === day &&
    date.getUTCHours() === hour &&
    date.getUTCMinutes() === minute &&
    date.getUTCSeconds() === second
  );
}

/**
 * Whether a cursor's value can be read back as the sort key's type: text without NUL (which
 * PostgreSQL text cannot hold), or a real instant. A forged value is then refused as a cursor
 * instead of failing in the database.
 */
export function cursorValueFits(key: SortKey, value: string): boolean {
  return key.type === 'text' ? !value.includes('\u0000') : isInstant(value);
}

/** SQL that reads a sort key as the text a cursor carries (timestamps to the microsecond). */
export function cursorValueSql(key: SortKey): string {
  return key.type === 'text'
    ? key.column
    : `to_char(${key.column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
}
