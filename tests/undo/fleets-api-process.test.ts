/**
 * NIXFLEET_FLEETS on the real API process (src/api/main.ts, started as tests/audit/postgres-processes
 * starts it): the API is given two fleet files, and an undo asked without one (as the dashboard asks)
 * is planned and carried out with the fleet file of the deployment's own repository and branch: its
 * hosts, their addresses, nothing of the other fleet. A deployment of a fleet the API does not know
 * is refused naming what to send. The undo workflow runs on a test worker with the real workflows and
 * in-memory host activities (tests/support/fake-activities.ts), so what it acts on is recorded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { Worker } from '@temporalio/worker';
import { openAuditStore } from '../../src/audit/open-audit-store';
import type { AuditStore } from '../../src/audit/audit-store';
import type { DeployActivities } from '../../src/domain/activities';
import type { Generation, HostSpec } from '../../src/domain/deployment';
import type { UndoStatus } from '../../src/domain/undo';
import { freePort } from '../../testkit/dev-server';
import { fakeWorld } from '../support/fake-activities';
import { startTestTemporal, taskQueueFor, waitFor, workflowBundle, type TestTemporal } from '../support/temporal';

const ROOT = join(__dirname, '..', '..');
const OPERATOR = 'op-token-0123456789abcdef';
const g = (host: string, n: number): Generation => ({ number: n, storePath: `/nix/store/${'a'.repeat(32)}-${host}-${n}` });

let t: TestTemporal;
let dir: string;
let store: AuditStore;
let worker: Worker;
let running: Promise<void>;
let api: ChildProcess | undefined;
let base = '';
const world = fakeWorld([]);
/** Every host an activity was asked about: name@address. */
const touched: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nixfleet-fleets-api-'));
  t = await startTestTemporal();
  const auditDb = join(dir, 'audit.db');
  store = await openAuditStore({ backend: 'sqlite', file: auditDb });
  // Two fleets' deployments, both succeeded: fleet-a switched a1 and a2, fleet-b switched b1; and one of a fleet the API does not know.
  const results = (repo: string, hosts: string[]) => ({
    deploymentId: `deploy-acme.${repo}.pr7`,
    runId: `run-${repo}`,
    repository: `acme/${repo}`,
    branch: 'main',
    closedAt: new Date().toISOString(),
    outcome: 'succeeded' as const,
    mergeSha: 'c'.repeat(40),
    ownMerge: false,
    pullRequest: 7,
    hosts: hosts.map((name) => ({ name, kind: 'nixos' as const, state: 'switched' as const, before: g(name, 42), after: g(name, 43) })),
  });
  await store.appendResults(results('fleet-a', ['a1', 'a2']));
  await store.appendResults(results('fleet-b', ['b1']));
  await store.appendResults(results('fleet-c', ['c1']));
  const fleetFile = (repo: string, hosts: Array<[string, string]>) =>
    `repository: { owner: acme, name: ${repo}, branch: main }\nonFailure: { revert: 'off', rollbackHosts: true }\nhosts:\n${hosts.map(([n, a]) => `  - { name: ${n}, address: ${a}, kind: nixos }`).join('\n')}\n`;
  writeFileSync(join(dir, 'fleet-a.yaml'), fleetFile('fleet-a', [['a1', '10.0.1.1'], ['a2', '10.0.1.2']]));
  // fleet-b also has a host named a1: the name alone must not carry an undo across fleets.
  writeFileSync(join(dir, 'fleet-b.yaml'), fleetFile('fleet-b', [['b1', '10.0.2.1'], ['a1', '10.0.2.99']]));

  const taskQueue = taskQueueFor('fleets-api-process');
  const note = (host: HostSpec): void => void touched.push(`${host.name}@${host.address}`);
  worker = await Worker.create({
    connection: t.nativeConnection,
    namespace: t.server.namespace,
    taskQueue,
    workflowBundle: await workflowBundle(),
    activities: {
      ...world.activities,
      readDeploymentResults: (async ({ deploymentId }) => (await store.results(deploymentId)).at(-1) ?? null) satisfies DeployActivities['readDeploymentResults'],
      recordAudit: (async ({ deploymentId, seq, repository, entry }) => store.append({ ...entry, deploymentId, seq, repository })) satisfies DeployActivities['recordAudit'],
      async readHostGeneration(host: HostSpec) {
        note(host);
        return g(host.name, 43);
      },
      async diffStorePaths({ host }: { host: HostSpec }) {
        note(host);
        throw ApplicationFailure.nonRetryable('no closure diff in this test');
      },
      async rollbackHost({ host, to }: { host: HostSpec; to: Generation }) {
        note(host);
        touched.push(`rollback ${host.name}@${host.address} to ${to.number}`);
        return to;
      },
    },
  });
  running = worker.run();

  const port = await freePort();
  const tokensFile = join(dir, 'tokens.json');
  writeFileSync(tokensFile, JSON.stringify({ tokens: [{ token: OPERATOR, identity: 'olga', role: 'operator' }] }));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: join(dir, 'home'),
    TEMPORAL_ADDRESS: t.server.address,
    TEMPORAL_NAMESPACE: t.server.namespace,
    TEMPORAL_TASK_QUEUE: taskQueue,
    NIXFLEET_API_PORT: String(port),
    NIXFLEET_API_TOKENS_FILE: tokensFile,
    NIXFLEET_AUDIT_DB: auditDb,
    NIXFLEET_FLEETS: `${join(dir, 'fleet-a.yaml')}, ${join(dir, 'fleet-b.yaml')}`,
    NIXFLEET_SEARCH_ATTRIBUTES: '0',
    LOG_LEVEL: 'info',
  };
  delete env.NIXFLEET_AUDIT_URL;
  const child = spawn(process.execPath, ['--require', 'tsx/cjs', join(ROOT, 'src/api/main.ts')], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  api = child;
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor('the API to start', () => {
    if (child.exitCode !== null) throw new Error(`src/api/main.ts exited ${child.exitCode}: ${out}`);
    return out.includes('API and dashboard listening') ? true : undefined;
  }, 150_000, 200);
  base = `http://127.0.0.1:${port}`;
}, 240_000);

