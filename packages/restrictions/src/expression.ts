/**
 * Fuel's restrictions expression language: one parser and one evaluator for the server and the browser.
 *
 * Grammar (nailgun's PLY grammar and fuel-ui's Jison grammar agree on it):
 *   literals      integers and decimals, 'single' or "double" quoted strings, true, false, null
 *   model paths   model:dotted.path (model is settings, cluster, version, networking_parameters, release,
 *                 default, node_attributes, nic_attributes, …); a bare dotted.path means the `default` model
 *   operators     ==  !=  in  and  or  not  ( )
 *   precedence    lowest to highest: or < and < (== !=) < (in, not); all binary operators are left-associative.
 *                 So `not a == b` is `(not a) == b` and `a == b in c` is `a == (b in c)`, exactly as in Fuel.
 *
 * Semantics (one definition, documented here, used everywhere):
 *   - `==`/`!=` are strict: same type and value (numbers numerically, arrays and objects compared deeply).
 *     This is fuel-ui's `===`; nailgun's Python `==` also equated 1 and true, which no real expression relies on.
 *   - `and`/`or` short-circuit and return an operand, like Python; a condition's result is its truthiness.
 *   - Truthiness is Python's: null, false, 0, '' and empty lists/objects are false.
 *   - `a in b`: b a list → some element equals a; b a string → a is a substring; b an object → a is a key.
 *     Any other right operand is an evaluation error (nailgun raised TypeError).
 *   - Strict paths (the default): a path that does not resolve is an error naming the path and column.
 *     Non-strict: it evaluates to null.
 */

export type Value = null | boolean | number | string | Value[] | { [key: string]: Value } | unknown

export type Node =
  | { kind: 'literal'; value: null | boolean | number | string; column: number }
  | { kind: 'path'; model: string; path: string[]; text: string; column: number }
  | { kind: 'not'; operand: Node; column: number }
  | { kind: 'binary'; op: '==' | '!=' | 'in' | 'and' | 'or'; left: Node; right: Node; column: number }

/** A syntax error; `column` is 1-based and points at the offending character. */
export class ExpressionSyntaxError extends Error {
  constructor(
    readonly expression: string,
    readonly column: number,
    readonly reason: string,
  ) {
    super(`${reason} at column ${column} of expression "${expression}"\n  ${expression}\n  ${' '.repeat(column - 1)}^`)
    this.name = 'ExpressionSyntaxError'
  }
}

/** An evaluation error (a strict path that does not resolve, `in` over a non-container). */
export class ExpressionEvaluationError extends Error {
  constructor(
    readonly expression: string,
    readonly column: number,
    readonly reason: string,
  ) {
    super(`${reason} (column ${column} of expression "${expression}")`)
    this.name = 'ExpressionEvaluationError'
  }
}

type Token =
  | { type: 'literal'; value: null | boolean | number | string; column: number }
  | { type: 'path'; model: string; path: string; text: string; column: number }
  | { type: 'op'; value: '==' | '!=' | 'in' | 'and' | 'or' | 'not' | '(' | ')'; column: number }
  | { type: 'end'; column: number }

const PATH_CHAR = /[\w.-]/

/** The most tokens an expression may have (see tokenize). */
export const MAX_TOKENS = 1000

