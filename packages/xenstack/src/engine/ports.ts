/**
 * The narrow interfaces the engine needs from the layers below. Node access (`src/node`) provides the real
 * executors and resources; these types are structural subsets of them, so its `Executor` and `Resource`
 * plug in as they are, and tests can run the engine on the local machine.
 */

export interface ExecRunOptions {
  stdin?: string | Buffer
  env?: Record<string, string>
  cwd?: string
  timeoutMs?: number
  allowedExitCodes?: readonly number[]
}

export interface ExecResult {
  code: number
  stdout: string
  stderr: string
}

/** A node's executor (node access's `Executor`). */
export interface NodeExecutor {
  readonly host: string
  run(command: string | readonly string[], options?: ExecRunOptions): Promise<ExecResult>
  put(path: string, data: string | Buffer, options?: { mode?: number }): Promise<void>
  get(path: string): Promise<Buffer>
}

/** One resource's plan or apply entry (node access's `PlanEntry` / `ApplyEntry`). */
export interface ResourceReport {
  id: string
  status?: 'unchanged' | 'changed' | 'failed' | 'skipped'
  inSync?: boolean
  diff: string[]
  note?: string
  error?: string
}

/**
 * Node access's verbs over a list of resources, bound to one node: `plan` changes nothing, `apply` converges.
 * The engine treats resources as opaque values it hands back to these functions.
 */
export interface ResourceVerbs<R = unknown> {
  plan(exec: NodeExecutor, resources: readonly R[]): Promise<ResourceReport[]>
  apply(exec: NodeExecutor, resources: readonly R[]): Promise<{ entries: ResourceReport[]; ok: boolean }>
}

/** How the engine reaches nodes. */
export interface NodeAccess {
  executor(node: string): NodeExecutor | Promise<NodeExecutor>
  /** Facts about the node (OS family, interfaces, …) used by conditions and native tasks. */
  facts?(node: string): Promise<Record<string, unknown>>
  resources?: ResourceVerbs
}