afterAll(async () => {
  if (api && api.exitCode === null && api.signalCode === null) {
    const exited = new Promise<void>((resolve) => api?.once('exit', () => resolve()));
    api.kill('SIGTERM');
    await exited;
  }
  worker?.shutdown();
  await running;
  await store?.close();
  await t?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const post = async (path: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> => {
  const res = await fetch(`${base}${path}`, { method: 'POST', headers: { authorization: `Bearer ${OPERATOR}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
};

test('when the API knows two fleets, then an undo without a fleet file uses the deployment\'s own: its hosts and addresses, none of the other fleet\'s', async () => {
  const a = await post('/api/deployments/deploy-acme.fleet-a.pr7/undo', {});
  expect(a.status).toBe(201);
  const planA = a.json as unknown as UndoStatus;
  expect(planA.phase).toBe('awaiting-confirmation');
  // (In the plan's order, reverse of the deployment's: not this test's subject.)
  expect(planA.preview?.hosts.map((h) => `${h.name} ${h.from.number}→${h.to.number}`).sort()).toEqual(['a1 43→42', 'a2 43→42']);
  const done = await post(`/api/undo/${planA.undoId}/confirm`, { action: 'confirm' });
  expect(done.status).toBe(200);
  const finished = await waitFor('the undo of fleet-a to end', async () => {
    const res = await fetch(`${base}/api/undo/${planA.undoId}`, { headers: { authorization: `Bearer ${OPERATOR}` } });
    const s = (await res.json()) as UndoStatus;
    return ['done', 'failed', 'refused', 'cancelled', 'expired'].includes(s.phase) ? s : undefined;
  }, 60_000, 200);
  expect(finished.phase).toBe('done');
  // Read, diffed and rolled back: fleet-a's hosts at fleet-a's addresses only (fleet-b's a1 is 10.0.2.99).
  expect([...new Set(touched.filter((x) => !x.startsWith('rollback ')))].sort()).toEqual(['a1@10.0.1.1', 'a2@10.0.1.2']);
  expect(touched.filter((x) => x.startsWith('rollback ')).sort()).toEqual(['rollback a1@10.0.1.1 to 42', 'rollback a2@10.0.1.2 to 42']);

  touched.length = 0;
  const b = await post('/api/deployments/deploy-acme.fleet-b.pr7/undo', {});
  expect(b.status).toBe(201);
  const planB = b.json as unknown as UndoStatus;
  expect(planB.phase).toBe('awaiting-confirmation');
  expect(planB.preview?.hosts.map((h) => h.name)).toEqual(['b1']);
  expect(planB.undoId).not.toBe(planA.undoId);
  expect([...new Set(touched)]).toEqual(['b1@10.0.2.1']);
  expect((await post(`/api/undo/${planB.undoId}/confirm`, { action: 'cancel' })).status).toBe(200);

  // A fleet the API was not given: refused, naming what to send; nothing started.
  const c = await post('/api/deployments/deploy-acme.fleet-c.pr7/undo', {});
  expect(c.status).toBe(400);
  expect(c.json.message).toBe('fleet: required: the API knows no fleet file of acme/fleet-c@main (NIXFLEET_FLEETS); send it (fleet, or its text as fleetText)');
}, 180_000);
