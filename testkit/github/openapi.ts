/**
 * Request and response validation against GitHub's own OpenAPI description (the vendored extract
 * made by scripts/extract-openapi.ts from @octokit/openapi).
 */
import Ajv from 'ajv';
import type { ErrorObject, ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import spec from './openapi/github-ops.json';

export interface OperationSpec {
  operationId: string;
  method: string;
  path: string;
  parameters: Array<{ name: string; in: string; required: boolean; schema: unknown }>;
  requestBody?: { required: boolean; schema: unknown };
  responses: Record<string, { schema?: unknown }>;
}

export interface ValidationFailure {
  direction: 'request' | 'response';
  operationId: string;
  method: string;
  path: string;
  status?: number;
  errors: string[];
}

/** An allowed deviation: errors of this operation whose instance path matches are not failures. */
export interface ValidationException {
  operationId: string;
  direction?: 'request' | 'response';
  instancePath: RegExp;
  reason: string;
}

/** GitHub's own example for pulls/get fails its schema on requested_teams[].type (team-simple requires it). */
export const DEFAULT_EXCEPTIONS: ValidationException[] = [
  { operationId: 'pulls/get', direction: 'response', instancePath: /^\/requested_teams\/\d+$/, reason: "GitHub's own example omits requested_teams[].type" },
  { operationId: 'pulls/list', direction: 'response', instancePath: /^\/\d+\/requested_teams\/\d+$/, reason: "GitHub's own example omits requested_teams[].type" },
];

interface CompiledOperation {
  spec: OperationSpec;
  regex: RegExp;
  paramNames: string[];
  params: ValidateFunction;
  body?: ValidateFunction;
  bodyRequired: boolean;
  responses: Map<string, ValidateFunction>;
}

export interface MatchedOperation {
  operationId: string;
  pathParams: Record<string, string>;
  compiled: CompiledOperation;
}

/** A GitHub-like description of the first request validation error, naming the field. */
export function describeRequestErrors(errors: ErrorObject[]): string {
  const first = errors[0];
  if (!first) return 'Invalid request.';
  const field = first.instancePath.replace(/^\//, '').split('/').filter(Boolean);
  if (first.keyword === 'required') {
    const missing = (first.params as { missingProperty?: string }).missingProperty ?? '?';
    return `Invalid request.\n\n"${[...field, missing].join('.')}" wasn't supplied.`;
  }
  const where = field.length > 0 ? `properties/${field.join('/')}` : 'the request body';
  const typeParam = (first.params as { type?: string | string[] }).type;
  if (first.keyword === 'type' && typeParam !== undefined) {
    const t = Array.isArray(typeParam) ? typeParam.join(' or ') : typeParam;
    const article = /^[aeiou]/.test(t) ? 'an' : 'a';
    return `Invalid request.\n\nFor '${where}', ${JSON.stringify(first.data)} is not ${article} ${t}.`;
  }
  return `Invalid request.\n\nFor '${where}', ${JSON.stringify(first.data)} ${first.message ?? 'is invalid'}.`;
}

export function formatErrors(errors: ErrorObject[] | null | undefined): string[] {
  return (errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? e.keyword} ${JSON.stringify(e.params)}`);
}

export class OpenApiValidator {
  private readonly ops: CompiledOperation[] = [];
  readonly source = spec.source;

  constructor(readonly exceptions: ValidationException[] = DEFAULT_EXCEPTIONS) {
    const bodies = new Ajv({ strict: false, allErrors: true, verbose: true });
    const params = new Ajv({ strict: false, allErrors: true, verbose: true, coerceTypes: true });
    for (const a of [bodies, params]) {
      addFormats(a);
      // GitHub-specific formats carry no checkable syntax beyond their type.
      a.addFormat('repo.nwo', /^[^/\s]+\/[^/\s]+$/);
    }
    for (const op of Object.values(spec.operations) as OperationSpec[]) {
      const paramNames: string[] = [];
      // Literal parts escaped (compare/{base}...{head} has dots); a parameter stops at `/`, and
      // compare's `{base}`, a git revision that cannot contain `..`, ends where `...` starts.
      const source = op.path
        .split(/(\{\w+\})/)
        .map((part) => {
          const name = /^\{(\w+)\}$/.exec(part)?.[1];
          if (name === undefined) return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
          paramNames.push(name);
          // `ref` in the git refs endpoints spans several segments (heads/feature/x).
          if (name === 'ref') return '(.+)';
          return name === 'base' ? '((?:(?!\\.\\.)[^/])+)' : '([^/]+)';
        })
        .join('');
      const paramSchema = {
        type: 'object',
        properties: Object.fromEntries(op.parameters.map((p) => [p.name, p.schema])),
        required: op.parameters.filter((p) => p.required).map((p) => p.name),
      };
      const responses = new Map<string, ValidateFunction>();
      for (const [status, r] of Object.entries(op.responses)) {
        if (r.schema !== undefined) responses.set(status, bodies.compile(r.schema as object));
      }
      this.ops.push({
        spec: op,
        regex: new RegExp(`^${source}$`),
        paramNames,
        params: params.compile(paramSchema),
        body: op.requestBody ? bodies.compile(op.requestBody.schema as object) : undefined,
        bodyRequired: op.requestBody?.required ?? false,
        responses,
      });
    }
  }

  operationIds(): string[] {
    return this.ops.map((o) => o.spec.operationId);
  }

  match(method: string, pathname: string): MatchedOperation | undefined {
    for (const op of this.ops) {
      if (op.spec.method !== method.toUpperCase()) continue;
      const m = op.regex.exec(pathname);
      if (!m) continue;
      const pathParams: Record<string, string> = {};
      op.paramNames.forEach((name, i) => {
        pathParams[name] = decodeURIComponent(m[i + 1] ?? '');
      });
      return { operationId: op.spec.operationId, pathParams, compiled: op };
    }
    return undefined;
  }

  /**
   * Validates path and query parameters (coerced to their declared types, written back into
   * `params`) and the JSON body. Returns the ajv errors, or an empty list.
   */
  validateRequest(m: MatchedOperation, params: Record<string, unknown>, body: unknown): ErrorObject[] {
    const errors: ErrorObject[] = [];
    if (!m.compiled.params(params)) errors.push(...(m.compiled.params.errors ?? []));
    if (m.compiled.body) {
      if (body === undefined) {
        if (m.compiled.bodyRequired) errors.push({ instancePath: '', schemaPath: '#/required', keyword: 'type', params: { type: 'object' }, message: 'request body is required', data: null });
      } else if (!m.compiled.body(body)) {
        errors.push(...(m.compiled.body.errors ?? []));
      }
    }
    return this.filter(m.operationId, 'request', errors);
  }

  /** Validates a response body for its status; statuses the description does not list are skipped. */
  validateResponse(m: MatchedOperation, status: number, body: unknown): ErrorObject[] | undefined {
    const validate = m.compiled.responses.get(String(status));
    if (!validate) return undefined;
    if (validate(body)) return [];
    return this.filter(m.operationId, 'response', validate.errors ?? []);
  }

  private filter(operationId: string, direction: 'request' | 'response', errors: ErrorObject[]): ErrorObject[] {
    return errors.filter(
      (e) => !this.exceptions.some((x) => x.operationId === operationId && (x.direction ?? direction) === direction && x.instancePath.test(e.instancePath)),
    );
  }
}
