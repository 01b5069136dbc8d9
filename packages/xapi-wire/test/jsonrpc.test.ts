import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  decodeJsonRpcResponse,
  encodeJsonRpcFailure,
  encodeJsonRpcRequest,
  encodeJsonRpcSuccess,
  JsonRpcRequestError,
  JsonRpcResponseError,
  parseJsonRpcRequest,
  parseType,
  success,
  failure,
  unwrapEnvelope,
  EnvelopeError,
} from '../src/index.js'

test('version detection and params rules (§3.2)', () => {
  assert.deepEqual(parseJsonRpcRequest('{"method":"VM.get_all","params":["s"],"id":1}'), {
    version: '1.0',
    method: 'VM.get_all',
    params: ['s'],
    id: 1,
  })
  assert.deepEqual(parseJsonRpcRequest(Buffer.from('{"jsonrpc":"2.0","method":"m","params":["s",1],"id":"abc"}')), {
    version: '2.0',
    method: 'm',
    params: ['s', 1],
    id: 'abc',
  })
  assert.deepEqual(parseJsonRpcRequest('{"jsonrpc":"2.0","method":"m","id":0}').params, [])
  assert.deepEqual(parseJsonRpcRequest('{"jsonrpc":"2.0","method":"m","params":null,"id":0}').params, [])
  assert.deepEqual(parseJsonRpcRequest('{"jsonrpc":"2.0","method":"m","params":{"a":1},"id":0}').params, [{ a: 1 }])
  // 1.0 requires an array.
  assert.throws(() => parseJsonRpcRequest('{"method":"m","id":1}'), JsonRpcRequestError)
  assert.throws(
    () => parseJsonRpcRequest('{"method":"m","params":{"a":1},"id":1}'),
    /1\.0 request: "params" must be an array/,
  )
})

test('id rules: integer or string; a missing or null id is refused', () => {
  for (const body of [
    '{"jsonrpc":"2.0","method":"m","params":[]}',
    '{"jsonrpc":"2.0","method":"m","params":[],"id":null}',
    '{"method":"m","params":[],"id":null}',
  ]) {
    assert.throws(() => parseJsonRpcRequest(body), /without an "id"/, body)
  }
  for (const id of ['1.5', 'true', '[1]', '{}']) {
    assert.throws(
      () => parseJsonRpcRequest(`{"jsonrpc":"2.0","method":"m","params":[],"id":${id}}`),
      /"id" must be an integer or a string/,
    )
  }
  assert.throws(
    () => parseJsonRpcRequest('not json'),
    (e: unknown) => e instanceof JsonRpcRequestError && /malformed JSON-RPC request/.test(e.message),
  )
  assert.throws(() => parseJsonRpcRequest('[1]'), /expected an object/)
  assert.throws(() => parseJsonRpcRequest('{"jsonrpc":"3.0","method":"m","id":1}'), /expected "2.0"/)
  assert.throws(
    () => parseJsonRpcRequest('{"jsonrpc":"2.0","params":[],"id":1}'),
    /"method" must be a non-empty string/,
  )
})

