import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { hasExecutable, requirePrerequisite, SYSTEM_PYTHON } from '@xenstack/testkit'
import {
  decodeMethodCall,
  decodeMethodResponse,
  decodeValue,
  encodeFailureResponse,
  encodeFault,
  encodeMethodCall,
  encodeMethodResponse,
  encodeSuccessResponse,
  encodeValue,
  fromWire,
  parseType,
  unwrapEnvelope,
  XmlRpcFault,
  XmlRpcParseError,
  InvalidUtf8Error,
  parseJsonRpcRequest,
} from '../src/index.js'

const T = parseType
const wrap = (inner: string): string => `<methodResponse><params><param>${inner}</param></params></methodResponse>`
/** Encode by type, decode generically, convert back by type. */
const roundTrip = (v: unknown, type: string): unknown =>
  fromWire(decodeMethodResponse(encodeMethodResponse(v, T(type))), T(type))

test('typed encoding is exactly what XAPI emits', () => {
  assert.equal(encodeValue('foo', T('string')), '<value>foo</value>')
  assert.equal(encodeValue('', T('string')), '<value></value>')
  assert.equal(encodeValue('OpaqueRef:NULL', T('VM ref')), '<value>OpaqueRef:NULL</value>')
  assert.equal(encodeValue('Running', T('enum vm_power_state')), '<value>Running</value>')
  assert.equal(encodeValue(4294967296, T('int')), '<value>4294967296</value>')
  assert.equal(encodeValue(-5, T('int')), '<value>-5</value>')
  assert.equal(encodeValue(2n ** 63n - 1n, T('int')), '<value>9223372036854775807</value>')
  assert.equal(encodeValue(0.1, T('float')), '<value><double>0.1</double></value>')
  assert.equal(encodeValue(1, T('float')), '<value><double>1</double></value>')
  assert.equal(encodeValue(1e20, T('float')), '<value><double>1e+20</double></value>')
  assert.equal(encodeValue(1.5e-7, T('float')), '<value><double>1.5e-07</double></value>')
  // %.16g, as XAPI: 17-digit doubles lose their last digit.
  assert.equal(encodeValue(0.1 + 0.2, T('float')), '<value><double>0.3</double></value>')
  assert.equal(encodeValue(1 / 3, T('float')), '<value><double>0.3333333333333333</double></value>')
  assert.equal(encodeValue(true, T('bool')), '<value><boolean>1</boolean></value>')
  assert.equal(encodeValue(false, T('bool')), '<value><boolean>0</boolean></value>')
  assert.equal(
    encodeValue(new Date(Date.UTC(2025, 2, 19, 4, 16, 24)), T('datetime')),
    '<value><dateTime.iso8601>20250319T04:16:24Z</dateTime.iso8601></value>',
  )
  assert.equal(
    encodeValue(['a', 'b'], T('string set')),
    '<value><array><data><value>a</value><value>b</value></data></array></value>',
  )
  assert.equal(encodeValue([], T('string set')), '<value><array><data></data></array></value>')
  assert.equal(
    encodeValue({ a: 1 }, T('(string -> int) map')),
    '<value><struct><member><name>a</name><value>1</value></member></struct></value>',
  )
  assert.equal(encodeValue(undefined, T('void')), '<value></value>')
  assert.equal(
    encodeSuccessResponse('OpaqueRef:x', T('VM ref')),
    '<methodResponse><params><param><value><struct><member><name>Status</name><value>Success</value></member>' +
      '<member><name>Value</name><value>OpaqueRef:x</value></member></struct></value></param></params></methodResponse>',
  )
})

test('generic encoding: 32-bit ints tagged, 64-bit untagged, doubles, nil, dates, nested', () => {
  assert.equal(encodeValue(5), '<value><int>5</int></value>')
  assert.equal(encodeValue(2147483647), '<value><int>2147483647</int></value>')
  assert.equal(encodeValue(2147483648), '<value>2147483648</value>')
  assert.equal(encodeValue(1.5), '<value><double>1.5</double></value>')
  assert.equal(encodeValue(null), '<value><nil/></value>')
  assert.equal(
    encodeValue({ a: [1, 'x', { b: true }] }),
    '<value><struct><member><name>a</name><value><array><data>' +
      '<value><int>1</int></value><value>x</value><value><struct><member><name>b</name><value><boolean>1</boolean></value>' +
      '</member></struct></value></data></array></value></member></struct></value>',
  )
})

