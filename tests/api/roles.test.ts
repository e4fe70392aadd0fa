import { Worker } from '@temporalio/worker';
import type { FastifyInstance } from 'fastify';
import { MemoryAuditStore } from '../../src/audit/memory-audit-store';
import { buildApi } from '../../src/api/server';
import { TokenStore } from '../../src/api/tokens';
import type { DeployActivities } from '../../src/domain/activities';
import type { DeploymentStatus } from '../../src/domain/deployment';
import { createLogger } from '../../src/logger';
import { DeploymentService } from '../../src/service/deployments';
import { fleetLockWorkflow } from '../../workflows';
import { legacyFleetLockId } from '../../workflows/fleet-lock';
import { fakeWorld } from '../support/fake-activities';
import { startTestTemporal, taskQueueFor, waitFor, workflowBundle, type TestTemporal } from '../support/temporal';

const OPERATOR = 'op-token-0123456789abcdef';
const VIEWER = 'viewer-token-0123456789abcdef';
let t: TestTemporal;
let worker: Worker;
let running: Promise<void>;
let app: FastifyInstance;
let base = '';
let taskQueue = '';
const world = fakeWorld([]);
const auditStore = new MemoryAuditStore();

const fleet = (names: string[]) => ({
  repository: { owner: 'acme', name: `fleet-${Math.random().toString(36).slice(2, 8)}`, branch: 'main' },
  onFailure: { revert: 'off', rollbackHosts: false },
  hosts: names.map((name) => ({ name, address: '127.0.0.1', kind: 'nixos' })),
});

