import { Worker } from '@temporalio/worker';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../src/api/server';
import { TokenStore } from '../../src/api/tokens';
import type { DeploymentStatus } from '../../src/domain/deployment';
import { createLogger } from '../../src/logger';
import { DeploymentService } from '../../src/service/deployments';
import { fakeWorld } from '../support/fake-activities';
import { startTestTemporal, taskQueueFor, waitFor, workflowBundle, type TestTemporal } from '../support/temporal';

const OPERATOR = 'op-token-0123456789abcdef';
const VIEWER = 'viewer-token-0123456789abcdef';
let t: TestTemporal;
let worker: Worker;
let running: Promise<void>;
let app: FastifyInstance;
let base = '';
const world = fakeWorld([]);

const fleet = (names: string[]) => ({
  repository: { owner: 'acme', name: `fleet-${Math.random().toString(36).slice(2, 8)}`, branch: 'main' },
  onFailure: { revert: 'off', rollbackHosts: false },
  hosts: names.map((name) => ({ name, address: '127.0.0.1', kind: 'nixos' })),
});

beforeAll(async () => {
  t = await startTestTemporal();
  const taskQueue = taskQueueFor('api-roles');
  worker = await Worker.create({ connection: t.nativeConnection, namespace: t.server.namespace, taskQueue, workflowBundle: await workflowBundle(), activities: world.activities });
  running = worker.run();
  const tokens = TokenStore.fromJson({
    tokens: [
      { token: OPERATOR, identity: 'olga', role: 'operator' },
      { token: VIEWER, identity: 'victor', role: 'viewer' },
    ],
  });
  app = buildApi({ service: new DeploymentService(t.client, taskQueue), tokens, logger: createLogger('test', 'silent') });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
});
afterAll(async () => {
  await app?.close();
  worker?.shutdown();
  await running;
  await t?.stop();
});

const auth = (token?: string): Record<string, string> => (token ? { authorization: `Bearer ${token}` } : {});

/** A real HTTP request to the API listening on loopback. */
async function call(o: { method: string; url: string; headers?: Record<string, string>; payload?: unknown }): Promise<{ statusCode: number; json: () => unknown }> {
  const res = await fetch(`${base}${o.url}`, {
    method: o.method,
    headers: { ...(o.headers ?? {}), ...(o.payload !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: o.payload !== undefined ? JSON.stringify(o.payload) : undefined,
  });
  const text = await res.text();
  return { statusCode: res.status, json: () => JSON.parse(text) as unknown };
}

async function failedDeployment(): Promise<string> {
  world.hosts.set('b', { gen: { number: 42, storePath: '/nix/store/b-old' }, gens: [{ number: 42, storePath: '/nix/store/b-old' }], failActivation: true });
  const res = await call({ method: 'POST', url: '/api/deployments', headers: auth(OPERATOR), payload: { fleet: fleet(['a', 'b', 'c']), change: { pullRequest: 7 } } });
  expect(res.statusCode).toBe(201);
  const id = (res.json() as { deploymentId: string }).deploymentId;
  await waitFor('awaiting-operator', async () => {
    const s = await call({ method: 'GET', url: `/api/deployments/${id}`, headers: auth(VIEWER) });
    return (s.json() as DeploymentStatus).phase === 'awaiting-operator' ? true : undefined;
  });
  return id;
}

test('every mutating route × no token, wrong token, viewer, operator', async () => {
  const id = await failedDeployment();
  const routes: Array<{ url: string; payload: unknown; operatorStatus: number }> = [
    { url: '/api/deployments', payload: { fleet: fleet(['x']), change: { pullRequest: 8 } }, operatorStatus: 201 },
    { url: `/api/deployments/${id}/rollback`, payload: { action: 'revert' }, operatorStatus: 200 },
    { url: `/api/deployments/${id}/dismiss`, payload: {}, operatorStatus: 200 },
  ];
  const matrix: string[] = [];
  for (const r of routes) {
    for (const [who, token] of [['none', undefined], ['wrong', 'not-a-real-token-at-all'], ['viewer', VIEWER], ['operator', OPERATOR]] as const) {
      const res = await call({ method: 'POST', url: r.url, headers: auth(token), payload: r.payload });
      matrix.push(`${r.url.replace(id, ":id")} ${who} ${res.statusCode}`);
      if (process.env.DEBUG_API) console.log(r.url, who, JSON.stringify(res.json()).slice(0, 600));
    }
  }
  expect(matrix).toEqual([
    '/api/deployments none 401',
    '/api/deployments wrong 401',
    '/api/deployments viewer 403',
    '/api/deployments operator 201',
    '/api/deployments/:id/rollback none 401',
    '/api/deployments/:id/rollback wrong 401',
    '/api/deployments/:id/rollback viewer 403',
    '/api/deployments/:id/rollback operator 200',
    '/api/deployments/:id/dismiss none 401',
    '/api/deployments/:id/dismiss wrong 401',
    '/api/deployments/:id/dismiss viewer 403',
    '/api/deployments/:id/dismiss operator 200',
  ]);
  // The actor is the token's identity.
  const audit = (await call({ method: 'GET', url: `/api/deployments/${id}/audit`, headers: auth(VIEWER) })).json() as { audit: Array<{ actor: string; action: string }> };
  expect(audit.audit.filter((a) => a.action === 'revert' || a.action === 'dismiss').map((a) => `${a.actor}:${a.action}`)).toEqual(['olga:revert', 'olga:dismiss']);
});

test('bad bodies get 400 naming the field; unknown deployments 404; actions that no longer apply 409', async () => {
  const bad = await call({ method: 'POST', url: '/api/deployments', headers: auth(OPERATOR), payload: { fleet: { ...fleet(['a']), hosts: [{ name: 'a', address: 'a;reboot', kind: 'nixos' }] }, change: { pullRequest: 1 } } });
  expect(bad.statusCode).toBe(400);
  expect((bad.json() as { message: string }).message).toContain('fleet.hosts[0].address');
  const badAction = await call({ method: 'POST', url: '/api/deployments/x/rollback', headers: auth(OPERATOR), payload: { action: 'explode', requestedBy: 'mallory' } });
  expect(badAction.statusCode).toBe(400);
  expect((badAction.json() as { message: string }).message).toMatch(/action|requestedBy/);
  const missing = await call({ method: 'GET', url: '/api/deployments/deploy-nope-nope-pr1', headers: auth(VIEWER) });
  expect(missing.statusCode).toBe(404);
  const id = await failedDeployment();
  expect((await call({ method: 'POST', url: `/api/deployments/${id}/rollback`, headers: auth(OPERATOR), payload: { action: 'revert' } })).statusCode).toBe(200);
  const again = await call({ method: 'POST', url: `/api/deployments/${id}/rollback`, headers: auth(OPERATOR), payload: { action: 'revert' } });
  expect(again.statusCode).toBe(409);
  expect((again.json() as { message: string }).message).toMatch(/no longer applies/);
});
