/**
 * Extracts the GitHub REST operations the product (and the GitHub stand-in) use from
 * @octokit/openapi's dereferenced description into a small vendored JSON file.
 *
 * @octokit/openapi unpacks to ~385 MB, so it is NOT a project dependency. Install it elsewhere:
 *
 *   npm install --prefix /tmp/octokit-openapi @octokit/openapi
 *   npx tsx scripts/extract-openapi.ts /tmp/octokit-openapi/node_modules/@octokit/openapi
 *
 * Output: testkit/github/openapi/github-ops.json. Only the listed operations are kept, with
 * their parameters, request body schema and the response schemas of the listed status codes.
 * Documentation-only keywords (description, example(s), title, externalDocs, x-*) are dropped, and
 * the examples of kept 2xx responses are checked against their own schema, printing any that fail
 * (GitHub's pulls/get example fails on requested_teams[].type, which is why the stand-in allows
 * per-operation exceptions).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';

/** operationId → the response status codes to keep. */
export const OPERATIONS: Record<string, string[]> = {
  'pulls/get': ['200', '404'],
  'pulls/list': ['200', '422'],
  'pulls/create': ['201', '403', '422'],
  'pulls/merge': ['200', '403', '404', '405', '409', '422'],
  'pulls/list-commits': ['200'],
  'pulls/list-files': ['200', '422'],
  'repos/get': ['200', '301', '403', '404'],
  'repos/compare-commits': ['200', '404'],
  'git/get-commit': ['200', '404'],
  'git/create-commit': ['201', '404', '409', '422'],
  'git/get-tree': ['200', '404', '422'],
  'git/create-tree': ['201', '403', '404', '422'],
  'git/get-ref': ['200', '404'],
  'git/create-ref': ['201', '422'],
  'git/update-ref': ['200', '422'],
  'repos/list-commits': ['200', '400', '404', '409'],
  'apps/create-installation-access-token': ['201', '401', '403', '404', '422'],
};

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

const DROP = new Set(['description', 'example', 'examples', 'title', 'externalDocs', 'deprecated', 'summary']);
const SCHEMA_MAPS = new Set(['properties', 'patternProperties', 'definitions', '$defs']);
const SCHEMA_LISTS = new Set(['allOf', 'anyOf', 'oneOf']);
const SCHEMA_ONE = new Set(['items', 'additionalProperties', 'not']);

function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Strip documentation keywords from a JSON schema, keeping property NAMES such as "description". */
export function cleanSchema(schema: Json, formats: Set<string>): Json {
  if (!isObject(schema)) return schema;
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(schema)) {
    if (DROP.has(key) || key.startsWith('x-')) continue;
    if (SCHEMA_MAPS.has(key) && isObject(value)) {
      out[key] = Object.fromEntries(Object.entries(value).map(([name, sub]) => [name, cleanSchema(sub, formats)]));
    } else if (SCHEMA_LISTS.has(key) && Array.isArray(value)) {
      out[key] = value.map((sub) => cleanSchema(sub, formats));
    } else if (SCHEMA_ONE.has(key) && isObject(value)) {
      out[key] = cleanSchema(value, formats);
    } else {
      if (key === 'format' && typeof value === 'string') formats.add(value);
      out[key] = value;
    }
  }
  return convertNullable(out);
}

/**
 * OpenAPI 3.0 `nullable: true` → plain JSON Schema, so ajv validates it without OpenAPI extensions:
 * with a `type`, null joins the type (and the enum, if any); without one (allOf/anyOf/oneOf
 * wrappers), the schema becomes `anyOf: [schema, {type: null}]`.
 */
function convertNullable(schema: JsonObject): JsonObject {
  if (!('nullable' in schema)) return schema;
  const { nullable, ...rest } = schema;
  if (nullable !== true) return rest;
  if (typeof rest.type === 'string') {
    rest.type = [rest.type, 'null'];
    if (Array.isArray(rest.enum) && !rest.enum.includes(null)) rest.enum = [...rest.enum, null];
    return rest;
  }
  return { anyOf: [rest, { type: 'null' }] };
}