test('round trips of every type, both directions', () => {
  const cases: [unknown, string][] = [
    ['', 'string'],
    ['plain', 'string'],
    ['  spaced  \n\tlines\n', 'string'],
    ['a < b && c > d; "q" \'s\'', 'string'],
    ['unicode: żółć 日本語 🚀 \u00a0 \u2028', 'string'],
    ['CR\r\nLF\n', 'string'],
    [']]> <![CDATA[ x', 'string'],
    ['OpaqueRef:0165f154-ba3e-034e-6b27-5d271af109ba', 'VM ref'],
    ['Halted', 'enum vm_power_state'],
    [0, 'int'],
    [-2147483648, 'int'],
    [2147483648, 'int'],
    [2 ** 53 - 1, 'int'],
    [2n ** 53n + 1n, 'int'],
    [-(2n ** 63n), 'int'],
    [0, 'float'],
    [0.1, 'float'],
    [-1.25e-300, 'float'],
    [1.5e308, 'float'],
    [5e-324, 'float'],
    [123456789.123, 'float'],
    [true, 'bool'],
    [false, 'bool'],
    [new Date(0), 'datetime'],
    [new Date(Date.UTC(2025, 2, 19, 4, 16, 24)), 'datetime'],
    [[], 'int set'],
    [[1, 4294967296], 'int set'],
    [[['a'], []], 'string set set'],
    [{}, '(string -> string) map'],
    [{ '': 'empty key', 'k&<>': 'v' }, '(string -> string) map'],
    [{ 'OpaqueRef:a': { x: 'y' } }, '(VM ref -> (string -> string) map) map'],
    [{ '1': 2.5 }, '(int -> float) map'],
    [{ running: 'x' }, '(string -> enum vm_operations) map'],
    [null, 'string option'],
    ['x', 'string option'],
  ]
  for (const [v, type] of cases) assert.deepEqual(roundTrip(v, type), v, `${type}: ${String(v)}`)
  assert.ok(Number.isNaN(roundTrip(NaN, 'float')))
  assert.equal(roundTrip(Infinity, 'float'), Infinity)
})

test('64-bit ints: untagged strings on the wire, exact through decoding', () => {
  const xml = wrap('<value>9007199254740993</value>')
  assert.equal(decodeMethodResponse(xml), '9007199254740993')
  assert.equal(fromWire('9007199254740993', T('int')), 9007199254740993n)
  assert.equal(fromWire('4294967296', T('int')), 4294967296)
  assert.equal(decodeMethodResponse(wrap('<value><i8>9007199254740993</i8></value>')), '9007199254740993')
  assert.equal(decodeMethodResponse(wrap('<value><i8>-42</i8></value>')), -42)
  assert.equal(decodeMethodResponse(wrap('<value><i4>7</i4></value>')), 7)
  assert.equal(decodeMethodResponse(wrap('<value><int>+7</int></value>')), 7)
})

test('records: each field by its type, unknown fields generic', () => {
  const rec = {
    uuid: 'u-1',
    name_label: 'vm «1»',
    power_state: 'Running',
    memory_static_max: 8589934592,
    VCPUs_max: 4,
    is_a_template: false,
    other_config: { k: 'v' },
    tags: ['a'],
    start_time_extra: 1.5,
  }
  const xml = encodeValue(rec, T('VM record'))
  assert.match(xml, /<member><name>memory_static_max<\/name><value>8589934592<\/value><\/member>/)
  assert.match(xml, /<member><name>is_a_template<\/name><value><boolean>0<\/boolean><\/value><\/member>/)
  assert.match(xml, /<member><name>start_time_extra<\/name><value><double>1.5<\/double><\/value><\/member>/)
  assert.deepEqual(fromWire(decodeValue(xml), T('VM record')), rec)
})

