/** A XenAPI type, parsed from the datamodel's type strings (`VM ref set`, `(string -> int) map`, …). */
export type XapiType =
  | { kind: 'string' }
  | { kind: 'int' }
  | { kind: 'float' }
  | { kind: 'bool' }
  | { kind: 'datetime' }
  | { kind: 'void' }
  | { kind: 'ref'; class: string }
  | { kind: 'record'; class: string }
  | { kind: 'enum'; name: string }
  | { kind: 'set'; of: XapiType }
  | { kind: 'map'; key: XapiType; value: XapiType }
  | { kind: 'option'; of: XapiType }

/** Parses a datamodel type string. Throws naming the string when it is not a XenAPI type. */
export declare function parseType(s: string): XapiType
/** Formats a type back to the datamodel's spelling. */
export declare function formatType(t: XapiType): string
