/**
 * The main job on embedded defaults, for a newcomer: a local Temporal dev server (SQLite), the worker,
 * the API, a git-backed GitHub stand-in holding a fleet flake, and a demo fleet of five stand-in hosts
 * (real sshd + real Nix generations). It opens a flake.lock update pull request and deploys it; host
 * hsb1 fails its activation, so you watch the halt, the revert and the rollbacks in the Temporal Web UI.
 *
 *   bash scripts/demo.sh                  # everything, stays up until Ctrl-C
 *   bash scripts/demo.sh --healthy        # the same update without the failing host
 *   npx tsx scripts/demo.ts --once        # exit when the deployment has settled (used by the tests)
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import pino from 'pino';
import { buildApi } from '../src/api/server';
import { SqliteAuditStore } from '../src/audit/sqlite-audit-store';
import { TokenStore } from '../src/api/tokens';
import { TASK_QUEUE, type DeploymentStatus } from '../src/domain/deployment';
import { DeploymentService } from '../src/service/deployments';
import { freePort, startDevServer } from '../src/temporal/dev-server';
import { startWorld } from '../src/testworld/world';
import { formatStatus } from '../src/cli/main';
import { createDeployWorker } from '../workers/worker';

const { values } = parseArgs({
  options: {
    once: { type: 'boolean', default: false },
    healthy: { type: 'boolean', default: false },
    'temporal-port': { type: 'string' },
    'ui-port': { type: 'string' },
    'api-port': { type: 'string' },
    'state-dir': { type: 'string' },
  },
});

const say = (s: string): void => void process.stdout.write(`${s}\n`);

async function portOr(wanted: string | undefined, fallback: number): Promise<number> {
  if (wanted !== undefined) return Number(wanted) === 0 ? freePort() : Number(wanted);
  // The usual ports when they are free, any free port otherwise.
  const probe = await import('node:net').then(
    (net) =>
      new Promise<boolean>((res) => {
        const s = net.createServer();
        s.once('error', () => res(false));
        s.listen(fallback, '127.0.0.1', () => s.close(() => res(true)));
      }),
  );
  return probe ? fallback : freePort();
}

async function main(): Promise<void> {
  const stateDir = resolve(values['state-dir'] ?? join(__dirname, '..', '.nixfleet', 'demo'));
  mkdirSync(stateDir, { recursive: true });
  const log = pino({ level: process.env.LOG_LEVEL ?? 'info', base: { component: 'worker' } }, pino.destination({ dest: join(stateDir, 'worker.log'), sync: false }));
  // The SDK's own warnings (an activity that failed, as hsb1's switch will) go to the worker log too.
  Runtime.install({ logger: new DefaultLogger('WARN', (e) => log.warn({ sdk: e.meta }, e.message)) });

  say(`▶ starting the Temporal dev server (SQLite: ${join(stateDir, 'temporal.db')})…`);
  const temporalPort = await portOr(values['temporal-port'], 7233);
  const uiPort = await portOr(values['ui-port'], 8233);
  const server = await startDevServer({ dbFile: join(stateDir, 'temporal.db'), port: temporalPort, uiPort, logFile: join(stateDir, 'temporal.log') });
  say(`  Temporal at ${server.address}, Web UI ${server.uiUrl}`);

  say('▶ starting the GitHub stand-in and the demo fleet (real sshd + Nix on loopback addresses)…');
  const world = await startWorld({
    owner: 'demo',
    repo: 'fleet',
    hosts: [
      { name: 'gpc0', kind: 'nixos', generations: [40, 41, 42] },
      { name: 'hsb0', kind: 'nixos', generations: [17, 18] },
      { name: 'alice', kind: 'home-manager', generations: [7, 8, 9] },
      { name: 'hsb1', kind: 'nixos', generations: [40, 41, 42] },
      { name: 'csb0', kind: 'nixos', generations: [100] },
    ],
  });
  for (const h of world.fleet.hosts) say(`  ${h.name.padEnd(6)} ${h.kind.padEnd(12)} ssh root@${h.address} -p ${h.port}   generation ${h.profileGeneration().number}`);
  say(`  GitHub stand-in at ${world.github.baseUrl} (repository demo/fleet)`);

  // The durable audit log: the worker writes it, the API reads it (NIXFLEET_AUDIT_DB overrides).
  const auditFile = process.env.NIXFLEET_AUDIT_DB ?? join(stateDir, 'audit.db');
  const audit = new SqliteAuditStore(auditFile);
  const nativeConnection = await NativeConnection.connect({ address: server.address });
  const { worker, close } = await createDeployWorker({ connection: nativeConnection, namespace: server.namespace, taskQueue: TASK_QUEUE, deps: { ...world.activityDeps(log), audit } });
  const workerRun = worker.run();
  say(`▶ worker polling task queue ${TASK_QUEUE} (its log: ${join(stateDir, 'worker.log')}; audit log: ${auditFile})`);

  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection, namespace: server.namespace });
  const service = new DeploymentService(client, TASK_QUEUE);
  const operatorToken = randomBytes(18).toString('base64url');
  const viewerToken = randomBytes(18).toString('base64url');
  const tokens = { tokens: [{ token: operatorToken, identity: 'demo-admin', role: 'operator' }, { token: viewerToken, identity: 'demo-viewer', role: 'viewer' }] };
  writeFileSync(join(stateDir, 'api-tokens.json'), JSON.stringify(tokens, null, 2), { mode: 0o600 });
  const api = buildApi({ service, tokens: TokenStore.fromJson(tokens), logger: pino({ level: 'warn' }), audit });
  const apiPort = await portOr(values['api-port'], 8787);
  await api.listen({ host: '127.0.0.1', port: apiPort });
  say(`▶ API at http://127.0.0.1:${apiPort} (tokens in ${join(stateDir, 'api-tokens.json')})`);
  say(`  dashboard: http://127.0.0.1:${apiPort}/dashboard/  (sign in with the operator token ${operatorToken})`);

  // A deployment left open by an earlier demo run points at hosts that are gone: close it.
  for await (const wf of client.workflow.list({ query: `WorkflowType = 'deployWorkflow' AND ExecutionStatus = 'Running'` })) {
    if (wf.workflowId.startsWith('deploy-demo.fleet.') || wf.workflowId.startsWith('deploy-demo-fleet-')) await client.workflow.getHandle(wf.workflowId).terminate('superseded by a new demo run');
  }
  const pr = await world.openLockUpdate('v2', { title: 'flake.lock: update nixpkgs (demo)' });
  if (!values.healthy) world.fleet.host('hsb1').failActivation('units', { onlyVersion: 'v2' });
  const fleet = world.fleetFile({ revert: 'commit', rollbackHosts: true });
  const { deploymentId } = await service.start({ fleet, change: { pullRequest: pr.number } }, 'demo-admin');
  say(`▶ deploying pull request #${pr.number} as ${deploymentId}${values.healthy ? '' : ' (hsb1 will fail its activation)'}`);
  say(`  watch it: ${server.uiUrl}/namespaces/${server.namespace}/workflows/${deploymentId}`);

  const seen = new Map<string, string>();
  let status: DeploymentStatus;
  for (;;) {
    status = await service.status(deploymentId).catch(() => undefined as unknown as DeploymentStatus);
    if (status) {
      for (const h of status.hosts) {
        if (seen.get(h.name) !== h.state) {
          say(`  ${h.name.padEnd(6)} ${h.state}${h.after && h.state === 'switched' ? ` (generation ${h.after.number})` : ''}${h.error ? `: ${h.error}` : ''}`);
          seen.set(h.name, h.state);
        }
      }
      if (['awaiting-operator', 'succeeded', 'closed'].includes(status.phase)) break;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  say('');
  if (status.outcome !== 'succeeded') {
    const by = (st: string) => status.hosts.filter((h) => h.state === st || (st === 'failed' && h.state === 'rolled-back' && h.name === status.failedHost)).map((h) => h.name);
    say('⚠️  Deployment Failed');
    say(`Switch failed on: ${status.failedHost ?? '?'}`);
    say(`Rolled back: ${by('rolled-back').join(', ') || 'none'}`);
    say(`Not attempted: ${by('not-attempted').join(', ') || 'none'}`);
  }
  say(formatStatus(status));
  say('');
  say('Try:');
  say(`  NIXFLEET_API_URL=http://127.0.0.1:${apiPort} NIXFLEET_TOKEN=${operatorToken} ./bin/nixfleet status ${deploymentId}`);
  say(`  NIXFLEET_API_URL=http://127.0.0.1:${apiPort} NIXFLEET_TOKEN=${operatorToken} ./bin/nixfleet audit ${deploymentId}`);
  say(`  the dashboard: http://127.0.0.1:${apiPort}/dashboard/#/${deploymentId}`);
  say(`  temporal workflow query --address ${server.address} --workflow-id ${deploymentId} --name status`);

  const shutdown = async (): Promise<void> => {
    say('stopping…');
    await api.close();
    worker.shutdown();
    await workerRun;
    await close();
    await nativeConnection.close();
    await connection.close();
    await world.stop();
    await server.stop();
    await audit.close();
  };
  if (values.once) {
    await shutdown();
    process.exitCode = status.outcome === 'succeeded' || status.outcome === 'failed-rolled-back' ? 0 : 1;
    return;
  }
  say('Running until Ctrl-C.');
  await new Promise<void>((res) => {
    process.once('SIGINT', res);
    process.once('SIGTERM', res);
  });
  await shutdown();
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exit(1);
});