test('event batch: valid_ref_counts as <i4>, snapshots typed by the event class', () => {
  const batch = {
    events: [
      {
        id: 1,
        timestamp: new Date(0),
        class: 'vm',
        operation: 'mod',
        ref: 'OpaqueRef:v',
        snapshot: { memory_target: 4294967296, power_state: 'Halted' },
      },
      { id: 2, timestamp: new Date(2000), class: 'vm', operation: 'del', ref: 'OpaqueRef:w' },
    ],
    valid_ref_counts: { vm: 2, host: 1 },
    token: '00000000000000000012,00000000000000000000',
  }
  const type = { kind: 'record', class: 'event_batch' } as const
  const xml = encodeSuccessResponse(batch, type)
  assert.match(xml, /<name>vm<\/name><value><i4>2<\/i4><\/value>/)
  assert.match(xml, /<name>memory_target<\/name><value>4294967296<\/value>/)
  const env = unwrapEnvelope(decodeMethodResponse(xml))
  assert.ok(env.ok)
  assert.deepEqual(fromWire(env.value, type), batch)
})

test("XAPI's failure envelope and the raw system.listMethods array", () => {
  const xml = encodeFailureResponse(['VM_BAD_POWER_STATE', 'OpaqueRef:v', 'halted', 'running'])
  assert.equal(
    xml,
    '<methodResponse><params><param><value><struct><member><name>Status</name><value>Failure</value></member>' +
      '<member><name>ErrorDescription</name><value><array><data><value>VM_BAD_POWER_STATE</value>' +
      '<value>OpaqueRef:v</value><value>halted</value><value>running</value></data></array></value></member>' +
      '</struct></value></param></params></methodResponse>',
  )
  assert.deepEqual(unwrapEnvelope(decodeMethodResponse(xml)), {
    ok: false,
    errorDescription: ['VM_BAD_POWER_STATE', 'OpaqueRef:v', 'halted', 'running'],
  })
  const list = encodeMethodResponse(['VM.start', 'VM.get_all_records', 'system.listMethods'], T('string set'))
  assert.deepEqual(decodeMethodResponse(list), ['VM.start', 'VM.get_all_records', 'system.listMethods'])
  assert.throws(() => unwrapEnvelope(decodeMethodResponse(list)), /expected a \{Status, Value\} struct/)
})

test('method calls: encoded with datamodel types, decoded tolerantly', () => {
  const xml = encodeMethodCall('VM.set_memory_static_max', ['OpaqueRef:s', 'OpaqueRef:v', 8589934592])
  assert.equal(
    xml,
    '<?xml version="1.0"?><methodCall><methodName>VM.set_memory_static_max</methodName><params>' +
      '<param><value>OpaqueRef:s</value></param><param><value>OpaqueRef:v</value></param>' +
      '<param><value>8589934592</value></param></params></methodCall>',
  )
  assert.match(
    encodeMethodCall('Async.VM.start', ['s', 'v', false, true]),
    /<boolean>0<\/boolean>.*<boolean>1<\/boolean>/,
  )
  assert.match(encodeMethodCall('event.from', ['s', ['*'], '', 30]), /<double>30<\/double>/)
  assert.match(encodeMethodCall('no.such_method', [30]), /<int>30<\/int>/)
  assert.deepEqual(decodeMethodCall(xml), {
    method: 'VM.set_memory_static_max',
    params: ['OpaqueRef:s', 'OpaqueRef:v', '8589934592'],
  })
  assert.deepEqual(decodeMethodCall('<methodCall><methodName>system.listMethods</methodName></methodCall>'), {
    method: 'system.listMethods',
    params: [],
  })
  assert.deepEqual(decodeMethodCall('<methodCall><methodName>x</methodName><params/></methodCall>'), {
    method: 'x',
    params: [],
  })
})