export interface ExtractedOperation {
  operationId: string;
  method: string;
  path: string;
  parameters: Array<{ name: string; in: string; required: boolean; schema: Json }>;
  requestBody?: { required: boolean; schema: Json };
  responses: Record<string, { schema?: Json }>;
}

function main(): void {
  const pkgDir = resolve(process.argv[2] ?? '/tmp/octokit-openapi/node_modules/@octokit/openapi');
  const outFile = resolve(process.argv[3] ?? join(__dirname, '..', 'testkit', 'github', 'openapi', 'github-ops.json'));
  const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { version: string };
  const spec = JSON.parse(readFileSync(join(pkgDir, 'generated', 'api.github.com.deref.json'), 'utf8')) as {
    openapi: string;
    info: { version: string };
    paths: Record<string, Record<string, JsonObject>>;
  };
  const formats = new Set<string>();
  const operations: Record<string, ExtractedOperation> = {};
  const exampleChecks: Array<{ operationId: string; status: string; example: Json; schema: Json }> = [];

  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const operationId = op.operationId;
      if (typeof operationId !== 'string' || !(operationId in OPERATIONS)) continue;
      const keep = OPERATIONS[operationId] ?? [];
      const params = (Array.isArray(op.parameters) ? op.parameters : []).filter(isObject).map((p) => ({
        name: String(p.name),
        in: String(p.in),
        required: p.required === true,
        schema: cleanSchema(p.schema ?? {}, formats),
      }));
      const extracted: ExtractedOperation = { operationId, method: method.toUpperCase(), path, parameters: params, responses: {} };
      const body = op.requestBody;
      if (isObject(body) && isObject(body.content)) {
        const json = body.content['application/json'];
        if (isObject(json)) extracted.requestBody = { required: body.required === true, schema: cleanSchema(json.schema ?? {}, formats) };
      }
      const responses = isObject(op.responses) ? op.responses : {};
      for (const status of keep) {
        const resp = responses[status];
        if (!isObject(resp)) throw new Error(`${operationId}: no response ${status} in the description`);
        const json = isObject(resp.content) ? resp.content['application/json'] : undefined;
        if (isObject(json) && json.schema !== undefined) {
          extracted.responses[status] = { schema: cleanSchema(json.schema, formats) };
          if (status.startsWith('2') && isObject(json.examples)) {
            for (const ex of Object.values(json.examples)) {
              if (isObject(ex) && ex.value !== undefined) exampleChecks.push({ operationId, status, example: ex.value, schema: extracted.responses[status].schema ?? {} });
            }
          }
        } else {
          extracted.responses[status] = {};
        }
      }
      operations[operationId] = extracted;
    }
  }
  const missing = Object.keys(OPERATIONS).filter((id) => !(id in operations));
  if (missing.length > 0) throw new Error(`operations not found: ${missing.join(', ')}`);

  // Check GitHub's own examples against the extracted schemas (informational).
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  for (const c of exampleChecks) {
    const validate = ajv.compile(c.schema as object);
    if (!validate(c.example)) {
      const errs = (validate.errors ?? []).slice(0, 3).map((e) => `${e.instancePath} ${e.message ?? ''}`);
      console.log(`note: GitHub's example for ${c.operationId} ${c.status} fails its schema: ${errs.join('; ')}`);
    }
  }

  const doc = {
    source: { package: '@octokit/openapi', version: pkg.version, file: 'generated/api.github.com.deref.json', openapi: spec.openapi, apiVersion: spec.info.version },
    formats: [...formats].sort(),
    operations,
  };
  writeFileSync(outFile, JSON.stringify(doc) + '\n');
  console.log(`wrote ${outFile}: ${Object.keys(operations).length} operations, ${JSON.stringify(doc).length} bytes, formats ${[...formats].join(',')}`);
}

if (require.main === module) main();
