/**
 * The main job on embedded defaults, for a newcomer: a local Temporal dev server (SQLite), the worker,
 * the API, a git-backed GitHub stand-in holding a fleet flake, and a demo fleet of five stand-in hosts
 * (real sshd + real Nix generations). It opens a flake.lock update pull request and deploys it; host
 * hsb1 fails its activation, so you watch the halt, the revert and the rollbacks in the Temporal Web UI.
 *
 *   bash scripts/demo.sh                  # everything, stays up until Ctrl-C
 *   bash scripts/demo.sh --healthy        # the same update without the failing host
 *   bash scripts/demo.sh --once           # exit when the deployment has settled, after checking its outcome
 *                                         # against the hosts and the branch: exit 0 if it is what README says, 1 if not
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
import { freePort, startDevServer } from '../testkit/dev-server';
import { startWorld } from '../testkit/world';
import { formatStatus } from '../src/cli/main';
import { createDeployWorker } from '../workers/worker';
import { checkDemo } from './demo-check';

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
  // The demo owns Ctrl-C (shutdownSignals: []): the SDK's own handler would shut the worker down a
  // second time under the demo's shutdown ("Not running. Current state: DRAINING").
  Runtime.install({ logger: new DefaultLogger('WARN', (e) => log.warn({ sdk: e.meta }, e.message)), shutdownSignals: [] });

  say(`▶ starting the Temporal dev server (SQLite: ${join(stateDir, 'temporal.db')})…`);
  const temporalPort = await portOr(values['temporal-port'], 7233);
  const uiPort = await portOr(values['ui-port'], 8233);
  const server = await startDevServer({ dbFile: join(stateDir, 'temporal.db'), port: temporalPort, uiPort, logFile: join(stateDir, 'temporal.log'), ownProcessGroup: true });
  onStop('the Temporal dev server', () => server.stop());
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
  onStop('the GitHub stand-in and the fleet', () => world.stop());
  for (const h of world.fleet.hosts) say(`  ${h.name.padEnd(6)} ${h.kind.padEnd(12)} ssh root@${h.address} -p ${h.port}   generation ${h.profileGeneration().number}`);
  say(`  GitHub stand-in at ${world.github.baseUrl} (repository demo/fleet)`);

  // The durable audit log: the worker writes it, the API reads it (NIXFLEET_AUDIT_DB overrides).
  const auditFile = process.env.NIXFLEET_AUDIT_DB ?? join(stateDir, 'audit.db');
  const audit = new SqliteAuditStore(auditFile);
  onStop('the audit log', () => audit.close());
  const nativeConnection = await NativeConnection.connect({ address: server.address });
  onStop('the worker connection', () => nativeConnection.close());
  const { worker, close } = await createDeployWorker({ connection: nativeConnection, namespace: server.namespace, taskQueue: TASK_QUEUE, deps: { ...world.activityDeps(log), audit } });
  const workerRun = worker.run();
  onStop('the worker', async () => {
    if (worker.getState() === 'RUNNING') worker.shutdown();
    await workerRun;
    await close();
  });
  say(`▶ worker polling task queue ${TASK_QUEUE} (its log: ${join(stateDir, 'worker.log')}; audit log: ${auditFile})`);

  const connection = await Connection.connect({ address: server.address });
  onStop('the client connection', () => connection.close());
  const client = new Client({ connection, namespace: server.namespace });
  const service = new DeploymentService(client, TASK_QUEUE);
  const operatorToken = randomBytes(18).toString('base64url');
  const viewerToken = randomBytes(18).toString('base64url');
  const tokens = { tokens: [{ token: operatorToken, identity: 'demo-admin', role: 'operator' }, { token: viewerToken, identity: 'demo-viewer', role: 'viewer' }] };
  writeFileSync(join(stateDir, 'api-tokens.json'), JSON.stringify(tokens, null, 2), { mode: 0o600 });
  const api = buildApi({ service, tokens: TokenStore.fromJson(tokens), logger: pino({ level: 'warn' }), audit });
  const apiPort = await portOr(values['api-port'], 8787);
  await api.listen({ host: '127.0.0.1', port: apiPort });
  onStop('the API', () => api.close());
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

  if (values.once) {
    // The outcome, checked against what the hosts and the branch hold (not only what the status says).
    const generationNow = Object.fromEntries(world.fleet.hosts.map((h) => [h.name, h.profileGeneration()]));
    const log = await world.github.log(world.owner, world.repo, world.branch, 20);
    const mergeAt = status.mergeSha ? log.findIndex((c) => c.sha === status.mergeSha) : -1;
    const commitsAfterMerge = mergeAt >= 0 ? log.slice(0, mergeAt).map((c) => c.subject) : [];
    const problems = checkDemo(values.healthy ? 'healthy' : 'failing', { status, generationNow, commitsAfterMerge });
    if (mergeAt < 0) problems.push(`the merge commit ${status.mergeSha ?? '(none)'} is not on ${world.branch}`);
    say(problems.length === 0 ? `check: ok (${values.healthy ? 'every host switched' : 'hsb1 failed, csb0 not attempted, gpc0, hsb0, alice, hsb1 back on their recorded generations, one revert commit'})` : `check: FAILED\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    await stop(problems.length === 0 ? 0 : 1);
    return;
  }
  say('Running until Ctrl-C.');
  running = true;
}

/** What to stop, in the order it started; stopped last-started first, each step on its own. */
const stopSteps: Array<{ what: string; run: () => Promise<unknown> }> = [];
function onStop(what: string, run: () => Promise<unknown>): void {
  stopSteps.push({ what, run });
}
let stopping = false;
async function stop(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  say('stopping…');
  for (const step of stopSteps.reverse()) {
    try {
      await step.run();
    } catch (err) {
      say(`  (stopping ${step.what}: ${err instanceof Error ? err.message : String(err)})`);
    }
  }
  process.exit(code);
}
// Ctrl-C stops everything and exits 0 once the demo is up; while it starts, it stops what has
// started and exits 130; a second Ctrl-C leaves at once.
let running = false;
const interrupted = (): void => {
  if (stopping) process.exit(130);
  void stop(running ? 0 : 130);
};
process.on('SIGINT', interrupted);
process.on('SIGTERM', interrupted);

main().catch(async (err: unknown) => {
  console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
  if (process.env.NIXFLEET_DEBUG) console.error(err);
  await stop(1);
});