test('tolerant input: declaration, whitespace, CRLF, <string>, CDATA, entities, comments, empty forms', () => {
  const xml =
    '\ufeff<?xml version="1.0" encoding="UTF-8"?>\r\n<!-- a comment -->\r\n<methodResponse>\r\n  <params>\r\n    <param>\r\n' +
    '      <value>\r\n        <struct>\r\n          <member>\r\n            <name>Status</name>\r\n' +
    '            <value><string>Success</string></value>\r\n          </member>\r\n          <member>\r\n' +
    '            <name>Value</name>\r\n            <value>\r\n              <array>\r\n                <data>\r\n' +
    '                  <value><![CDATA[<raw> & ]]>tail</value>\r\n' +
    '                  <value>&lt;&gt;&amp;&quot;&apos;&#65;&#x1F680;&#x42;</value>\r\n' +
    '                  <value><string/></value>\r\n                  <value/>\r\n' +
    '                  <value><i4> 12 </i4></value>\r\n                  <value><boolean>true</boolean></value>\r\n' +
    '                  <value><double>-1.5E3</double></value>\r\n                  <value><nil/></value>\r\n' +
    '                  <value><array><data/></array></value>\r\n                  <value><struct/></value>\r\n' +
    '                  <value><base64>aGk=</base64></value>\r\n' +
    '                  <value>line1\r\nline2</value>\r\n' +
    '                  <value><dateTime.iso8601>20250319T04:16:24Z</dateTime.iso8601></value>\r\n' +
    '                </data>\r\n              </array>\r\n            </value>\r\n          </member>\r\n' +
    '        </struct>\r\n      </value>\r\n    </param>\r\n  </params>\r\n</methodResponse>\r\n'
  assert.deepEqual(decodeMethodResponse(Buffer.from(xml)), {
    Status: 'Success',
    Value: [
      '<raw> & tail',
      '<>&"\'A🚀B',
      '',
      '',
      12,
      true,
      -1500,
      null,
      [],
      {},
      'hi',
      'line1\nline2',
      '20250319T04:16:24Z',
    ],
  })
})

test('faults: <fault> throws XmlRpcFault; encodeFault round-trips', () => {
  assert.throws(
    () => decodeMethodResponse(encodeFault(42, 'plugin <failed>')),
    (e: unknown) => e instanceof XmlRpcFault && e.faultCode === 42 && e.faultString === 'plugin <failed>',
  )
})

test('malformed XML: XmlRpcParseError names the offset, line and what was expected', () => {
  const cases: [string, number][] = [
    ['<methodResponse><params><param><value><int>x</int></value></param></params></methodResponse>', 38],
    ['<methodResponse><params><param><value>abc</param></params></methodResponse>', 41],
    [
      '<methodResponse><params><param><value><struct><member><value>x</value></member></struct></value></param></params></methodResponse>',
      54,
    ],
    ['<methodResponse><params><param><value><bogus>1</bogus></value></param></params></methodResponse>', 38],
    ['<methodResponse><params><param><value>a &nope; b</value></param></params></methodResponse>', 40],
    ['<methodResponse><params><param><value>x</value></param></params>', 64],
    ['<methodResponse><params><param><value>x</value></param></params></methodResponse>trailing', 81],
    ['', 0],
  ]
  for (const [xml, offset] of cases) {
    assert.throws(
      () => decodeMethodResponse(xml),
      (e: unknown) =>
        e instanceof XmlRpcParseError &&
        e.offset === offset &&
        e.message.includes(`offset ${offset}`) &&
        /expected/.test(e.message),
      xml,
    )
  }
  assert.throws(
    () => decodeMethodResponse('<methodResponse>\n<params>\n<param>\n<value><boolean>2</boolean></value>'),
    (e: unknown) => e instanceof XmlRpcParseError && e.line === 4 && /0 or 1 in <boolean>/.test(e.message),
  )
  assert.throws(() => decodeMethodCall('<methodCall><methodName></methodName></methodCall>'), XmlRpcParseError)
})

