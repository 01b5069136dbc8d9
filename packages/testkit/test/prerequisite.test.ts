import { test } from 'node:test'
import assert from 'node:assert/strict'
import { MissingPrerequisiteError, hasExecutable, inCI, requirePrerequisite } from '../src/index.js'

test('hasExecutable finds sh and not a made-up binary', () => {
  assert.equal(hasExecutable('sh'), true)
  assert.equal(hasExecutable('/bin/sh'), true)
  assert.equal(hasExecutable('xenstack-no-such-binary'), false)
})

test('a missing prerequisite fails in CI and names what is missing', (t) => {
  const saved = process.env.CI
  process.env.CI = 'true'
  try {
    assert.equal(inCI(), true)
    assert.throws(
      () => requirePrerequisite(t, 'frobnicator', () => false),
      (e: unknown) => e instanceof MissingPrerequisiteError && /frobnicator/.test(e.message),
    )
    assert.equal(
      requirePrerequisite(t, 'sh', () => true),
      true,
    )
  } finally {
    if (saved === undefined) delete process.env.CI
    else process.env.CI = saved
  }
})
