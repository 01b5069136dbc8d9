/**
 * @xenstack/xapi-wire — the XenAPI wire protocol, shared by @xenstack/xenapi (client) and
 * @xenstack/xapi-sim (simulator). See ../../../../shared/reference/xapi-protocol.md §2–§4.
 *
 * Modules:
 *  - types.ts          XapiType: a parsed datamodel type string; parseType() (interned), formatType().
 *  - datamodel.ts      the generated tables (src/generated/datamodel.ts, by src/codegen/generate-datamodel.ts)
 *                      behind a lookup API: classes, getClass, getMessage (also Class_message), getField, getEnum,
 *                      constructorFields, requiredParamCount, freshDefault, wireMethodNames.
 *  - xmlrpc.ts         XML-RPC: hand-written encoder (type-directed as XAPI emits, or generic) and tolerant scanner;
 *    xmlrpc-encode.ts  per-type encoders, record encoders compiled per class.
 *  - jsonrpc.ts        JSON-RPC 1.0/2.0 requests and replies (§3.2).
 *  - envelope.ts       XAPI's {Status, Value} / {Status: 'Failure', ErrorDescription} envelope.
 *  - convert.ts        fromWire(value, type): a decoded value of either transport to its JS form (ints as numbers,
 *                      bigint beyond 2^53, datetimes as Date, …), converters compiled per class; toJsonWire() back.
 *  - utf8.ts           strict UTF-8 decoding of bodies (InvalidUtf8Error).
 *  - codegen/model.ts  the datamodel model builder shared with @xenstack/xenapi's typed-API generator
 *                      (import from '@xenstack/xapi-wire/codegen').
 */
export * from './types.js'
export * from './datamodel.js'
export * from './xmlrpc.js'
export * from './jsonrpc.js'
export * from './envelope.js'
export * from './convert.js'
export { InvalidUtf8Error } from './utf8.js'
