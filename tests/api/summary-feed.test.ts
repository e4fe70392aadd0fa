/**
 * The live feed's summary view on the real stack (Temporal dev server, the product's worker and API,
 * the simulated fleet): a WebSocket client subscribed with view "summary" receives the summary (never a
 * snapshot of the whole status), the running wave's hosts as they change (before the wave completes
 * and numbers them), the numbered transitions, and a last summary whose counts are the status's.
 */
import type { FastifyInstance } from 'fastify';
import { WebSocket } from 'ws';
import { SqliteAuditStore } from '../../src/audit/sqlite-audit-store';
import { buildApi } from '../../src/api/server';
import { TokenStore } from '../../src/api/tokens';
import type { DeploymentStatus } from '../../src/domain/deployment';
import type { StatusSummary } from '../../src/domain/host-pages';
import { createLogger } from '../../src/logger';
import { DeploymentService } from '../../src/service/deployments';
import { startSimWorld, type SimWorld } from '../../testkit/simfleet/world';
import { createDeployWorker } from '../../workers/worker';
import { startTestTemporal, taskQueueFor, waitFor, workflowBundle, type TestTemporal } from '../support/temporal';

const OPERATOR = 'op-token-0123456789abcdef';
let t: TestTemporal;
let w: SimWorld;
let app: FastifyInstance;
let base: string;
let service: DeploymentService;
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  t = await startTestTemporal();
  cleanups.push(() => t.stop());
  w = await startSimWorld({ hosts: Array.from({ length: 12 }, (_, i) => ({ name: `s${i + 1}`, kind: 'nixos' as const })), latency: { commandMs: 20 } });
  cleanups.push(() => w.stop());
  // One slow host: its wave's child runs for a while with it switching.
  w.fleet.host('s3').host.latency = { commandMs: 400 };
  const taskQueue = taskQueueFor('summary-feed');
  const audit = new SqliteAuditStore(':memory:');
  const { worker, close } = await createDeployWorker({ connection: t.nativeConnection, namespace: t.server.namespace, taskQueue, deps: { ...w.activityDeps(), audit }, workflowBundle: await workflowBundle() });
  const running = worker.run();
  cleanups.push(async () => {
    worker.shutdown();
    await running;
    await close();
    await audit.close();
  });
  service = new DeploymentService(t.client, taskQueue);
  app = buildApi({ service, tokens: TokenStore.fromJson({ tokens: [{ token: OPERATOR, identity: 'olga', role: 'operator' }] }), logger: createLogger('test', 'silent'), progressPollMs: 100 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  cleanups.push(() => app.close());
  const addr = app.server.address();
  base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
}, 300_000);
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch((err: unknown) => console.error('cleanup:', err));
});

test('when a client follows a deployment with the summary view, then it gets summaries, the running wave hosts as they change, the transitions, and no snapshot', async () => {
  const names = w.fleet.hosts.map((h) => h.name);
  const fleet = { ...w.fleetFile({ revert: 'off', rollbackHosts: false }), rollout: { waves: [{ name: 'a', hosts: names.slice(0, 6), maxParallel: 2 }, { name: 'b', hosts: names.slice(6), maxParallel: 2 }] } };
  const pr = await w.openLockUpdate('v2');
  const { deploymentId: id } = await service.start({ fleet, change: { pullRequest: pr.number } }, 'alice');
  const messages: Array<Record<string, unknown> & { type: string }> = [];
  const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/api/ws`, { headers: { authorization: `Bearer ${OPERATOR}` } });
  ws.on('message', (d: Buffer) => {
    const m = JSON.parse(d.toString('utf8')) as Record<string, unknown> & { type: string };
    messages.push(m);
    if (m.type === 'ready') ws.send(JSON.stringify({ type: 'subscribe', deploymentId: id, view: 'summary', since: 0 }));
  });
  try {
    await waitFor('the final message', () => (messages.some((m) => m.type === 'final') ? true : undefined), 240_000, 100);
  } finally {
    ws.close();
  }
  const status = (await service.status(id)) as DeploymentStatus;
  expect(status.outcome).toBe('succeeded');
  expect(messages.filter((m) => m.type === 'snapshot')).toEqual([]);
  // The slow host was seen switching in its wave's child, before its numbered transition arrived.
  const liveAt = messages.findIndex((m) => m.type === 'hosts' && (m.hosts as Array<{ name: string; state: string }>).some((h) => h.name === 's3' && h.state === 'switching'));
  const numberedAt = messages.findIndex((m) => m.type === 'host' && m.host === 's3' && m.to === 'switched');
  expect(liveAt).toBeGreaterThanOrEqual(0);
  expect(numberedAt).toBeGreaterThan(liveAt);
  // The transitions, each once, numbered without a gap from the first.
  const seqs = messages.filter((m) => m.type === 'host' || m.type === 'phase').map((m) => m.seq as number);
  expect(seqs).toEqual(seqs.map((_, i) => i + 1));
  const summaries = messages.filter((m) => m.type === 'summary').map((m) => m.summary as StatusSummary);
  const last = summaries[summaries.length - 1] as StatusSummary;
  expect(last.phase).toBe('succeeded');
  expect(last.hosts).toEqual({ total: 12, byState: { switched: 12 } });
  expect(last.groups?.deployed.count).toBe(12);
});