function tokenize(src: string): Token[] {
  const tokens: Token[] = []
  let i = 0
  const fail = (col: number, reason: string): never => {
    throw new ExpressionSyntaxError(src, col + 1, reason)
  }
  while (i < src.length) {
    const c = src[i]
    if (/\s/.test(c)) {
      i++
      continue
    }
    const start = i
    if (c === '(' || c === ')') {
      tokens.push({ type: 'op', value: c, column: start + 1 })
      i++
    } else if (c === '=' || c === '!') {
      if (src[i + 1] !== '=') fail(i, `expected "${c}=" but found "${c}${src[i + 1] ?? ''}"`)
      tokens.push({ type: 'op', value: c === '=' ? '==' : '!=', column: start + 1 })
      i += 2
    } else if (c === "'" || c === '"') {
      let j = i + 1
      let s = ''
      while (j < src.length && src[j] !== c) {
        if (src[j] === '\\' && j + 1 < src.length) j++
        s += src[j]
        j++
      }
      if (j >= src.length) fail(start, `unterminated string starting`)
      tokens.push({ type: 'literal', value: s, column: start + 1 })
      i = j + 1
    } else if (/[0-9]/.test(c) || (c === '-' && /[0-9]/.test(src[i + 1] ?? ''))) {
      const m = /^-?[0-9]+(\.[0-9]+)?/.exec(src.slice(i))!
      // A number directly followed by a path character is not a number (e.g. a path like 1abc:x).
      if (i + m[0].length < src.length && /[A-Za-z_:]/.test(src[i + m[0].length])) {
        i = readWord(i)
      } else {
        tokens.push({ type: 'literal', value: Number(m[0]), column: start + 1 })
        i += m[0].length
      }
    } else if (/[\w:]/.test(c)) {
      i = readWord(i)
    } else {
      fail(i, `unexpected character "${c}"`)
    }
  }
  // The parser and evaluator recurse once per nesting level or chained operator; a bound keeps a hostile
  // expression from overflowing the stack (Fuel's longest restrictions have a few dozen tokens).
  if (tokens.length > MAX_TOKENS)
    fail(tokens[MAX_TOKENS].column - 1, `expression too long: more than ${MAX_TOKENS} tokens`)
  tokens.push({ type: 'end', column: src.length + 1 })
  return tokens

  function readWord(from: number): number {
    let j = from
    let model: string | undefined
    while (j < src.length && /\w/.test(src[j])) j++
    if (src[j] === ':') {
      model = src.slice(from, j)
      j++
      const pathStart = j
      while (j < src.length && PATH_CHAR.test(src[j])) j++
      if (j === pathStart) fail(j, `expected a dotted path after "${model}:"`)
      const path = src.slice(pathStart, j)
      tokens.push({ type: 'path', model: model || 'default', path, text: src.slice(from, j), column: from + 1 })
      return j
    }
    while (j < src.length && PATH_CHAR.test(src[j])) j++
    const word = src.slice(from, j)
    switch (word) {
      case 'true':
        tokens.push({ type: 'literal', value: true, column: from + 1 })
        break
      case 'false':
        tokens.push({ type: 'literal', value: false, column: from + 1 })
        break
      case 'null':
        tokens.push({ type: 'literal', value: null, column: from + 1 })
        break
      case 'and':
      case 'or':
      case 'not':
      case 'in':
        tokens.push({ type: 'op', value: word, column: from + 1 })
        break
      default:
        // fuel-ui: a path without a model refers to the `default` model.
        tokens.push({ type: 'path', model: 'default', path: word, text: word, column: from + 1 })
    }
    return j
  }
}

/** Parses an expression; throws ExpressionSyntaxError with the column of the problem. */
export function parseExpression(src: string): Node {
  if (typeof src !== 'string') throw new ExpressionSyntaxError(String(src), 1, `expected an expression string`)
  const tokens = tokenize(src)
  let pos = 0
  const peek = () => tokens[pos]
  const isOp = (v: string) => {
    const t = tokens[pos]
    return t.type === 'op' && t.value === v
  }
  const describe = (t: Token) =>
    t.type === 'end'
      ? 'end of expression'
      : t.type === 'op'
        ? `"${t.value}"`
        : t.type === 'path'
          ? `path "${t.text}"`
          : `literal ${JSON.stringify(t.value)}`

  function parseOr(): Node {
    let left = parseAnd()
    while (isOp('or')) {
      const column = peek().column
      pos++
      left = { kind: 'binary', op: 'or', left, right: parseAnd(), column }
    }
    return left
  }
  function parseAnd(): Node {
    let left = parseEquality()
    while (isOp('and')) {
      const column = peek().column
      pos++
      left = { kind: 'binary', op: 'and', left, right: parseEquality(), column }
    }
    return left
  }
  function parseEquality(): Node {
    let left = parseIn()
    while (isOp('==') || isOp('!=')) {
      const t = peek() as Extract<Token, { type: 'op' }>
      pos++
      left = { kind: 'binary', op: t.value as '==' | '!=', left, right: parseIn(), column: t.column }
    }
    return left
  }
  function parseIn(): Node {
    let left = parsePrefix()
    while (isOp('in')) {
      const column = peek().column
      pos++
      left = { kind: 'binary', op: 'in', left, right: parsePrefix(), column }
    }
    return left
  }
  function parsePrefix(): Node {
    const t = peek()
    if (t.type === 'op' && t.value === 'not') {
      pos++
      return { kind: 'not', operand: parsePrefix(), column: t.column }
    }
    if (t.type === 'op' && t.value === '(') {
      pos++
      const inner = parseOr()
      if (!isOp(')')) throw new ExpressionSyntaxError(src, peek().column, `expected ")" but found ${describe(peek())}`)
      pos++
      return inner
    }
    if (t.type === 'literal') {
      pos++
      return { kind: 'literal', value: t.value, column: t.column }
    }
    if (t.type === 'path') {
      pos++
      return { kind: 'path', model: t.model, path: t.path.split('.'), text: t.text, column: t.column }
    }
    throw new ExpressionSyntaxError(src, t.column, `expected a value, a path, "not" or "(" but found ${describe(t)}`)
  }

  const node = parseOr()
  if (peek().type !== 'end') {
    throw new ExpressionSyntaxError(
      src,
      peek().column,
      `expected an operator or end of expression but found ${describe(peek())}`,
    )
  }
  return node
}

/** The models an expression is evaluated against, by name (settings, cluster, version, …). */
export type Models = Record<string, unknown>

