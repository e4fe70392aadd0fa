/**
 * `GET …/rollback-preview?limit=N` (issue 13, bounded outputs): the limit travels in the workflow's
 * query, so the worker sends the first N hosts and their count, not every host; an answer from a worker
 * that ignores the argument (older than it: simulated by a client interceptor that drops the argument)
 * is still cut by the API. Real dev server, real worker, the simulated fleet: 6 hosts, the last fails,
 * nothing is rolled back automatically, so the preview names all 6.
 */
import { Client } from '@temporalio/client';
import { buildApi } from '../../src/api/server';
import { TokenStore } from '../../src/api/tokens';
import type { RollbackPreview } from '../../src/domain/deployment';
import { createLogger } from '../../src/logger';
import { buildDeployInput, FleetFile, parseWith } from '../../src/schemas/fleet.schema';
import { DeploymentService } from '../../src/service/deployments';
import { startSimWorld } from '../../testkit/simfleet/world';
import { createDeployWorker } from '../../workers/worker';
import { deployWorkflow } from '../../workflows';
import { rollbackPreviewQuery, statusQuery } from '../../workflows/messages';
import { startTestTemporal, taskQueueFor, waitFor, workflowBundle } from '../support/temporal';

const VIEWER = 'viewer-token-0123456789abcdef';
const names = ['p1', 'p2', 'p3', 'p4', 'p5', 'p6'];

test('when the API is asked for the first 2 hosts of a rollback preview, then the workflow answers only those and their count; an older worker\'s whole answer is cut by the API', async () => {
  const t = await startTestTemporal();
  const w = await startSimWorld({ hosts: names.map((name) => ({ name, kind: 'nixos' as const })) });
  w.fleet.host('p6').host.failActivation('units');
  const taskQueue = taskQueueFor('preview-limit');
  const { worker, close } = await createDeployWorker({ connection: t.nativeConnection, namespace: t.server.namespace, taskQueue, deps: w.activityDeps(), workflowBundle: await workflowBundle() });
  const running = worker.run();
  // What the worker answered each query (its hosts), as the API's client received it; `dropArgs`: as from a worker that ignores them.
  const answered: Array<{ args: unknown[]; hosts: number }> = [];
  let dropArgs = false;
  const client = (): Client =>
    new Client({
      connection: t.connection,
      namespace: t.server.namespace,
      interceptors: {
        workflow: [
          {
            query: async (input, next) => {
              const args = dropArgs ? [] : input.args;
              const r = (await next({ ...input, args })) as RollbackPreview;
              if (input.queryType === 'rollbackPreview') answered.push({ args: [...args], hosts: r.hosts.length });
              return r;
            },
          },
        ],
      },
    });
  const app = buildApi({ service: new DeploymentService(client(), taskQueue), tokens: TokenStore.fromJson({ tokens: [{ token: VIEWER, identity: 'victor', role: 'viewer' }] }), logger: createLogger('test', 'silent'), progressPollMs: 60_000 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  try {
    const pr = await w.openLockUpdate('v2');
    const input = buildDeployInput(parseWith(FleetFile, w.fleetFile({ revert: 'off', rollbackHosts: false })), { pullRequest: pr.number }, 'alice');
    const handle = await t.client.workflow.start(deployWorkflow, { taskQueue, workflowId: input.deploymentId, args: [input] });
    await waitFor('the deployment to await the operator', async () => ((await handle.query(statusQuery)).phase === 'awaiting-operator' ? true : undefined), 120_000, 200);
    const get = async (path: string): Promise<{ status: number; body: RollbackPreview & { message?: string } }> => {
      const r = await fetch(`http://127.0.0.1:${port}/api/deployments/${handle.workflowId}${path}`, { headers: { authorization: `Bearer ${VIEWER}` } });
      return { status: r.status, body: (await r.json()) as RollbackPreview & { message?: string } };
    };

    const all = await get('/rollback-preview');
    expect(all.body.hosts.map((h) => h.name).sort()).toEqual(names);
    expect(all.body).not.toHaveProperty('hostCount');
    const first = await get('/rollback-preview?limit=2');
    expect(first.status).toBe(200);
    expect(first.body).toEqual({ ...all.body, hosts: all.body.hosts.slice(0, 2), hostCount: 6 });
    // The workflow cut it: the worker sent 2 hosts, asked with the limit.
    expect(answered).toEqual([
      { args: [], hosts: 6 },
      { args: [{ limit: 2 }], hosts: 2 },
    ]);
    // The query itself, as the temporal CLI would send it: a bad limit is refused naming the field.
    expect(await handle.query(rollbackPreviewQuery, { limit: 0 })).toEqual({ ...all.body, hosts: [], hostCount: 6 });
    await expect(handle.query(rollbackPreviewQuery, { limit: -1 })).rejects.toThrow(/limit: a whole number from 0 to 500/);

    // A worker older than the argument answers every host: the API still sends the first 2.
    dropArgs = true;
    const old = await get('/rollback-preview?limit=2');
    expect(old.body).toEqual(first.body);
    expect(answered[answered.length - 1]).toEqual({ args: [], hosts: 6 });
  } finally {
    await app.close();
    worker.shutdown();
    await running;
    await close();
    await w.stop();
    await t.stop();
  }
}, 300_000);
