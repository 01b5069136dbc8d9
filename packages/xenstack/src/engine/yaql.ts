/**
 * The subset of YAQL that Fuel's task graphs use, as a parser and an evaluator (no string matching).
 *
 * Fuel (nailgun's TransactionSerializer) evaluates `{yaql_exp: …}` in a task's `condition` and in `upload_file`'s
 * `data`, with `$` the node's new data and the last successful deployment's data as the old state. The corpus
 * release uses `$.toYaml()` and `$.network_metadata.nodes.values().toYaml()`; conditions in Fuel 9+ graphs use
 * `changed($.a.b)`, `changedAny(…)`, `changedAll(…)`, `new(…)`, `old(…)`, `isUndef(…)`, comparisons and
 * `and`/`or`/`not`. That is what is here:
 *
 *   expr    := or ;  or := and ('or' and)* ;  and := not ('and' not)* ;  not := 'not' not | cmp
 *   cmp     := postfix (('=' | '!=' | '<' | '<=' | '>' | '>=' | 'in') postfix)?
 *   postfix := primary ('.' name ('(' ')')? | '[' expr ']')*
 *   primary := '$' | '$' name | number | 'string' | "string" | true | false | null | name '(' args ')' |
 *              '(' expr ')' | '[' args ']'
 *
 * Methods: `values()`, `keys()`, `len()`, `toYaml()`; functions: `changed`, `changedAny`, `changedAll`, `new`,
 * `old`, `isUndef`, `len`. Anything else is refused when the expression is parsed, with its column, so a graph
 * using it fails at construction rather than at deploy time.
 */
import { isDeepStrictEqual } from 'node:util'
import { stringify as stringifyYaml } from 'yaml'

export class YaqlError extends Error {
  constructor(
    message: string,
    readonly column?: number,
  ) {
    super(column === undefined ? message : `${message} (column ${column})`)
    this.name = 'YaqlError'
  }
}

type Node =
  | { k: 'lit'; v: unknown }
  | { k: 'root' }
  | { k: 'var'; name: string }
  | { k: 'member'; of: Node; name: string }
  | { k: 'index'; of: Node; at: Node }
  | { k: 'method'; of: Node; name: string }
  | { k: 'call'; name: string; args: Node[] }
  | { k: 'list'; items: Node[] }
  | { k: 'not'; of: Node }
  | { k: 'bin'; op: string; a: Node; b: Node }

const METHODS = new Set(['values', 'keys', 'len', 'toYaml'])
const FUNCTIONS = new Set(['changed', 'changedAny', 'changedAll', 'new', 'old', 'isUndef', 'len'])
const COMPARISONS = new Set(['=', '!=', '<', '<=', '>', '>=', 'in'])

interface Token {
  t: 'name' | 'num' | 'str' | 'op' | 'var' | 'end'
  v: string
  col: number
}

function tokenize(src: string): Token[] {
  const out: Token[] = []
  let i = 0
  while (i < src.length) {
    const c = src[i]
    const col = i + 1
    if (/\s/.test(c)) i++
    else if (c === '$') {
      const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?/.exec(src.slice(i)) as RegExpExecArray
      out.push({ t: 'var', v: m[1] ?? '', col })
      i += m[0].length
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i)) as RegExpExecArray
      out.push({ t: 'name', v: m[0], col })
      i += m[0].length
    } else if (/[0-9]/.test(c)) {
      const m = /^[0-9]+(\.[0-9]+)?/.exec(src.slice(i)) as RegExpExecArray
      out.push({ t: 'num', v: m[0], col })
      i += m[0].length
    } else if (c === "'" || c === '"') {
      let j = i + 1
      let s = ''
      while (j < src.length && src[j] !== c) {
        if (src[j] === '\\' && j + 1 < src.length) j++
        s += src[j++]
      }
      if (j >= src.length) throw new YaqlError('unterminated string', col)
      out.push({ t: 'str', v: s, col })
      i = j + 1
    } else {
      const two = src.slice(i, i + 2)
      if (['!=', '<=', '>='].includes(two)) {
        out.push({ t: 'op', v: two, col })
        i += 2
      } else if ('.()[],=<>'.includes(c)) {
        out.push({ t: 'op', v: c, col })
        i++
      } else throw new YaqlError(`unsupported character ${JSON.stringify(c)}`, col)
    }
  }
  out.push({ t: 'end', v: '', col: src.length + 1 })
  return out
}