export interface EvaluateOptions {
  /** A missing path is an error (true, the default) or null (false). */
  strict?: boolean
}

const MISSING = Symbol('missing')

function resolve(models: Models, model: string, path: string[]): unknown {
  if (!Object.prototype.hasOwnProperty.call(models, model)) return MISSING
  let cur: unknown = models[model]
  for (const key of path) {
    if (cur === null || typeof cur !== 'object' || !Object.prototype.hasOwnProperty.call(cur, key)) return MISSING
    cur = (cur as Record<string, unknown>)[key]
  }
  return cur === undefined ? MISSING : cur
}

/** Python truthiness: null, false, 0, '' and empty arrays/objects are false. */
export function truthy(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === '') return false
  if (Array.isArray(v)) return v.length > 0
  if (typeof v === 'object') return Object.keys(v as object).length > 0
  return true
}

/** Strict deep equality (fuel-ui's `===` extended to lists and objects). */
export function valuesEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (a === undefined) a = null
  if (b === undefined) b = null
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return a === b
  if (Array.isArray(a) !== Array.isArray(b)) return false
  if (Array.isArray(a)) {
    const bb = b as unknown[]
    return a.length === bb.length && a.every((x, i) => valuesEqual(x, bb[i]))
  }
  const ka = Object.keys(a as object)
  const kb = Object.keys(b as object)
  return (
    ka.length === kb.length &&
    ka.every((k) => valuesEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
  )
}

/** Evaluates a parsed expression and returns its value (use `truthy` for a condition's result). */
export function evaluateNode(node: Node, models: Models, source: string, options: EvaluateOptions = {}): unknown {
  const strict = options.strict ?? true
  const ev = (n: Node): unknown => {
    switch (n.kind) {
      case 'literal':
        return n.value
      case 'path': {
        const v = resolve(models, n.model, n.path)
        if (v !== MISSING) return v
        if (!strict) return null
        if (!Object.prototype.hasOwnProperty.call(models, n.model)) {
          throw new ExpressionEvaluationError(
            source,
            n.column,
            `unknown model "${n.model}" in "${n.text}" (expected one of ${Object.keys(models).join(', ') || 'no models'})`,
          )
        }
        throw new ExpressionEvaluationError(source, n.column, `path "${n.text}" does not exist`)
      }
      case 'not':
        return !truthy(ev(n.operand))
      case 'binary': {
        if (n.op === 'and') {
          const l = ev(n.left)
          return truthy(l) ? ev(n.right) : l
        }
        if (n.op === 'or') {
          const l = ev(n.left)
          return truthy(l) ? l : ev(n.right)
        }
        const l = ev(n.left)
        const r = ev(n.right)
        if (n.op === '==') return valuesEqual(l, r)
        if (n.op === '!=') return !valuesEqual(l, r)
        if (Array.isArray(r)) return r.some((x) => valuesEqual(l, x))
        if (typeof r === 'string') {
          if (typeof l !== 'string') {
            throw new ExpressionEvaluationError(source, n.column, `"in" over a string needs a string on the left`)
          }
          return r.includes(l)
        }
        if (r !== null && typeof r === 'object') {
          return typeof l === 'string' && Object.prototype.hasOwnProperty.call(r, l)
        }
        throw new ExpressionEvaluationError(
          source,
          n.column,
          `the right side of "in" must be a list, a string or a map, found ${r === null ? 'null' : typeof r}`,
        )
      }
    }
  }
  return ev(node)
}

/** A parsed expression, reusable against different models. */
export class Expression {
  readonly ast: Node
  constructor(
    readonly source: string,
    readonly strict = true,
  ) {
    this.ast = parseExpression(source)
  }
  /** The value of the expression. */
  value(models: Models, options: EvaluateOptions = {}): unknown {
    return evaluateNode(this.ast, models, this.source, { strict: options.strict ?? this.strict })
  }
  /** The expression as a condition (Python truthiness of its value). */
  evaluate(models: Models, options: EvaluateOptions = {}): boolean {
    return truthy(this.value(models, options))
  }
  /** Every model path the expression reads, as `model:dotted.path`. */
  paths(): string[] {
    const out: string[] = []
    const walk = (n: Node) => {
      if (n.kind === 'path') out.push(`${n.model}:${n.path.join('.')}`)
      else if (n.kind === 'not') walk(n.operand)
      else if (n.kind === 'binary') {
        walk(n.left)
        walk(n.right)
      }
    }
    walk(this.ast)
    return out
  }
}

const cache = new Map<string, Node>()

/** Parses (with a cache) and evaluates `source` as a condition. */
export function evaluateExpression(source: string, models: Models, options: EvaluateOptions = {}): boolean {
  let ast = cache.get(source)
  if (!ast) {
    ast = parseExpression(source)
    if (cache.size > 2000) cache.clear()
    cache.set(source, ast)
  }
  return truthy(evaluateNode(ast, models, source, options))
}
