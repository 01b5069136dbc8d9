/**
 * @xenstack/xapi-wire — the XenAPI wire protocol, shared by @xenstack/xenapi (client) and
 * @xenstack/xapi-sim (simulator). See ../../../../shared/reference/xapi-protocol.md §2–§4.
 *
 * CONTRACT (written first so the client and simulator can be built against it in parallel):
 *  - types.ts        XapiType: a parsed datamodel type string, and parseType().
 *  - datamodel.ts    the generated tables (src/generated/datamodel.ts) behind a lookup API.
 *  - xmlrpc.ts       XML-RPC encode/decode: generic, and type-directed as XAPI emits.
 *  - jsonrpc.ts      JSON-RPC 1.0/2.0 request/response shapes.
 *  - envelope.ts     XAPI's {Status, Value} / {Status: 'Failure', ErrorDescription} envelope.
 *  - convert.ts      fromWire(value, type): normalise a decoded value to its JS form (ints as numbers,
 *                    datetimes as Date, …) on either transport; toWire(value, type) for the way back.
 */
export * from './types.js'
export * from './datamodel.js'
export * from './xmlrpc.js'
export * from './jsonrpc.js'
export * from './envelope.js'
export * from './convert.js'
export { InvalidUtf8Error } from './utf8.js'
