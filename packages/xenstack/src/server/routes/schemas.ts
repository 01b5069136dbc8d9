/** JSON schemas shared by the routes: every body, parameter and query is checked before a handler runs. */

export const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]*$'

export const name = { type: 'string', pattern: NAME_PATTERN, minLength: 1, maxLength: 64 } as const

export const errorResponse = {
  type: 'object',
  properties: {
    error: { type: 'string' },
    message: { type: 'string' },
    field: { type: 'string' },
    problems: { type: 'array', items: { type: 'string' } },
  },
  required: ['error', 'message'],
} as const

/** The 4xx answers every route may give, documented once. */
export const errors = {
  400: errorResponse,
  401: errorResponse,
  404: errorResponse,
  409: errorResponse,
} as const

export const envParams = {
  type: 'object',
  properties: { env: name },
  required: ['env'],
  additionalProperties: false,
} as const

/** `/environments/:env/nodes/:node…` */
export const nodeParams = {
  type: 'object',
  properties: { env: name, node: name },
  required: ['env', 'node'],
  additionalProperties: false,
} as const

export const anyObject = { type: 'object', additionalProperties: true } as const
