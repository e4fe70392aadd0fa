/**
 * The API in front of people: rate limits on failed authentication and on mutating routes, body size
 * limits per route, and the security headers the dashboard is served with. A real API on a loopback
 * port over a real Temporal dev server (the mutating routes reach it), clients on two loopback
 * addresses so one client's limit is seen not to touch another.
 */
import { request } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { WebSocket } from 'ws';
import { BODY_LIMITS, buildApi, type ApiLimits } from '../../src/api/server';
import { TokenStore } from '../../src/api/tokens';
import { createLogger } from '../../src/logger';
import { DeploymentService } from '../../src/service/deployments';
import { startTestTemporal, taskQueueFor, waitFor, type TestTemporal } from '../support/temporal';

const OPERATOR = 'op-token-0123456789abcdef';
const OPERATOR2 = 'op2-token-0123456789abcdef';
const VIEWER = 'viewer-token-0123456789abcdef';
const BAD = 'not-a-real-token-0123456789';

let t: TestTemporal;
const apps: FastifyInstance[] = [];

beforeAll(async () => {
  t = await startTestTemporal();
});
afterAll(async () => {
  for (const a of apps) await a.close();
  await t?.stop();
});

async function api(limits: Partial<ApiLimits>): Promise<number> {
  const tokens = TokenStore.fromJson({
    tokens: [
      { token: OPERATOR, identity: 'olga', role: 'operator' },
      { token: OPERATOR2, identity: 'otto', role: 'operator' },
      { token: VIEWER, identity: 'victor', role: 'viewer' },
    ],
  });
  const app = buildApi({ service: new DeploymentService(t.client, taskQueueFor(expect.getState().currentTestName ?? 'limits')), tokens, logger: createLogger('test', 'silent'), limits });
  apps.push(app);
  // On every loopback address, so clients can come from 127.0.0.1 and 127.0.0.2.
  await app.listen({ host: '0.0.0.0', port: 0 });
  const addr = app.server.address();
  return typeof addr === 'object' && addr ? addr.port : 0;
}

interface Res {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  json: () => { error?: string; message?: string };
}

/** A real HTTP request from a chosen loopback source address. */
function call(port: number, o: { method?: string; path: string; token?: string; body?: string; from?: string }): Promise<Res> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {
      ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
      ...(o.body !== undefined ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(o.body)) } : {}),
    };
    const req = request({ host: '127.0.0.1', port, localAddress: o.from ?? '127.0.0.1', method: o.method ?? 'GET', path: o.path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body) as { error?: string; message?: string } });
      });
    });
    req.on('error', reject);
    if (o.body !== undefined) req.write(o.body);
    req.end();
  });
}

const WIDE = { max: 1000, windowMs: 60_000 };

test('when a client keeps sending bad tokens, then after the limit it gets 429 with Retry-After even with a good token, while another address is served; after the window it is served again', async () => {
  const port = await api({ authFailures: { max: 3, windowMs: 3000 }, mutations: WIDE });
  const seen: number[] = [];
  for (let i = 0; i < 2; i++) seen.push((await call(port, { path: '/api/whoami', token: BAD })).status);
  // No token at all counts as a failure too.
  seen.push((await call(port, { path: '/api/deployments' })).status);
  const refused = await call(port, { path: '/api/whoami', token: BAD });
  seen.push(refused.status);
  expect(seen).toEqual([401, 401, 401, 429]);
  expect(refused.json().error).toBe('too_many_requests');
  expect(refused.json().message).toMatch(/too many failed authentications from this address; retry in \d+ s/);
  const retryAfter = Number(refused.headers['retry-after']);
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(3);

  // The address is refused whatever it sends, a good token included, and on every protected route.
  expect((await call(port, { path: '/api/whoami', token: VIEWER })).status).toBe(429);
  expect((await call(port, { method: 'POST', path: '/api/deployments/x/dismiss', token: OPERATOR, body: '{}' })).status).toBe(429);
  // Another client is not affected; routes without authentication are not limited.
  const other = await call(port, { path: '/api/whoami', token: VIEWER, from: '127.0.0.2' });
  expect(other.status).toBe(200);
  expect(other.json()).toEqual({ identity: 'victor', role: 'viewer' });
  expect((await call(port, { path: '/healthz' })).status).toBe(200);

  // Once the window is over, the good token works again.
  const back = await waitFor('the failed-authentication window to end', async () => {
    const r = await call(port, { path: '/api/whoami', token: VIEWER });
    return r.status === 429 ? undefined : r;
  }, 30_000, 200);
  expect(back.status).toBe(200);
});