class Parser {
  private pos = 0
  constructor(private readonly toks: Token[]) {}

  private peek(): Token {
    return this.toks[this.pos]
  }
  private next(): Token {
    return this.toks[this.pos++]
  }
  private is(t: Token['t'], v?: string): boolean {
    const k = this.peek()
    return k.t === t && (v === undefined || k.v === v)
  }
  private expect(v: string): void {
    const k = this.next()
    if (k.t !== 'op' || k.v !== v)
      throw new YaqlError(
        `expected ${JSON.stringify(v)}, found ${k.t === 'end' ? 'the end' : JSON.stringify(k.v)}`,
        k.col,
      )
  }

  parse(): Node {
    const n = this.or()
    const k = this.peek()
    if (k.t !== 'end') throw new YaqlError(`unexpected ${JSON.stringify(k.v)}`, k.col)
    return n
  }
  private or(): Node {
    let a = this.and()
    while (this.is('name', 'or')) {
      this.next()
      a = { k: 'bin', op: 'or', a, b: this.and() }
    }
    return a
  }
  private and(): Node {
    let a = this.not()
    while (this.is('name', 'and')) {
      this.next()
      a = { k: 'bin', op: 'and', a, b: this.not() }
    }
    return a
  }
  private not(): Node {
    if (this.is('name', 'not')) {
      this.next()
      return { k: 'not', of: this.not() }
    }
    return this.cmp()
  }
  private cmp(): Node {
    const a = this.postfix()
    const k = this.peek()
    if ((k.t === 'op' || k.t === 'name') && COMPARISONS.has(k.v)) {
      this.next()
      return { k: 'bin', op: k.v, a, b: this.postfix() }
    }
    return a
  }
  private postfix(): Node {
    let n = this.primary()
    for (;;) {
      if (this.is('op', '.')) {
        this.next()
        const name = this.next()
        if (name.t !== 'name') throw new YaqlError('expected a name after "."', name.col)
        if (this.is('op', '(')) {
          this.next()
          if (!METHODS.has(name.v))
            throw new YaqlError(`unsupported method ${name.v}() (supported: ${[...METHODS].join(', ')})`, name.col)
          if (!this.is('op', ')')) throw new YaqlError(`${name.v}() takes no arguments here`, this.peek().col)
          this.next()
          n = { k: 'method', of: n, name: name.v }
        } else n = { k: 'member', of: n, name: name.v }
      } else if (this.is('op', '[')) {
        this.next()
        const at = this.or()
        this.expect(']')
        n = { k: 'index', of: n, at }
      } else return n
    }
  }
  private args(close: string): Node[] {
    const args: Node[] = []
    if (this.is('op', close)) {
      this.next()
      return args
    }
    for (;;) {
      args.push(this.or())
      if (this.is('op', ',')) this.next()
      else break
    }
    this.expect(close)
    return args
  }
  private primary(): Node {
    const k = this.next()
    if (k.t === 'var') return k.v === '' ? { k: 'root' } : { k: 'var', name: k.v }
    if (k.t === 'num') return { k: 'lit', v: Number(k.v) }
    if (k.t === 'str') return { k: 'lit', v: k.v }
    if (k.t === 'op' && k.v === '(') {
      const n = this.or()
      this.expect(')')
      return n
    }
    if (k.t === 'op' && k.v === '[') return { k: 'list', items: this.args(']') }
    if (k.t === 'name') {
      if (k.v === 'true' || k.v === 'false') return { k: 'lit', v: k.v === 'true' }
      if (k.v === 'null') return { k: 'lit', v: null }
      if (this.is('op', '(')) {
        this.next()
        if (!FUNCTIONS.has(k.v))
          throw new YaqlError(`unsupported function ${k.v}() (supported: ${[...FUNCTIONS].join(', ')})`, k.col)
        return { k: 'call', name: k.v, args: this.args(')') }
      }
      throw new YaqlError(`unexpected name ${k.v} (data is reached from $, e.g. $.${k.v})`, k.col)
    }
    throw new YaqlError(`unexpected ${k.t === 'end' ? 'end of expression' : JSON.stringify(k.v)}`, k.col)
  }
}

