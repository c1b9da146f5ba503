import { z } from 'zod';

/**
 * The building blocks of the request and response schemas. Bounds match the CHECK constraints
 * of the tenant tables, so anything the validators accept the database accepts too.
 */

/**
 * A record id, lower-cased: PostgreSQL compares uuids in any case, but the service also compares
 * ids as strings (a division's ancestry against the moved division, a site's project against
 * X-Project-ID), so every id that enters has the form the database returns.
 */
export const id = z.uuid({ error: 'must be a UUID' }).toLowerCase();

export const code = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/, {
    error: 'must be 1-32 letters, digits, "_", "." or "-", starting with a letter or digit',
  })
  .meta({ example: 'HQ-01' });

/** Whether a string is free of NUL, which PostgreSQL text cannot hold. */
export function withoutNul(value: string): boolean {
  return !value.includes('\u0000');
}

/** A high surrogate not followed by a low one, or a low surrogate not preceded by a high one. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Whether a string has no lone surrogate (half of a character that UTF-8 cannot encode). */
export function wellFormed(value: string): boolean {
  return !LONE_SURROGATE.test(value);
}

/**
 * Free text of 1 to `max` characters, trimmed. PostgreSQL text cannot hold NUL, and UTF-8 cannot
 * hold a lone surrogate (JSON can: `"\ud800"`), which the driver would silently turn into U+FFFD,
 * so both are refused here with a field error rather than failing (or being rewritten) on their
 * way to the database.
 */
function text(max: number) {
  return z
    .string()
    .trim()
    .min(1)
    .max(max)
    .refine(withoutNul, { error: 'must not contain NUL characters' })
    .refine(wellFormed, { error: 'must not contain lone surrogates (invalid Unicode)' });
}

export const name = text(200);

const line = text(200);

export const address = z
  .strictObject({
    line1: line.optional(),
    line2: line.optional(),
    city: text(100).optional(),
    region: text(100).optional(),
    postalCode: text(20).optional(),
    country: z
      .string()
      .regex(/^[A-Z]{2}$/, { error: 'must be an ISO 3166-1 alpha-2 code such as BD' })
      .optional(),
  })
  .meta({ description: 'Postal address; every part is optional' });

export const country = z
  .string()
  .regex(/^[A-Z]{2}$/, { error: 'must be an ISO 3166-1 alpha-2 code such as BD' });

const CURRENCIES = new Set(Intl.supportedValuesOf('currency'));

export const currency = z
  .string()
  .regex(/^[A-Z]{3}$/, { error: 'must be an ISO 4217 code such as BDT' })
  .refine((value) => CURRENCIES.has(value), { error: 'is not an ISO 4217 currency code' });

/**
 * Time zones already checked, by lower-case name. Building an Intl.DateTimeFormat is the only
 * complete test (it knows every alias), but costs ~0.1 ms, and the same few zones come back in
 * every request. Intl takes a zone in any letter case, so the cache is keyed by the lower-case
 * name: only known zones are kept, once each, and the set stays as small as the IANA database
 * however a client spells them.
 */
const KNOWN_TIME_ZONES = new Set<string>();

function isTimeZone(value: string): boolean {
  const key = value.toLowerCase();
  if (KNOWN_TIME_ZONES.has(key)) return true;
  try {
    new Intl.DateTimeFormat('en', { timeZone: value });
  } catch {
    return false;
  }
  KNOWN_TIME_ZONES.add(key);
  return true;
}

/** How many time zones the validator has checked and keeps; for tests. */
export function knownTimeZoneCount(): number {
  return KNOWN_TIME_ZONES.size;
}

export const timeZone = z
  .string()
  .regex(/^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+){0,2}$/, {
    error: 'must be an IANA time zone such as Asia/Dhaka',
  })
  .max(64)
  .refine(isTimeZone, { error: 'is not a known IANA time zone' });

export const identifier = text(64);

export const phone = z
  .string()
  .regex(/^\+?[0-9 ()-]{3,32}$/, { error: 'must be 3-32 digits, spaces, "(", ")" or "-"' });

/** A calendar date; PostgreSQL has no year 0 (1 BC), so years start at 0001. */
export const date = z.iso
  .date({ error: 'must be a date as YYYY-MM-DD' })
  .refine((value) => !value.startsWith('0000'), { error: 'must be a date from 0001-01-01' });

export const latitude = z.number().min(-90).max(90);
export const longitude = z.number().min(-180).max(180);

export const timestamp = z.iso.datetime({ offset: true });
export const version = z.int().min(0);

/** Two optional dates of which the second, when both are set, is not before the first. */
export function datesInOrder(value: {
  startDate?: string | null;
  endDate?: string | null;
}): boolean {
  return !value.startDate || !value.endDate || value.endDate >= value.startDate;
}