test('reply shapes per version', () => {
  assert.deepEqual(JSON.parse(encodeJsonRpcSuccess('1.0', 7, 'OpaqueRef:x')), {
    result: 'OpaqueRef:x',
    error: null,
    id: 7,
  })
  assert.deepEqual(JSON.parse(encodeJsonRpcSuccess('2.0', 'a', ['x'])), { jsonrpc: '2.0', result: ['x'], id: 'a' })
  assert.ok(!('error' in JSON.parse(encodeJsonRpcSuccess('2.0', 1, 1))))
  assert.deepEqual(JSON.parse(encodeJsonRpcFailure('1.0', 7, ['HANDLE_INVALID', 'VM', 'OpaqueRef:x'])), {
    result: null,
    error: ['HANDLE_INVALID', 'VM', 'OpaqueRef:x'],
    id: 7,
  })
  assert.deepEqual(JSON.parse(encodeJsonRpcFailure('2.0', 7, ['SESSION_INVALID', 'OpaqueRef:s'])), {
    jsonrpc: '2.0',
    error: { code: 1, message: 'SESSION_INVALID', data: ['OpaqueRef:s'] },
    id: 7,
  })
  // Values converted for the wire: Date → XAPI datetime, bigint → number, options as arrays.
  assert.deepEqual(
    JSON.parse(encodeJsonRpcSuccess('2.0', 1, { t: new Date(Date.UTC(2025, 2, 19, 4, 16, 24)), n: 5n, u: undefined })),
    { jsonrpc: '2.0', result: { t: '20250319T04:16:24Z', n: 5 }, id: 1 },
  )
  assert.deepEqual(JSON.parse(encodeJsonRpcSuccess('2.0', 1, null, parseType('string option'))).result, [])
  assert.deepEqual(JSON.parse(encodeJsonRpcSuccess('2.0', 1, 'x', parseType('string option'))).result, ['x'])
})

test('requests and responses round-trip; failures of both versions decode to [code, ...params]', () => {
  const req = encodeJsonRpcRequest('VM.start', ['s', 'v', false, true], 3)
  assert.deepEqual(JSON.parse(req), { jsonrpc: '2.0', method: 'VM.start', params: ['s', 'v', false, true], id: 3 })
  assert.deepEqual(parseJsonRpcRequest(req), {
    version: '2.0',
    method: 'VM.start',
    params: ['s', 'v', false, true],
    id: 3,
  })
  assert.deepEqual(JSON.parse(encodeJsonRpcRequest('m', [new Date(0)], 'x', '1.0')), {
    method: 'm',
    params: ['19700101T00:00:00Z'],
    id: 'x',
  })
  assert.deepEqual(decodeJsonRpcResponse(encodeJsonRpcSuccess('1.0', 1, { a: 1 })), {
    ok: true,
    result: { a: 1 },
    id: 1,
  })
  assert.deepEqual(decodeJsonRpcResponse(encodeJsonRpcSuccess('2.0', 2, '')), { ok: true, result: '', id: 2 })
  for (const v of ['1.0', '2.0'] as const) {
    assert.deepEqual(
      decodeJsonRpcResponse(encodeJsonRpcFailure(v, 1, ['VM_BAD_POWER_STATE', 'OpaqueRef:v', 'halted', 'running'])),
      {
        ok: false,
        errorDescription: ['VM_BAD_POWER_STATE', 'OpaqueRef:v', 'halted', 'running'],
        id: 1,
      },
    )
  }
  assert.throws(() => decodeJsonRpcResponse('{"id":1}'), JsonRpcResponseError)
  assert.throws(() => decodeJsonRpcResponse('<html>'), /malformed JSON-RPC response/)
})

test('envelopes (§3.1)', () => {
  assert.deepEqual(success(5), { Status: 'Success', Value: 5 })
  assert.deepEqual(failure('HANDLE_INVALID', 'VM', 3), {
    Status: 'Failure',
    ErrorDescription: ['HANDLE_INVALID', 'VM', '3'],
  })
  assert.deepEqual(unwrapEnvelope({ Status: 'Success', Value: '' }), { ok: true, value: '' })
  assert.deepEqual(unwrapEnvelope({ Status: 'Failure', ErrorDescription: ['X', 1] }), {
    ok: false,
    errorDescription: ['X', '1'],
  })
  assert.throws(() => unwrapEnvelope({ Status: 'Odd' }), EnvelopeError)
  assert.throws(() => unwrapEnvelope({ Status: 'Success' }), /without a Value/)
  assert.throws(() => unwrapEnvelope({ Status: 'Failure' }), /without an ErrorDescription/)
  assert.throws(() => unwrapEnvelope(['x']), /got an array/)
})