export interface YaqlContext {
  /** `$`: the node's data as it will be deployed. */
  data: unknown
  /** The same data from the last successful deployment; undefined when there was none (everything changed). */
  old?: unknown
  /** `$name` variables (Fuel: `$node`, `$common`). */
  vars?: Record<string, unknown>
}

/** A parsed expression: parse once (at graph construction), evaluate per node. */
export class YaqlExpression {
  private readonly root: Node

  constructor(readonly source: string) {
    if (typeof source !== 'string' || source.trim() === '') throw new YaqlError('yaql_exp must be a non-empty string')
    this.root = new Parser(tokenize(source)).parse()
  }

  evaluate(ctx: YaqlContext): unknown {
    return this.eval(this.root, ctx.data, ctx)
  }

  /** Dotted paths under `$` the expression reads (redeploy digests hash their values). */
  paths(): string[] {
    const out = new Set<string>()
    const chain = (n: Node): string[] | undefined => {
      if (n.k === 'root') return []
      if (n.k === 'member') {
        const c = chain(n.of)
        return c && [...c, n.name]
      }
      return undefined
    }
    const walk = (n: Node): void => {
      const c = chain(n)
      if (c) {
        if (c.length) out.add(c.join('.'))
        return
      }
      if (n.k === 'member' || n.k === 'method' || n.k === 'not') walk(n.of)
      else if (n.k === 'index') {
        walk(n.of)
        walk(n.at)
      } else if (n.k === 'call') n.args.forEach(walk)
      else if (n.k === 'list') n.items.forEach(walk)
      else if (n.k === 'bin') {
        walk(n.a)
        walk(n.b)
      }
    }
    walk(this.root)
    return [...out]
  }

  private eval(n: Node, root: unknown, ctx: YaqlContext): unknown {
    switch (n.k) {
      case 'lit':
        return n.v
      case 'root':
        return root
      case 'var':
        return ctx.vars?.[n.name]
      case 'member': {
        const of = this.eval(n.of, root, ctx)
        return of !== null && typeof of === 'object' && !Array.isArray(of)
          ? (of as Record<string, unknown>)[n.name]
          : undefined
      }
      case 'index': {
        const of = this.eval(n.of, root, ctx)
        const at = this.eval(n.at, root, ctx)
        if (Array.isArray(of) && typeof at === 'number') return of[at]
        if (of !== null && typeof of === 'object' && typeof at === 'string') return (of as Record<string, unknown>)[at]
        return undefined
      }
      case 'list':
        return n.items.map((i) => this.eval(i, root, ctx))
      case 'not':
        return !yaqlTruthy(this.eval(n.of, root, ctx))
      case 'method':
        return method(n.name, this.eval(n.of, root, ctx), this.source)
      case 'bin':
        return this.binary(n, root, ctx)
      case 'call':
        return this.call(n, root, ctx)
    }
  }

