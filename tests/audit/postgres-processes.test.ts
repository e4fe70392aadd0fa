/**
 * The worker and the API as real processes (workers/main.ts, src/api/main.ts), both given the audit
 * store by NIXFLEET_AUDIT_URL=postgres://…: a real PostgreSQL server (testkit/postgres.ts), a real
 * Temporal dev server, stand-in hosts and GitHub. A failing deployment's entries are written by the
 * worker's recordAudit into PostgreSQL (no SQLite file anywhere) and served by the API from there.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import type { AuditRecord } from '../../src/audit/audit-store';
import { freePort } from '../../testkit/dev-server';
import { startPostgres, type PostgresServer } from '../../testkit/postgres';
import { startWorld, type World } from '../../testkit/world';
import { startDeployment, waitPhase } from '../support/saga';
import { startTestTemporal, taskQueueFor, waitFor, type TestTemporal } from '../support/temporal';

const ROOT = join(__dirname, '..', '..');
const VIEWER = 'viewer-token-0123456789abcdef';
let t: TestTemporal;
let pg: PostgresServer;
let dir: string;
let world: World | undefined;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nixfleet-audit-pg-'));
  [t, pg] = await Promise.all([startTestTemporal(), startPostgres()]);
}, 120_000);
afterAll(async () => {
  await Promise.allSettled([...children].map((c) => stopChild(c)));
  await world?.stop();
  await Promise.allSettled([t?.stop(), pg?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

async function stopChild(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  const kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const code = await exited;
  clearTimeout(kill);
  return code;
}

/** A process of ours, its output kept; resolves once `ready` appears in it. */
async function startProcess(script: string, env: NodeJS.ProcessEnv, ready: string): Promise<{ child: ChildProcess; output(): string }> {
  // HOME in the test's directory: the SQLite default (~/.local/state/nixfleet/audit.db) would show up there.
  const full: NodeJS.ProcessEnv = { ...process.env, HOME: join(dir, 'home'), ...env };
  delete full.NIXFLEET_AUDIT_DB;
  delete full.XDG_STATE_HOME;
  const child = spawn(process.execPath, ['--require', 'tsx/cjs', join(ROOT, script)], { cwd: ROOT, env: full, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor(`${script} to start`, () => {
    if (child.exitCode !== null) throw new Error(`${script} exited ${child.exitCode}: ${out}`);
    return out.includes(ready) ? true : undefined;
  }, 150_000, 200);
  return { child, output: () => out };
}

test('when the worker and the API are given postgres://, then the audit log is written to and served from PostgreSQL', async () => {
  const title = 'audit in postgres';
  const taskQueue = taskQueueFor(title);
  world = await startWorld({ hosts: [{ name: 'q1', kind: 'nixos' }, { name: 'q2', kind: 'nixos' }] });
  const url = await pg.createDatabase('audit_processes');
  const keyFile = join(dir, 'id_ed25519');
  writeFileSync(keyFile, world.fleet.clientPrivateKey, { mode: 0o600 });
  writeFileSync(join(dir, 'known_hosts'), world.fleet.knownHosts);
  const worker = await startProcess(
    'workers/main.ts',
    {
      TEMPORAL_ADDRESS: t.server.address,
      TEMPORAL_NAMESPACE: t.server.namespace,
      TEMPORAL_TASK_QUEUE: taskQueue,
      GITHUB_API_URL: world.github.baseUrl,
      GITHUB_TOKEN: world.token,
      NIXFLEET_SSH_KEY: keyFile,
      NIXFLEET_KNOWN_HOSTS: join(dir, 'known_hosts'),
      NIXFLEET_AUDIT_URL: url,
      LOG_LEVEL: 'info',
    },
    'worker started',
  );
  expect(worker.output()).toContain(`"audit":"${url}"`);

  const pr = await world.openLockUpdate('v2');
  world.fleet.host('q2').failActivation('units', { onlyVersion: 'v2' });
  const handle = await startDeployment(t, world, taskQueue, { pr: pr.number, requestedBy: 'olga' });
  try {
    await waitPhase(handle, ['awaiting-operator']);
    const pgClient = new Client({ connectionString: url });
    await pgClient.connect();
    let rows: Array<{ seq: string; actor: string; action: string }>;
    try {
      // recordAudit runs beside the workflow: wait until its three entries are in.
      rows = await waitFor('three entries in nixfleet_audit', async () => {
        const r = await pgClient.query<{ seq: string; actor: string; action: string }>('SELECT seq, actor, action FROM nixfleet_audit WHERE deployment_id = $1 ORDER BY seq', [handle.workflowId]);
        return r.rows.length >= 3 ? r.rows : undefined;
      });
    } finally {
      await pgClient.end();
    }
    expect(rows.map((r) => `${r.seq} ${r.actor} ${r.action}`)).toEqual(['1 olga deploy', '2 olga merge', '3 nixfleet (automatic) auto-compensate']);

    const port = await freePort();
    const tokensFile = join(dir, 'tokens.json');
    writeFileSync(tokensFile, JSON.stringify({ tokens: [{ token: VIEWER, identity: 'victor', role: 'viewer' }] }));
    const api = await startProcess(
      'src/api/main.ts',
      { TEMPORAL_ADDRESS: t.server.address, TEMPORAL_NAMESPACE: t.server.namespace, NIXFLEET_API_PORT: String(port), NIXFLEET_API_TOKENS_FILE: tokensFile, NIXFLEET_AUDIT_URL: url, LOG_LEVEL: 'info' },
      'API and dashboard listening',
    );
    const res = await fetch(`http://127.0.0.1:${port}/api/deployments/${handle.workflowId}/audit`, { headers: { authorization: `Bearer ${VIEWER}` } });
    expect(res.status).toBe(200);
    const { audit } = (await res.json()) as { audit: AuditRecord[] };
    expect(audit.map((e) => `${e.seq} ${e.actor} ${e.action}`)).toEqual(rows.map((r) => `${r.seq} ${r.actor} ${r.action}`));
    expect(audit.every((e) => e.deploymentId === handle.workflowId && e.repository === `${world?.owner}/${world?.repo}`)).toBe(true);
    expect(await stopChild(api.child)).toBe(0);
  } finally {
    await handle.terminate('test over').catch(() => undefined);
    expect(await stopChild(worker.child)).toBe(0);
  }
  // Neither process made a SQLite file: the URL chose the store.
  const state = join(dir, 'home', '.local', 'state', 'nixfleet');
  expect(existsSync(state) ? readdirSync(state) : []).toEqual([]);
});
