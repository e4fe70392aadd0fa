/**
 * Fleet files of 10,000 hosts through POST /api/deployments (issue 13): over the old 1 MiB body limit,
 * they are accepted as JSON and gzip-compressed (content-encoding: gzip), and start a deployment on
 * the real Temporal dev server (no worker: it is terminated once started). The limit counts the
 * decompressed bytes, so a small gzip body cannot expand past it; a body over it is refused with 413
 * naming the limit, bad gzip with 400, an unknown encoding with 415, and none of them reaches Temporal.
 */
import { request } from 'node:http';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../src/api/server';
import { TokenStore } from '../../src/api/tokens';
import { createLogger } from '../../src/logger';
import { DEFAULT_FLEET_TIMEOUTS } from '../../src/schemas/fleet.schema';
import { DeploymentService } from '../../src/service/deployments';
import { startTestTemporal, taskQueueFor, type TestTemporal } from '../support/temporal';

const OPERATOR = 'op-token-0123456789abcdef';
let t: TestTemporal;
const apps: FastifyInstance[] = [];

beforeAll(async () => {
  t = await startTestTemporal();
}, 120_000);
afterAll(async () => {
  for (const a of apps) await a.close();
  await t?.stop();
});

async function api(fleetBodyLimit?: number): Promise<number> {
  const tokens = TokenStore.fromJson({ tokens: [{ token: OPERATOR, identity: 'olga', role: 'operator' }] });
  const app = buildApi({
    service: new DeploymentService(t.client, taskQueueFor(expect.getState().currentTestName ?? 'large-fleet'), { searchAttributes: false }),
    tokens,
    logger: createLogger('test', 'silent'),
    limits: { mutations: { max: 1000, windowMs: 60_000 } },
    ...(fleetBodyLimit !== undefined ? { fleetBodyLimit } : {}),
  });
  apps.push(app);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  return typeof addr === 'object' && addr ? addr.port : 0;
}

function post(port: number, body: Buffer, headers: Record<string, string> = {}): Promise<{ status: number; json: { error?: string; message?: string; deploymentId?: string } }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method: 'POST', path: '/api/deployments', headers: { authorization: `Bearer ${OPERATOR}`, 'content-type': 'application/json', 'content-length': String(body.length), ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) as { error?: string; message?: string } }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** A valid fleet file of `n` hosts (addresses nothing listens on: no worker runs the deployment). */
function fleetFile(n: number, repo: string): unknown {
  const hosts = Array.from({ length: n }, (_, i) => ({ name: `edge-host-${String(i + 1).padStart(5, '0')}`, address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 22, user: 'root', kind: 'nixos', attr: `edge-host-${String(i + 1).padStart(5, '0')}` }));
  return {
    repository: { owner: 'acme', name: repo, branch: 'main' },
    flakeRef: 'git+https://example.invalid/{owner}/{repo}.git?ref=main&rev={sha}',
    onFailure: { revert: 'off', rollbackHosts: false },
    manualWindow: 3600,
    timeouts: { ...DEFAULT_FLEET_TIMEOUTS },
    defaults: {},
    hosts,
  };
}

test('when a 10,000-host fleet file is posted as JSON and gzip-compressed, then each starts its deployment', async () => {
  const port = await api();
  for (const [how, encode] of [
    ['json', (b: Buffer) => ({ body: b, headers: {} })],
    ['gzip', (b: Buffer) => ({ body: gzipSync(b), headers: { 'content-encoding': 'gzip' } })],
  ] as const) {
    const text = Buffer.from(JSON.stringify({ fleet: fleetFile(10_000, `fleet-${how}`), change: { commit: 'a'.repeat(40) } }));
    expect(text.length).toBeGreaterThan(1024 * 1024);
    const { body, headers } = encode(text);
    const r = await post(port, body, headers);
    expect({ how, status: r.status, error: r.json.message }).toEqual({ how, status: 201, error: undefined });
    const handle = t.client.workflow.getHandle(r.json.deploymentId as string);
    const started = await handle.fetchHistory();
    const input = started.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
    const hosts = (t.client.options.loadedDataConverter.payloadConverter.fromPayload(input as never) as { hosts: unknown[] }).hosts;
    expect(hosts).toHaveLength(10_000);
    await handle.terminate('test: started only');
    process.stdout.write(`large-fleet-body: ${how} body ${(body.length / 1024).toFixed(0)} KiB (${(text.length / 1024).toFixed(0)} KiB of JSON) accepted\n`);
  }
}, 300_000);

test('when a body is over the fleet limit, plain or as gzip that expands past it, or is bad gzip or another encoding, then 413, 400 or 415 naming why, and no deployment starts', async () => {
  const limit = 256 * 1024;
  const port = await api(limit);
  const big = Buffer.from(JSON.stringify({ fleet: fleetFile(3_000, 'fleet-over'), change: { commit: 'b'.repeat(40) } }));
  expect(big.length).toBeGreaterThan(limit);
  const plain = await post(port, big);
  expect(plain.status).toBe(413);
  expect(plain.json.message).toBe(`(input): the body is larger than this route's limit of ${limit} bytes (0.3 MiB once decompressed, a fleet file's limit; the API's NIXFLEET_API_FLEET_BODY_LIMIT raises it)`);
  // Far under the limit compressed, over it once decompressed: refused the same (no zip bomb gets through).
  const zipped = gzipSync(big);
  expect(zipped.length).toBeLessThan(limit);
  const bomb = await post(port, zipped, { 'content-encoding': 'gzip' });
  expect({ status: bomb.status, message: bomb.json.message }).toEqual({ status: 413, message: plain.json.message });
  const bad = await post(port, Buffer.from('{"fleet": "not gzip at all"}'), { 'content-encoding': 'gzip' });
  expect(bad.status).toBe(400);
  expect(bad.json.message).toMatch(/^\(input\): the body is not valid gzip \(content-encoding: gzip\)/);
  const br = await post(port, Buffer.from('{}'), { 'content-encoding': 'br' });
  expect(br.status).toBe(415);
  expect(br.json.message).toBe('content-encoding: one of gzip, identity; got "br"');
  // Under the limit, compressed: accepted as far as validation (no change given).
  const small = await post(port, gzipSync(Buffer.from(JSON.stringify({ fleet: fleetFile(10, 'fleet-small'), change: {} }))), { 'content-encoding': 'gzip' });
  expect(small.status).toBe(400);
  expect(small.json.message).toMatch(/^change/);
  const running = [];
  for await (const wf of t.client.workflow.list({ query: `WorkflowType = 'deployWorkflow' AND ExecutionStatus = 'Running'` })) running.push(wf.workflowId);
  expect(running).toEqual([]);
}, 120_000);
