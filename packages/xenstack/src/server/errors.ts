/**
 * How the server answers errors: `{ error, message, field?, problems? }` with a 4xx for anything the client can
 * fix (schema violations name the field, e.g. `body.name`), never a 5xx for bad input. Known error types of the
 * parts below map to their status; anything else is a 500 whose message is logged, not sent.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { EnvironmentError } from '../plugins/environment.js'
import { PluginLifecycleError } from '../plugins/lifecycle.js'
import { StateError } from '../state/store.js'
import { GraphBuildError } from '../engine/graph.js'
import { redactPasswords } from '../state/secrets.js'

export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly extra: { field?: string; problems?: string[] } = {},
  ) {
    super(message)
    this.name = 'HttpError'
  }
}

const STATE_STATUS = { not_found: 404, conflict: 409, invalid: 400 } as const

const ERROR_NAMES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
}

interface ValidationIssue {
  instancePath: string
  message?: string
  keyword: string
  params: Record<string, unknown>
}

/** `body.nodes[0].roles` from Ajv's `/nodes/0/roles` and the part of the request validated. */
function fieldOf(context: string, issue: ValidationIssue): string {
  let path = issue.instancePath
    .split('/')
    .filter(Boolean)
    .map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`))
    .join('')
  if (issue.keyword === 'required') path += `.${String(issue.params.missingProperty)}`
  if (issue.keyword === 'additionalProperties') path += `.${String(issue.params.additionalProperty)}`
  return `${context}${path}`
}

function describe(field: string, issue: ValidationIssue): string {
  switch (issue.keyword) {
    case 'required':
      return `${field} is required`
    case 'additionalProperties':
      return `${field} is not a known field`
    case 'enum':
      return `${field} must be one of ${(issue.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`
    default:
      return `${field} ${issue.message ?? 'is invalid'}`
  }
}

export function errorHandler(
  error: FastifyError & { validation?: ValidationIssue[]; validationContext?: string },
  req: FastifyRequest,
  reply: FastifyReply,
): void {
  if (error.validation?.length) {
    const issues = error.validation.map((v) => {
      const field = fieldOf(error.validationContext ?? 'body', v)
      return { field, message: describe(field, v) }
    })
    void reply.code(400).send({
      error: 'Bad Request',
      message: issues.map((i) => i.message).join('; '),
      field: issues[0].field,
      problems: issues.map((i) => i.message),
    })
    return
  }
  let status = 500
  let extra: Record<string, unknown> = {}
  if (error instanceof HttpError) {
    status = error.statusCode
    extra = error.extra
  } else if (error instanceof StateError) status = STATE_STATUS[error.code]
  else if (error instanceof EnvironmentError) {
    status = 400
    extra = { problems: error.problems }
  } else if (error instanceof PluginLifecycleError) status = STATE_STATUS[error.code]
  else if (error instanceof GraphBuildError) status = 400
  else if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500)
    status = error.statusCode
  if (status >= 500) {
    req.log.error({ err: error }, 'request failed')
    console.error(`xenstack server: ${req.method} ${req.url.split('?')[0]} failed: ${error.stack ?? error.message}`)
    void reply.code(500).send({ error: 'Internal Server Error', message: 'internal error (see the server log)' })
    return
  }
  void reply
    .code(status)
    .send(redactPasswords({ error: ERROR_NAMES[status] ?? 'Error', message: error.message, ...extra }) as object)
}