test('an independent codec (Python xmlrpc.client) reads what we write and we read what it writes', (t) => {
  if (!requirePrerequisite(t, SYSTEM_PYTHON, () => hasExecutable(SYSTEM_PYTHON))) return
  const value = {
    s: 'żółć 🚀 <&> "q"',
    empty: '',
    i: 2147483647,
    big: 9007199254740993n,
    f: 0.1,
    b: true,
    list: [1, 'two', [3.5, false]],
    nested: { deeper: { deepest: 'x' } },
    d: new Date(Date.UTC(2025, 2, 19, 4, 16, 24)),
  }
  const ours = encodeMethodResponse(value)
  // Python parses our XML and writes it back with its own marshaller.
  const script =
    'import sys, xmlrpc.client as x\n' +
    'data = sys.stdin.buffer.read().decode("utf-8")\n' +
    '(v,), _ = x.loads(data)\n' +
    'assert v["s"] == "żółć 🚀 <&> \\"q\\"", repr(v["s"])\n' +
    'assert v["big"] == "9007199254740993" and v["i"] == 2147483647 and v["f"] == 0.1 and v["b"] is True\n' +
    'assert str(v["d"]).startswith("20250319T04:16:24"), str(v["d"])\n' +
    'sys.stdout.buffer.write(x.dumps((v,), methodresponse=True).encode("utf-8"))\n'
  const theirs = execFileSync(SYSTEM_PYTHON, ['-c', script], { input: ours }).toString('utf8')
  assert.match(theirs, /<\?xml version='1.0'\?>\n<methodResponse>\n<params>\n<param>\n<value>/)
  assert.deepEqual(decodeMethodResponse(theirs), {
    s: 'żółć 🚀 <&> "q"',
    empty: '',
    i: 2147483647,
    big: '9007199254740993',
    f: 0.1,
    b: true,
    list: [1, 'two', [3.5, false]],
    nested: { deeper: { deepest: 'x' } },
    d: '20250319T04:16:24Z',
  })
  // And a call Python builds, as a client would send it.
  const call = execFileSync(SYSTEM_PYTHON, [
    '-c',
    'import sys, xmlrpc.client as x; sys.stdout.write(x.dumps(("OpaqueRef:s", {"a": [1, 2.5]}, "日本"), "VM.start"))',
  ]).toString('utf8')
  assert.deepEqual(decodeMethodCall(call), { method: 'VM.start', params: ['OpaqueRef:s', { a: [1, 2.5] }, '日本'] })
})

test("Xen Orchestra's XML-RPC codec (@vates/xml-rpc, as xen-api uses it) and ours read each other", () => {
  const require = createRequire(import.meta.url)
  const { formatXml } = require('@vates/xml/format') as { formatXml: (tree: unknown, o: { indent: string }) => string }
  const { parseXml } = require('@vates/xml/parse') as { parseXml: (xml: string) => unknown }
  const { xmlRpcFormatter } = require('@vates/xml-rpc/formatter') as {
    xmlRpcFormatter: { format_methodCall: (c: { methodName: string; params: unknown[] }) => unknown }
  }
  const { xmlRpcParser } = require('@vates/xml-rpc/parser') as { xmlRpcParser: { parse: (tree: unknown) => unknown } }
  // What xen-api sends: self-closing tags with a space (<data />, <struct />, <nil />), ISO dates, <int>.
  const call = formatXml(
    xmlRpcFormatter.format_methodCall({
      methodName: 'VM.start',
      params: ['OpaqueRef:s', [], {}, '', null, 5, 1.5, true, new Date(0), { a: { b: ['x', 'ż'] } }],
    }),
    { indent: '' },
  )
  assert.match(call, /<data \/>/)
  assert.deepEqual(decodeMethodCall(call), {
    method: 'VM.start',
    params: ['OpaqueRef:s', [], {}, '', null, 5, 1.5, true, '1970-01-01T00:00:00.000Z', { a: { b: ['x', 'ż'] } }],
  })
  const noParams = formatXml(xmlRpcFormatter.format_methodCall({ methodName: 'system.listMethods', params: [] }), {
    indent: '',
  })
  assert.deepEqual(decodeMethodCall(noParams), { method: 'system.listMethods', params: [] })
  // What we send as XAPI, read by xen-api's parser.
  const rec = { uuid: 'u', memory_static_max: 8589934592, is_a_template: false, other_config: { a: '<b>' }, tags: [] }
  const xml = encodeSuccessResponse({ 'OpaqueRef:v': rec }, T('(VM ref -> VM record) map'))
  assert.deepEqual(xmlRpcParser.parse(parseXml(xml)), {
    params: [
      {
        Status: 'Success',
        Value: {
          'OpaqueRef:v': {
            uuid: 'u',
            memory_static_max: '8589934592',
            is_a_template: false,
            other_config: { a: '<b>' },
            tags: [],
          },
        },
      },
    ],
  })
})