  private binary(n: Extract<Node, { k: 'bin' }>, root: unknown, ctx: YaqlContext): unknown {
    if (n.op === 'and') return yaqlTruthy(this.eval(n.a, root, ctx)) && yaqlTruthy(this.eval(n.b, root, ctx))
    if (n.op === 'or') return yaqlTruthy(this.eval(n.a, root, ctx)) || yaqlTruthy(this.eval(n.b, root, ctx))
    const a = this.eval(n.a, root, ctx)
    const b = this.eval(n.b, root, ctx)
    switch (n.op) {
      case '=':
        return isDeepStrictEqual(a ?? null, b ?? null)
      case '!=':
        return !isDeepStrictEqual(a ?? null, b ?? null)
      case 'in':
        return Array.isArray(b)
          ? b.some((x) => isDeepStrictEqual(x, a))
          : b !== null && typeof b === 'object' && typeof a === 'string' && a in b
      default: {
        if (!((typeof a === 'number' && typeof b === 'number') || (typeof a === 'string' && typeof b === 'string')))
          throw new YaqlError(
            `${this.source}: ${n.op} compares numbers or strings, found ${typeName(a)} and ${typeName(b)}`,
          )
        return n.op === '<' ? a < b : n.op === '<=' ? a <= b : n.op === '>' ? a > b : a >= b
      }
    }
  }

  private call(n: Extract<Node, { k: 'call' }>, root: unknown, ctx: YaqlContext): unknown {
    const arity = (min: number, max = min) => {
      if (n.args.length < min || n.args.length > max)
        throw new YaqlError(`${this.source}: ${n.name}() takes ${min === max ? min : `${min} to ${max}`} arguments`)
    }
    // Without an old state (first deployment, or a node that never deployed) everything counts as changed.
    const changed = (arg: Node | undefined) =>
      ctx.old === undefined ||
      !isDeepStrictEqual(arg ? this.eval(arg, ctx.data, ctx) : ctx.data, arg ? this.eval(arg, ctx.old, ctx) : ctx.old)
    switch (n.name) {
      case 'changed':
        arity(0, 1)
        return changed(n.args[0])
      case 'changedAny':
        arity(1, Infinity)
        return n.args.some((a) => changed(a))
      case 'changedAll':
        arity(1, Infinity)
        return n.args.every((a) => changed(a))
      case 'new':
        arity(0, 1)
        return n.args[0] ? this.eval(n.args[0], ctx.data, ctx) : ctx.data
      case 'old':
        arity(0, 1)
        if (ctx.old === undefined) return undefined
        return n.args[0] ? this.eval(n.args[0], ctx.old, ctx) : ctx.old
      case 'isUndef':
        arity(1)
        return this.eval(n.args[0], root, ctx) === undefined
      case 'len':
        arity(1)
        return method('len', this.eval(n.args[0], root, ctx), this.source)
      default:
        throw new YaqlError(`${this.source}: unsupported function ${n.name}()`)
    }
  }
}

function method(name: string, of: unknown, source: string): unknown {
  switch (name) {
    case 'toYaml':
      return stringifyYaml(of ?? null, { sortMapEntries: true })
    case 'values':
    case 'keys':
      if (of === null || typeof of !== 'object' || Array.isArray(of))
        throw new YaqlError(`${source}: ${name}() needs a mapping, found ${typeName(of)}`)
      return name === 'values' ? Object.values(of) : Object.keys(of)
    case 'len':
      if (typeof of === 'string' || Array.isArray(of)) return of.length
      if (of !== null && typeof of === 'object') return Object.keys(of).length
      throw new YaqlError(`${source}: len() needs a list, mapping or string, found ${typeName(of)}`)
    default:
      throw new YaqlError(`${source}: unsupported method ${name}()`)
  }
}

/** YAQL's truth: empty lists and mappings are false. */
export function yaqlTruthy(v: unknown): boolean {
  if (Array.isArray(v)) return v.length > 0
  if (v !== null && typeof v === 'object') return Object.keys(v).length > 0
  return Boolean(v)
}

function typeName(v: unknown): string {
  return v === null || v === undefined ? 'null' : Array.isArray(v) ? 'a list' : typeof v
}
