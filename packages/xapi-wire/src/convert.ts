import type { XapiType } from './types.js'

/**
 * Normalises a decoded wire value (either transport) to its JS form by type: int → number (string → number;
 * a 64-bit value beyond 2^53 stays exact as a bigint), float → number, bool → boolean, datetime → Date,
 * refs/strings/enums → string, sets → arrays, maps → objects with converted values, records → objects with every
 * field converted per the class's field types (unknown fields passed through).
 */
export declare function fromWire(value: unknown, type: XapiType): unknown
/** The inverse for JSON-RPC: Date → `YYYYMMDDTHH:MM:SSZ`, bigint → number when safe; everything else as is. */
export declare function toJsonWire(value: unknown, type?: XapiType): unknown
/** Formats a Date the way XAPI does: `20250319T04:16:24Z`. */
export declare function formatXapiDate(d: Date): string
/** Parses `20250319T04:16:24Z` (also with dashes, fractional seconds or offsets) to a Date. */
export declare function parseXapiDate(s: string): Date