test('when a WebSocket client sends bad tokens, then they count as failed authentications and the address is refused the upgrade with 429', async () => {
  const port = await api({ authFailures: { max: 2, windowMs: 60_000 }, mutations: WIDE });
  const badAuth = async (): Promise<number> => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/api/ws`);
    return new Promise<number>((resolve, reject) => {
      ws.on('open', () => ws.send(JSON.stringify({ type: 'auth', token: BAD })));
      ws.on('close', (code: number) => resolve(code));
      ws.on('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        ws.terminate();
      });
      ws.on('error', (err) => (err.message.includes('Unexpected server response') ? undefined : reject(err)));
    });
  };
  expect(await badAuth()).toBe(4401);
  expect(await badAuth()).toBe(4401);
  // The counts are taken asynchronously after the close; wait until the limit shows on HTTP.
  await waitFor('the WebSocket failures to count', async () => ((await call(port, { path: '/api/whoami', token: VIEWER })).status === 429 ? true : undefined), 10_000, 50);
  expect(await badAuth()).toBe(429);
});

test('when one operator sends more changes than the limit, then 429 with Retry-After for that identity only, and reading goes on', async () => {
  const port = await api({ authFailures: WIDE, mutations: { max: 3, windowMs: 60_000 } });
  const dismiss = (token: string): Promise<Res> => call(port, { method: 'POST', path: '/api/deployments/no-such-deployment/dismiss', token, body: '{}' });
  const seen: number[] = [];
  // Each reaches Temporal and learns there is no such deployment.
  for (let i = 0; i < 3; i++) seen.push((await dismiss(OPERATOR)).status);
  const refused = await dismiss(OPERATOR);
  seen.push(refused.status);
  expect(seen).toEqual([404, 404, 404, 429]);
  expect(refused.json().message).toMatch(/^olga sent more than 3 changes in 60 s; retry in \d+ s$/);
  expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
  expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(60);
  // Every mutating route shares the identity's budget.
  const start = await call(port, { method: 'POST', path: '/api/deployments', token: OPERATOR, body: '{}' });
  expect(start.status).toBe(429);
  expect((await call(port, { method: 'POST', path: '/api/deployments/dry-run', token: OPERATOR, body: '{}' })).status).toBe(429);
  // The same address with another operator's token: its own budget (the limit is per identity).
  expect((await dismiss(OPERATOR2)).status).toBe(404);
  // Reading is not a change.
  expect((await call(port, { path: '/api/whoami', token: OPERATOR })).status).toBe(200);
  // A viewer's refused attempt is a 403, never counted against anyone's budget, never a 429.
  for (let i = 0; i < 5; i++) expect((await dismiss(VIEWER)).status).toBe(403);
});

test('when a body is larger than its route allows, then 413 naming the limit, and nothing reaches the service', async () => {
  const port = await api({ authFailures: WIDE, mutations: WIDE });
  const pad = (bytes: number): string => JSON.stringify({ reason: 'x'.repeat(bytes) });
  const action = await call(port, { method: 'POST', path: '/api/deployments/no-such-deployment/dismiss', token: OPERATOR, body: pad(BODY_LIMITS.action) });
  expect(action.status).toBe(413);
  expect(action.json()).toEqual({ error: 'payload_too_large', message: `(input): the body is larger than this route's limit of ${BODY_LIMITS.action} bytes` });
  expect((await call(port, { method: 'POST', path: '/api/deployments/no-such-deployment/rollback', token: OPERATOR, body: pad(BODY_LIMITS.action) })).status).toBe(413);
  // The same size is fine where a fleet file goes (it reaches validation and is refused there).
  const fleetSized = await call(port, { method: 'POST', path: '/api/deployments', token: OPERATOR, body: JSON.stringify({ fleet: { pad: 'x'.repeat(BODY_LIMITS.action) }, change: {} }) });
  expect(fleetSized.status).toBe(400);
  const huge = await call(port, { method: 'POST', path: '/api/deployments', token: OPERATOR, body: JSON.stringify({ fleet: { pad: 'x'.repeat(BODY_LIMITS.start) }, change: {} }) });
  expect(huge.status).toBe(413);
  expect(huge.json().message).toBe(`(input): the body is larger than this route's limit of ${BODY_LIMITS.start} bytes (16.0 MiB once decompressed, a fleet file's limit; the API's NIXFLEET_API_FLEET_BODY_LIMIT raises it)`);
  expect((await call(port, { method: 'POST', path: '/api/deployments/dry-run', token: OPERATOR, body: JSON.stringify({ fleet: { pad: 'x'.repeat(BODY_LIMITS.start) } }) })).status).toBe(413);
  // A small reason still reaches the service (no such deployment).
  expect((await call(port, { method: 'POST', path: '/api/deployments/no-such-deployment/dismiss', token: OPERATOR, body: pad(100) })).status).toBe(404);
});

test('when the dashboard and the API answer, then they carry helmet security headers and the dashboard its own Content-Security-Policy', async () => {
  const port = await api({});
  const page = await call(port, { path: '/dashboard/' });
  expect(page.status).toBe(200);
  const csp = String(page.headers['content-security-policy']);
  expect(csp.split(';').map((d) => d.trim()).sort()).toEqual(
    [
      "default-src 'self'",
      "script-src 'self'",
      "style-src 'self'",
      "connect-src 'self'",
      "img-src 'self' data:",
      "object-src 'none'",
      "frame-ancestors 'none'",
      "base-uri 'none'",
      "form-action 'none'",
    ].sort(),
  );
  expect(page.headers['x-content-type-options']).toBe('nosniff');
  expect(page.headers['x-frame-options']).toBe('SAMEORIGIN');
  expect(page.headers['referrer-policy']).toBe('no-referrer');
  expect(page.headers['cross-origin-opener-policy']).toBe('same-origin');
  expect(page.headers['cross-origin-resource-policy']).toBe('same-origin');
  expect(page.headers['x-powered-by']).toBeUndefined();
  // Served over plain HTTP on a trusted network or behind a TLS proxy: HSTS is the proxy's to send.
  expect(page.headers['strict-transport-security']).toBeUndefined();
  for (const path of ['/dashboard/app.js', '/dashboard/style.css', '/api/whoami']) {
    const r = await call(port, { path, token: VIEWER });
    expect(`${path} ${r.headers['x-content-type-options']} ${r.headers['content-security-policy'] === page.headers['content-security-policy']}`).toBe(`${path} nosniff true`);
  }
});