test('invalid UTF-8 in a body is refused with its byte offset, never silently replaced', () => {
  const good = Buffer.from(
    '<methodCall><methodName>VM.set_name_label</methodName><params><param><value>żółć</value></param></params></methodCall>',
  )
  assert.deepEqual(decodeMethodCall(good).params, ['żółć'])
  const at = good.indexOf('żółć')
  for (const bad of [[0xff], [0xc3], [0xe2, 0x28, 0xa1], [0xed, 0xa0, 0x80], [0xc0, 0xaf], [0xf4, 0x90, 0x80, 0x80]]) {
    const body = Buffer.concat([good.subarray(0, at), Buffer.from(bad), good.subarray(at)])
    assert.throws(
      () => decodeMethodCall(body),
      (e: unknown) =>
        e instanceof InvalidUtf8Error && e.byteOffset === at && /invalid UTF-8 at byte offset/.test(e.message),
      JSON.stringify(bad),
    )
  }
  assert.throws(
    () => parseJsonRpcRequest(Buffer.from([0x7b, 0xff, 0x7d])),
    (e: unknown) => e instanceof InvalidUtf8Error && e.byteOffset === 1,
  )
})

test("doubles are formatted exactly like C's %.16g (Python's % operator as the oracle)", (t) => {
  if (!requirePrerequisite(t, SYSTEM_PYTHON, () => hasExecutable(SYSTEM_PYTHON))) return
  const values = [
    0.1,
    1e-5,
    1e-4,
    0.00001234,
    1e16,
    1e15,
    123456789012345680,
    1.5e-7,
    0.1 + 0.2,
    1 / 3,
    2 / 3,
    1e21,
    5e-324,
    1.7976931348623157e308,
    100,
    12345.678,
    -2.5,
    9.999999999999999e22,
    0.5,
    1234567890.0987654,
    -1e-300,
    2 ** 53,
  ]
  const expected = execFileSync(SYSTEM_PYTHON, [
    '-c',
    `import sys\nfor v in sys.argv[1:]: print('%.16g' % float(v))`,
    ...values.map((v) => v.toString()),
  ])
    .toString()
    .trim()
    .split('\n')
  const ours = values.map((v) => /<double>(.*)<\/double>/.exec(encodeValue(v, T('float')))![1])
  assert.deepEqual(ours, expected)
})

test('mutated documents only ever fail with XmlRpcParseError/XmlRpcFault and an offset inside the input', () => {
  const docs = [
    encodeMethodResponse({ a: ['x', 1, 2.5, true, null, { b: '<&>' }], d: new Date(0), e: '', big: 2n ** 60n }),
    encodeMethodCall('VM.start', ['OpaqueRef:s', 'OpaqueRef:v', false, true]),
    encodeFailureResponse(['VM_BAD_POWER_STATE', 'OpaqueRef:v', 'halted', 'running']),
    encodeFault(3, 'f'),
  ]
  const pieces = [
    '<',
    '>',
    '/',
    '</value>',
    '<value>',
    '<struct>',
    '<member>',
    '&',
    '&#',
    ';',
    '<![CDATA[',
    ']]>',
    '<!--',
  ]
  let seed = 12345
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return seed % n
  }
  for (let i = 0; i < 4000; i++) {
    let s = docs[rnd(docs.length)]!
    for (let k = 1 + rnd(4); k > 0; k--) {
      const p = rnd(s.length + 1)
      const op = rnd(3)
      if (op === 0) s = s.slice(0, p) + s.slice(p + 1 + rnd(10))
      else if (op === 1) s = s.slice(0, p) + pieces[rnd(pieces.length)] + s.slice(p)
      else s = s.slice(0, p)
    }
    for (const decode of [decodeMethodResponse, decodeMethodCall]) {
      try {
        decode(s)
      } catch (e) {
        if (e instanceof XmlRpcFault) continue
        assert.ok(
          e instanceof XmlRpcParseError,
          `${(e as Error).name}: ${(e as Error).message} for ${JSON.stringify(s)}`,
        )
        assert.ok(e.offset >= 0 && e.offset <= s.length, `offset ${e.offset} for ${JSON.stringify(s)}`)
      }
    }
  }
})
