/**
 * The API coalesces status queries per deployment (issue 13): 20 viewers opening one deployment at
 * once (each its HTTP status read and its WebSocket subscription, as the dashboard does) cost the
 * workflow a handful of queries, not 21. Counted by a Temporal client interceptor on every workflow
 * query the API's client sends, outside the service under test. Real dev server, real worker, the
 * simulated fleet.
 */
import { Client } from '@temporalio/client';
import { WebSocket } from 'ws';
import { buildApi } from '../../src/api/server';
import { TokenStore } from '../../src/api/tokens';
import type { DeploymentStatus } from '../../src/domain/deployment';
import { createLogger } from '../../src/logger';
import { buildDeployInput, FleetFile, parseWith } from '../../src/schemas/fleet.schema';
import { DeploymentService } from '../../src/service/deployments';
import { startSimWorld } from '../../testkit/simfleet/world';
import { createDeployWorker } from '../../workers/worker';
import { deployWorkflow } from '../../workflows';
import { statusQuery } from '../../workflows/messages';
import { startTestTemporal, taskQueueFor, waitFor, workflowBundle } from '../support/temporal';

const VIEWER = 'viewer-token-0123456789abcdef';

test('when 20 viewers open one deployment at once over HTTP and WebSocket, then the API sends at most a handful of workflow queries and every viewer gets the state; the summary and the host pages read the same state', async () => {
  const t = await startTestTemporal();
  const w = await startSimWorld({ hosts: ['v1', 'v2', 'v3'].map((name) => ({ name, kind: 'nixos' as const })) });
  w.fleet.host('v2').host.failActivation('units');
  const taskQueue = taskQueueFor('coalesced-queries');
  const { worker, close } = await createDeployWorker({ connection: t.nativeConnection, namespace: t.server.namespace, taskQueue, deps: w.activityDeps(), workflowBundle: await workflowBundle() });
  const running = worker.run();
  const queries: string[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const apiClient = new Client({
    connection: t.connection,
    namespace: t.server.namespace,
    interceptors: {
      workflow: [
        {
          query: async (input, next) => {
            queries.push(input.queryType);
            inFlight += 1;
            maxInFlight = Math.max(maxInFlight, inFlight);
            try {
              return await next(input);
            } finally {
              inFlight -= 1;
            }
          },
        },
      ],
    },
  });
  const service = new DeploymentService(apiClient, taskQueue);
  // The hub polls rarely here, so the count below is the viewers' doing, not the feed's own timer.
  const app = buildApi({ service, tokens: TokenStore.fromJson({ tokens: [{ token: VIEWER, identity: 'victor', role: 'viewer' }] }), logger: createLogger('test', 'silent'), progressPollMs: 60_000 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  const sockets: WebSocket[] = [];
  try {
    const pr = await w.openLockUpdate('v2');
    const input = buildDeployInput(parseWith(FleetFile, w.fleetFile()), { pullRequest: pr.number }, 'alice');
    const handle = await t.client.workflow.start(deployWorkflow, { taskQueue, workflowId: input.deploymentId, args: [input], searchAttributes: { NixfleetRepository: [`${w.owner}/${w.repo}`] } });
    // The failed deployment stays open for the operator: a state 20 people would look at.
    await waitFor('the deployment to await the operator', async () => ((await handle.query(statusQuery)).phase === 'awaiting-operator' ? true : undefined), 90_000, 200);
    expect(queries).toEqual([]);

    const viewer = async (): Promise<{ http: DeploymentStatus; ws: DeploymentStatus }> => {
      const httpP = fetch(`http://127.0.0.1:${port}/api/deployments/${handle.workflowId}`, { headers: { authorization: `Bearer ${VIEWER}` } }).then(async (r) => {
        expect(r.status).toBe(200);
        return (await r.json()) as DeploymentStatus;
      });
      const ws = new WebSocket(`ws://127.0.0.1:${port}/api/ws`);
      sockets.push(ws);
      const wsP = new Promise<DeploymentStatus>((resolve, reject) => {
        ws.on('error', reject);
        ws.on('open', () => ws.send(JSON.stringify({ type: 'auth', token: VIEWER })));
        ws.on('message', (data: Buffer) => {
          const m = JSON.parse(data.toString('utf8')) as { type: string; status?: DeploymentStatus };
          if (m.type === 'ready') ws.send(JSON.stringify({ type: 'subscribe', deploymentId: handle.workflowId }));
          if (m.type === 'snapshot' && m.status) resolve(m.status);
        });
      });
      return { http: await httpP, ws: await wsP };
    };
    const seen = await Promise.all(Array.from({ length: 20 }, viewer));
    for (const s of seen) {
      for (const status of [s.http, s.ws]) {
        expect(status.phase).toBe('awaiting-operator');
        expect(status.failedHost).toBe('v2');
        expect(status.hosts.map((h) => `${h.name}:${h.state}`)).toEqual(['v1:rolled-back', 'v2:rolled-back', 'v3:not-attempted']);
      }
    }
    // 40 reads (20 HTTP, 20 subscriptions) in a burst: never two queries at once on the deployment, and
    // a handful in all (readers arriving while one runs share it; 21 without coalescing). How many
    // depends on how the burst spreads over the machine's load, hence the margin.
    expect(maxInFlight).toBe(1);
    expect(queries.length).toBeGreaterThanOrEqual(1);
    expect(queries.length).toBeLessThanOrEqual(10);
    expect(service.workflowQueries).toBe(queries.length);

    // The same state at any fleet size: a bounded summary, and the hosts a page at a time.
    const get = async <T>(path: string): Promise<{ status: number; body: T }> => {
      const r = await fetch(`http://127.0.0.1:${port}/api/deployments/${handle.workflowId}${path}`, { headers: { authorization: `Bearer ${VIEWER}` } });
      return { status: r.status, body: (await r.json()) as T };
    };
    type Page = { total: number; pages: number; page: number; hosts: Array<{ name: string; state: string }> };
    const p1 = await get<Page>('/hosts?page=1&pageSize=2');
    expect(p1.status).toBe(200);
    expect(p1.body).toMatchObject({ total: 3, pages: 2, page: 1 });
    expect(p1.body.hosts.map((h) => h.name)).toEqual(['v1', 'v2']);
    expect((await get<Page>('/hosts?page=2&pageSize=2')).body.hosts.map((h) => h.name)).toEqual(['v3']);
    expect((await get<Page>('/hosts?page=3&pageSize=2')).body.hosts).toEqual([]);
    expect((await get<Page>('/hosts?state=not-attempted')).body.hosts.map((h) => h.name)).toEqual(['v3']);
    const wave = seen[0]?.http.waves?.[0]?.name as string;
    expect((await get<Page>(`/hosts?wave=${encodeURIComponent(wave)}`)).body.total).toBe(3);
    expect((await get<Page>('/hosts?wave=no-such-wave')).body.total).toBe(0);
    const bad = await get<{ message: string }>('/hosts?state=exploded');
    expect(bad.status).toBe(400);
    expect(bad.body.message).toContain('query.state');
    expect((await get<{ message: string }>('/hosts?pageSize=501')).body.message).toContain('query.pageSize');
    // The rollback preview for a display: its first hosts and their count; a bad limit is refused, naming it.
    const preview = await get<{ hosts: Array<{ name: string }>; allowed: string[] }>('/rollback-preview');
    const first = await get<{ hosts: Array<{ name: string }>; hostCount: number; allowed: string[] }>('/rollback-preview?limit=1');
    expect(first.body).toEqual({ ...preview.body, hosts: preview.body.hosts.slice(0, 1), hostCount: preview.body.hosts.length });
    const badLimit = await get<{ message: string }>('/rollback-preview?limit=-1');
    expect({ status: badLimit.status, field: badLimit.body.message.includes('query.limit') }).toEqual({ status: 400, field: true });
    const sum = await get<{ hosts: { total: number; byState: Record<string, number> }; phase: string; failedHost: string }>('/summary');
    expect(sum.body).toMatchObject({ phase: 'awaiting-operator', failedHost: 'v2', hosts: { total: 3, byState: { 'rolled-back': 2, 'not-attempted': 1 } } });
    expect(sum.body).not.toHaveProperty('hosts.0');
  } finally {
    for (const s of sockets) s.close();
    await app.close();
    worker.shutdown();
    await running;
    await close();
    await w.stop();
    await t.stop();
  }
});
