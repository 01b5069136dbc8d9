import type { XapiType } from './types.js'

/**
 * Decoded XML-RPC values, generic form: untagged and <string> → string; <i4>/<int>/<i8> → number (or string
 * when beyond Number.MAX_SAFE_INTEGER); <double> → number; <boolean> → boolean; <dateTime.iso8601> → string
 * as sent (`20250319T04:16:24Z`); <array> → array; <struct> → object; <nil/> → null.
 */
export type WireValue = string | number | boolean | null | WireValue[] | { [key: string]: WireValue }

/**
 * Encodes a JS value as an XML-RPC <value>. With a type, as XAPI emits it: int → untagged decimal string,
 * float → <double> (%.16g), bool → <boolean>1/0, datetime (Date or string) → <dateTime.iso8601>, maps → struct with
 * string keys, sets → array. Without a type: string → untagged, integer number → <int> when 32-bit else untagged
 * string, other number → <double>, boolean, Date, array, object.
 */
export declare function encodeValue(v: unknown, type?: XapiType): string
export declare function encodeMethodCall(method: string, params: unknown[], types?: (XapiType | undefined)[]): string
/** A successful <methodResponse> wrapping one value (XAPI puts its {Status, Value} struct in it). */
export declare function encodeMethodResponse(value: unknown, type?: XapiType): string
/** A <methodResponse><fault> (used only by plugins; XAPI's API errors are Failure envelopes). */
export declare function encodeFault(code: number, message: string): string

export interface DecodedCall {
  method: string
  params: WireValue[]
}
/** Parses a <methodCall>. Throws XmlRpcParseError naming the position on malformed input. */
export declare function decodeMethodCall(xml: string | Buffer): DecodedCall
/** Parses a <methodResponse>: returns the value, or throws XmlRpcFault for a <fault>. */
export declare function decodeMethodResponse(xml: string | Buffer): WireValue

export declare class XmlRpcParseError extends Error {
  readonly offset: number
}
export declare class XmlRpcFault extends Error {
  readonly faultCode: number
  readonly faultString: string
}