beforeAll(async () => {
  t = await startTestTemporal();
  taskQueue = taskQueueFor('api-roles');
  worker = await Worker.create({ connection: t.nativeConnection, namespace: t.server.namespace, taskQueue, workflowBundle: await workflowBundle(), activities: {
      ...world.activities,
      // The durable log, as the real activity writes it.
      recordAudit: (async ({ deploymentId, seq, repository, entry }) => auditStore.append({ ...entry, deploymentId, seq, repository })) satisfies DeployActivities['recordAudit'],
    } });
  running = worker.run();
  const tokens = TokenStore.fromJson({
    tokens: [
      { token: OPERATOR, identity: 'olga', role: 'operator' },
      { token: VIEWER, identity: 'victor', role: 'viewer' },
    ],
  });
  // Refused tokens by the dozen on purpose: the rate limits are tested in limits.test.ts.
  const limits = { mutations: { max: 100_000, windowMs: 60_000 }, authFailures: { max: 100_000, windowMs: 60_000 } };
  app = buildApi({ service: new DeploymentService(t.client, taskQueue), tokens, logger: createLogger('test', 'silent'), audit: auditStore, limits });
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

async function failedDeployment(f = fleet(['a', 'b', 'c'])): Promise<string> {
  world.hosts.set('b', { gen: { number: 42, storePath: '/nix/store/b-old' }, gens: [{ number: 42, storePath: '/nix/store/b-old' }], failActivation: true });
  const res = await call({ method: 'POST', url: '/api/deployments', headers: auth(OPERATOR), payload: { fleet: f, change: { pullRequest: 7 } } });
  expect(res.statusCode).toBe(201);
  const id = (res.json() as { deploymentId: string }).deploymentId;
  await waitFor('awaiting-operator', async () => {
    const s = await call({ method: 'GET', url: `/api/deployments/${id}`, headers: auth(VIEWER) });
    return (s.json() as DeploymentStatus).phase === 'awaiting-operator' ? true : undefined;
  });
  return id;
}

const WHO = [['none', undefined], ['wrong', 'not-a-real-token-at-all'], ['viewer', VIEWER], ['operator', OPERATOR]] as const;

test('when every mutating route is called with no token, a wrong token, a viewer and an operator token, then only the operator gets through', async () => {
  const id = await failedDeployment();
  const id2 = await failedDeployment();
  const id3 = await failedDeployment();
  const routes: Array<{ url: string; payload: unknown }> = [
    { url: '/api/deployments', payload: { fleet: fleet(['x']), change: { pullRequest: 8 } } },
    { url: `/api/deployments/${id}/rollback`, payload: { action: 'revert' } },
    { url: `/api/deployments/${id}/rollback`, payload: { action: 'revert-and-rollback', revertMode: 'pull-request' } },
    { url: `/api/deployments/${id2}/dismiss`, payload: {} },
    { url: `/api/deployments/${id3}/dismiss`, payload: { reason: 'known flaky unit, fixed forward' } },
    { url: '/api/deployments/dry-run', payload: { fleet: fleet(['y']), change: { pullRequest: 9 } } },
  ];
  const matrix: string[] = [];
  for (const r of routes) {
    for (const [who, token] of WHO) {
      const res = await call({ method: 'POST', url: r.url, headers: auth(token), payload: r.payload });
      matrix.push(`${r.url.replace(id3, ':id3').replace(id2, ':id2').replace(id, ':id')} ${JSON.stringify(r.payload).slice(0, 40)} ${who} ${res.statusCode}`);
      if (process.env.DEBUG_API) console.log(r.url, who, JSON.stringify(res.json()).slice(0, 600));
    }
  }
  expect(matrix).toEqual(
    routes.flatMap((r, i) =>
      WHO.map(([who]) => {
        const code = { none: 401, wrong: 401, viewer: 403, operator: i === 0 ? 201 : 200 }[who];
        return `${r.url.replace(id3, ':id3').replace(id2, ':id2').replace(id, ':id')} ${JSON.stringify(r.payload).slice(0, 40)} ${who} ${code}`;
      }),
    ),
  );
  // Nothing a refused caller sent reached the workflow: the actor is the token's identity, every time.
  const audit = (await call({ method: 'GET', url: `/api/deployments/${id}/audit`, headers: auth(VIEWER) })).json() as { audit: Array<{ actor: string; action: string; seq: number }> };
  expect(audit.audit.map((a) => `${a.actor}:${a.action}`)).toEqual(['olga:deploy', 'olga:merge', 'olga:revert', 'olga:revert-and-rollback']);
  // The whole log, across deployments, from the store.
  const all = (await call({ method: 'GET', url: `/api/audit?deployment=${id2}`, headers: auth(VIEWER) })).json() as { audit: Array<{ actor: string; action: string }> };
  expect(all.audit.map((a) => `${a.actor}:${a.action}`)).toEqual(['olga:deploy', 'olga:merge', 'olga:dismiss']);
});

test('when a reading route is called without a valid token, then 401; with a viewer token, then 200', async () => {
  const id = await failedDeployment();
  for (const url of ['/api/deployments', `/api/deployments/${id}`, `/api/deployments/${id}/progress`, `/api/deployments/${id}/rollback-preview`, `/api/deployments/${id}/audit`, '/api/audit', '/api/whoami']) {
    expect(`${url} ${(await call({ method: 'GET', url })).statusCode}`).toBe(`${url} 401`);
    expect(`${url} ${(await call({ method: 'GET', url, headers: auth('Bearer-but-wrong-0123456789') })).statusCode}`).toBe(`${url} 401`);
    expect(`${url} ${(await call({ method: 'GET', url, headers: auth(VIEWER) })).statusCode}`).toBe(`${url} 200`);
  }
  // A host's closure change (read on the host: tests/dashboard runs it on real ones): a viewer route, its parameters validated.
  const changes = `/api/deployments/${id}/hosts/h0/changes`;
  expect((await call({ method: 'GET', url: changes })).statusCode).toBe(401);
  expect((await call({ method: 'GET', url: `/api/deployments/${id}/hosts/a%3Breboot/changes`, headers: auth(VIEWER) })).json()).toMatchObject({ message: expect.stringMatching(/^host: a host name/) });
  expect((await call({ method: 'GET', url: `${changes}?direction=sideways`, headers: auth(VIEWER) })).json()).toMatchObject({ message: expect.stringMatching(/^direction: /) });
  // The list counts each deployment's hosts by state (no host lists: bounded at any fleet size).
  const list = (await call({ method: 'GET', url: '/api/deployments', headers: auth(VIEWER) })).json() as { deployments: Array<{ deploymentId: string; hosts?: unknown; hostCounts?: unknown }> };
  const listed = list.deployments.find((d) => d.deploymentId === id);
  expect(listed?.hostCounts).toEqual({ total: 3, byState: { switched: 1, failed: 1, 'not-attempted': 1 } });
  expect(listed?.hosts).toBeUndefined();
  expect((await call({ method: 'GET', url: '/api/whoami', headers: auth(VIEWER) })).json()).toEqual({ identity: 'victor', role: 'viewer' });
  // The live feed over HTTP: every transition from the first, numbered without a gap, up to the state's cursor.
  const page = (await call({ method: 'GET', url: `/api/deployments/${id}/progress?since=0`, headers: auth(VIEWER) })).json() as { cursor: number; oldest: number; events: Array<{ seq: number; type: string; host?: string; to: string }>; status: DeploymentStatus };
  expect(page.events.map((e) => e.seq)).toEqual(Array.from({ length: page.cursor }, (_, i) => i + 1));
  expect(page.status.progressCursor).toBe(page.cursor);
  expect(page.events.filter((e) => e.type === 'host').map((e) => `${e.host}:${e.to}`)).toEqual(['a:switching', 'a:switched', 'b:switching', 'b:failed', 'c:not-attempted']);
  const tail = (await call({ method: 'GET', url: `/api/deployments/${id}/progress?since=${page.cursor - 1}`, headers: auth(VIEWER) })).json() as { events: unknown[] };
  expect(tail.events).toEqual(page.events.slice(-1));
});

test('when a body or a parameter is bad, then 400 naming the field; an unknown deployment 404; an action that no longer applies 409', async () => {
  const bad = await call({ method: 'POST', url: '/api/deployments', headers: auth(OPERATOR), payload: { fleet: { ...fleet(['a']), hosts: [{ name: 'a', address: 'a;reboot', kind: 'nixos' }] }, change: { pullRequest: 1 } } });
  expect(bad.statusCode).toBe(400);
  expect((bad.json() as { message: string }).message).toContain('fleet.hosts[0].address');
  const cases: Array<[string, unknown, RegExp]> = [
    ['/api/deployments', { fleet: fleet(['a']), change: { pullRequest: -1 } }, /^change\.pullRequest: /],
    ['/api/deployments', { fleet: fleet(['a']), change: { pullRequest: 1.5 } }, /^change\.pullRequest: /],
    ['/api/deployments', { fleet: fleet(['a']), change: { commit: 'abc' } }, /^change\.commit: /],
    ['/api/deployments', { fleet: fleet(['a']), change: { pullRequest: 1 }, requestedBy: 'mallory' }, /requestedBy/],
    ['/api/deployments/x/rollback', { action: 'explode' }, /^action: /],
    // The actor cannot be named in the body: the token says who asked.
    ['/api/deployments/x/rollback', { action: 'revert', requestedBy: 'mallory' }, /requestedBy/],
    ['/api/deployments/x/rollback', { action: 'revert', revertMode: 'force-push' }, /^revertMode: /],
    ['/api/deployments/x/rollback', { action: 'revert', reason: 'x'.repeat(501) }, /^reason: /],
    ['/api/deployments/x/dismiss', { actor: 'mallory' }, /actor/],
    ['/api/deployments/bad%20id/dismiss', {}, /^id: a deployment id/],
    // A parameter over Fastify's default 100 characters still reaches the route (routerOptions.maxParamLength).
    [`/api/deployments/bad%20${'x'.repeat(300)}/dismiss`, {}, /^id: a deployment id/],
  ];
  for (const [url, payload, message] of cases) {
    const res = await call({ method: 'POST', url, headers: auth(OPERATOR), payload });
    expect({ url, payload, status: res.statusCode }).toEqual({ url, payload, status: 400 });
    expect((res.json() as { message: string }).message).toMatch(message);
  }
  const badQuery = await call({ method: 'GET', url: '/api/audit?limit=0', headers: auth(VIEWER) });
  expect(badQuery.statusCode).toBe(400);
  expect((badQuery.json() as { message: string }).message).toMatch(/^query\.limit: /);
  const badSince = await call({ method: 'GET', url: '/api/deployments/x/progress?since=-1', headers: auth(VIEWER) });
  expect(badSince.statusCode).toBe(400);
  expect((badSince.json() as { message: string }).message).toMatch(/^query\.since: /);

  for (const [method, url, payload] of [
    ['GET', '/api/deployments/deploy-nope.nope.pr1', undefined],
    ['GET', '/api/deployments/deploy-nope.nope.pr1/rollback-preview', undefined],
    ['GET', '/api/deployments/deploy-nope.nope.pr1/progress', undefined],
    ['GET', '/api/deployments/deploy-nope.nope.pr1/audit', undefined],
    ['POST', '/api/deployments/deploy-nope.nope.pr1/rollback', { action: 'revert' }],
    ['POST', '/api/deployments/deploy-nope.nope.pr1/dismiss', {}],
  ] as const) {
    expect(`${method} ${url} ${(await call({ method, url, headers: auth(OPERATOR), payload })).statusCode}`).toBe(`${method} ${url} 404`);
  }

  const f = fleet(['a', 'b', 'c']);
  const id = await failedDeployment(f);
  // Starting the same deployment while it is still open: 409.
  const dup = await call({ method: 'POST', url: '/api/deployments', headers: auth(OPERATOR), payload: { fleet: f, change: { pullRequest: 7 } } });
  expect(dup.statusCode).toBe(409);
  expect((dup.json() as { message: string }).message).toMatch(/deployment deploy-\S+ holds acme\/fleet-\w+@main; wait for it, or dismiss it/);
  expect((await call({ method: 'POST', url: `/api/deployments/${id}/rollback`, headers: auth(OPERATOR), payload: { action: 'revert' } })).statusCode).toBe(200);
  const again = await call({ method: 'POST', url: `/api/deployments/${id}/rollback`, headers: auth(OPERATOR), payload: { action: 'revert' } });
  expect(again.statusCode).toBe(409);
  expect((again.json() as { message: string }).message).toMatch(/no longer applies/);
  // A deployment that succeeded has nothing to roll back, and a dismissed one is closed: 409.
  const started = await call({ method: 'POST', url: '/api/deployments', headers: auth(OPERATOR), payload: { fleet: fleet(['d']), change: { pullRequest: 9 } } });
  const okId = (started.json() as { deploymentId: string }).deploymentId;
  await waitFor('the healthy deployment to finish', async () => ((await call({ method: 'GET', url: `/api/deployments/${okId}`, headers: auth(VIEWER) })).json() as DeploymentStatus).phase === 'succeeded' || undefined);
  expect((await call({ method: 'POST', url: `/api/deployments/${okId}/rollback`, headers: auth(OPERATOR), payload: { action: 'revert-and-rollback' } })).statusCode).toBe(409);
  expect((await call({ method: 'POST', url: `/api/deployments/${okId}/dismiss`, headers: auth(OPERATOR), payload: {} })).statusCode).toBe(409);
  expect((await call({ method: 'POST', url: `/api/deployments/${id}/dismiss`, headers: auth(OPERATOR), payload: {} })).statusCode).toBe(200);
  expect((await call({ method: 'POST', url: `/api/deployments/${id}/dismiss`, headers: auth(OPERATOR), payload: {} })).statusCode).toBe(409);
});

test('when a deployment started before the escaped lock ids holds a fleet (the legacy lock id), then a new deployment of that fleet is refused (409) until it goes', async () => {
  const f = fleet(['e']);
  const lockId = legacyFleetLockId(f.repository);
  const lock = await t.client.workflow.start(fleetLockWorkflow, { taskQueue, workflowId: lockId, args: [{ deploymentId: 'deploy-acme-old-pr3' }] });
  try {
    const res = await call({ method: 'POST', url: '/api/deployments', headers: auth(OPERATOR), payload: { fleet: f, change: { pullRequest: 3 } } });
    expect(res.statusCode).toBe(409);
    expect((res.json() as { message: string }).message).toContain(lockId);
  } finally {
    await lock.terminate('test over');
  }
  const free = await call({ method: 'POST', url: '/api/deployments', headers: auth(OPERATOR), payload: { fleet: f, change: { pullRequest: 3 } } });
  expect(free.statusCode).toBe(201);
});
