/**
 * The audit log outlives every process and Temporal's own history: a real deployment writes it through
 * the worker's store; then the worker, the API, the hosts and the Temporal server all stop (and the
 * server's database is deleted, as retention would); a fresh process reads the same entries from the
 * file, and a fresh API process, on a fresh Temporal server that has never heard of the deployment,
 * serves them.
 */
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { AuditRecord } from '../../src/audit/audit-store';
import { freePort, startDevServer } from '../../testkit/dev-server';
import { OPERATOR, startStack, VIEWER } from '../api/stack';
import { waitFor } from '../support/temporal';

const execFileP = promisify(execFile);
const ROOT = join(__dirname, '..', '..');
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nixfleet-audit-restart-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const summary = (e: AuditRecord): string => `${e.seq} ${e.actor} ${e.action} [${e.hosts.join(',')}]${e.reverted ? ` reverted=${e.reverted}` : ''}`;

test('when every process has stopped and Temporal has forgotten the deployment, then its audit entries are still there', async () => {
  const auditFile = join(dir, 'state', 'audit.db');
  const stack = await startStack('audit-restart', [{ name: 'r1', kind: 'nixos' }, { name: 'r2', kind: 'nixos' }, { name: 'r3', kind: 'nixos' }], { auditFile });
  let id: string;
  let before: AuditRecord[];
  let revertSha: string;
  try {
    const pr = await stack.world.openLockUpdate('v2');
    stack.world.fleet.host('r2').failActivation('units', { onlyVersion: 'v2' });
    id = await stack.deploy(pr.number, { revert: 'commit', rollbackHosts: true });
    const failed = await stack.waitPhase(id, ['awaiting-operator']);
    revertSha = failed.revert?.kind === 'commit' ? failed.revert.commitSha : 'none';
    const dismissed = await stack.call('POST', `/api/deployments/${id}/dismiss`, { reason: 'rolled back automatically' }, OPERATOR);
    expect(dismissed.status).toBe(200);
    await stack.waitPhase(id, ['closed']);
    // Written by the worker's recordAudit activity before the workflow closed; read by the API.
    before = (await stack.call<{ audit: AuditRecord[] }>('GET', `/api/deployments/${id}/audit`, undefined, VIEWER)).body.audit;
  } finally {
    // Worker, API, hosts, GitHub stand-in and the Temporal server (its SQLite file deleted).
    await stack.stop();
  }
  expect(before.map(summary)).toEqual([
    '1 olga deploy [r1,r2,r3]',
    '2 olga merge []',
    `3 nixfleet (automatic) auto-compensate [r2,r1] reverted=${revertSha}`,
    '4 olga dismiss []',
  ]);
  // The automatic entry says why it halted, in the host's own words, then what it undid.
  expect(before[2]?.outcome).toMatch(/^halted: switch failed on r2: r2: activation reported failed units \(exit 4\); the host runs the new generation: .*nixfleet-standin\.service.*; reverted in [0-9a-f]{12}; rolled back: r2, r1$/);
  expect(new Set(before.map((e) => e.deploymentId))).toEqual(new Set([id]));

  // A fresh process opens the file cold.
  const { stdout } = await execFileP(process.execPath, ['--require', 'tsx/cjs', join(__dirname, 'read-audit.ts'), auditFile], { cwd: ROOT, timeout: 60_000 });
  const cold = JSON.parse(stdout) as { pid: number; entries: AuditRecord[]; refused: string[] };
  expect(cold.pid).not.toBe(process.pid);
  expect(cold.entries).toEqual(before);
  expect(cold.refused).toEqual([expect.stringMatching(/UPDATE refused/), expect.stringMatching(/DELETE refused/)]);

  // A fresh API process on a fresh Temporal server (no history at all) still serves the log.
  const server = await startDevServer({ dbFile: join(dir, 'fresh-temporal.db'), uiPort: false });
  const port = await freePort();
  const tokensFile = join(dir, 'tokens.json');
  writeFileSync(tokensFile, JSON.stringify({ tokens: [{ token: VIEWER, identity: 'victor', role: 'viewer' }] }));
  const api = spawn(process.execPath, ['--require', 'tsx/cjs', join(ROOT, 'src', 'api', 'main.ts')], {
    cwd: ROOT,
    env: { ...process.env, TEMPORAL_ADDRESS: server.address, NIXFLEET_API_PORT: String(port), NIXFLEET_API_TOKENS_FILE: tokensFile, NIXFLEET_AUDIT_DB: auditFile, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let apiErr = '';
  api.stderr.on('data', (d: Buffer) => (apiErr += d.toString()));
  const exited = new Promise<number | null>((resolve) => api.once('exit', resolve));
  try {
    const base = `http://127.0.0.1:${port}`;
    await waitFor(`the API process to listen${apiErr ? ` (${apiErr})` : ''}`, async () => ((await fetch(`${base}/healthz`)).ok ? true : undefined), 60_000);
    const get = async (path: string): Promise<{ status: number; body: { audit?: AuditRecord[] } }> => {
      const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${VIEWER}` } });
      return { status: res.status, body: (await res.json()) as { audit?: AuditRecord[] } };
    };
    // Temporal has no such deployment any more…
    expect((await get(`/api/deployments/${id}`)).status).toBe(404);
    // …and its audit trail is served from the store, per deployment and in the whole log.
    expect(await get(`/api/deployments/${id}/audit`)).toEqual({ status: 200, body: { audit: before } });
    expect(await get('/api/audit')).toEqual({ status: 200, body: { audit: before } });
  } finally {
    api.kill('SIGTERM');
    const kill = setTimeout(() => api.kill('SIGKILL'), 15_000);
    const code = await exited;
    clearTimeout(kill);
    await server.stop();
    expect({ code, apiErr }).toMatchObject({ code: 0 });
  }
});
