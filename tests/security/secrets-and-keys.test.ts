/**
 * Security on the real stack: host keys pinned (a changed or unknown key refuses to connect: the
 * deployment fails as HostKeyMismatch and the host is never logged into, let alone switched); secrets
 * (the GitHub token, the SSH private key, the API bearer token) never appear in the workflow history,
 * the worker's logs or the API's responses; API tokens compared with timingSafeEqual on equal-length
 * digests whatever the presented token's length.
 */
import * as crypto from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../src/api/server';
import { TokenStore } from '../../src/api/tokens';
import { createLogger } from '../../src/logger';
import { DeploymentService } from '../../src/service/deployments';
import type { World } from '../../testkit/world';
import { recorder } from '../faults/figures';
import { startAllowlistedWorld, startInProcessWorker, type RunningWorker } from '../faults/harness';
import { rollbackUpdate, statusQuery } from '../../workflows/messages';
import { logins, profileMoves, startDeployment, waitPhase } from '../support/saga';
import { historyText } from '../support/history-text';
import { startTestTemporal, type TestTemporal } from '../support/temporal';

const rec = recorder(__filename);
let t: TestTemporal;
let world: World;
let worker: RunningWorker;
const API_TOKEN = 'api-secret-token-do-not-leak-0123456789';

beforeAll(async () => {
  t = await startTestTemporal();
  world = await startAllowlistedWorld({ hosts: ['s1', 's2', 's3', 's4'].map((name) => ({ name, kind: 'nixos' as const })) });
  // The worker's known_hosts: s2's key has changed (another key in its place), s4 is not listed at all.
  const other = crypto.generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' }).subarray(-32);
  const fakeKey = Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.from([0, 0, 0, 32]), other]).toString('base64');
  const knownHosts = world.fleet.hosts
    .filter((h) => h.name !== 's4')
    .map((h) => (h.name === 's2' ? `[${h.address}]:${h.port} ssh-ed25519 ${fakeKey}` : h.knownHostsLine))
    .join('\n');
  worker = await startInProcessWorker(t, world, 'security', (d) => ({ ...d, ssh: { ...d.ssh, knownHosts } }));
}, 120_000);
afterAll(async () => {
  await worker?.stop();
  await world?.stop();
  await t?.stop();
  rec.save();
});

function secretsOf(): Array<[string, string]> {
  const keyBody = world.fleet.clientPrivateKey
    .split('\n')
    .filter((l) => l && !l.startsWith('-----'))
    .filter((l) => l.length >= 20);
  return [['GitHub token', world.token], ['API token', API_TOKEN], ...keyBody.map((l, i): [string, string] => [`SSH private key line ${i + 1}`, l])];
}

test('a host whose key changed fails the deployment as HostKeyMismatch and is never switched; an unknown host is refused too; no secret leaks anywhere', async () => {
  const pr = await world.openLockUpdate('v2');
  const handle = await startDeployment(t, world, worker.taskQueue, { pr: pr.number, order: ['s1', 's2', 's3'] });
  const s = await waitPhase(handle, ['awaiting-operator', 'closed'], 120_000);
  rec.run();
  rec.fault();
  const s2 = s.hosts.find((h) => h.name === 's2');
  rec.check('s2 failed', s2?.state === 'failed', s2);
  rec.check('s2 failure says HostKeyMismatch / host key', /host key/i.test(s2?.error ?? ''), s2?.error);
  rec.check('s2 never logged into (its sshd accepted no key)', logins(world, 's2') === 0);
  rec.check('s2 never switched', profileMoves(world, 's2').set === 0 && profileMoves(world, 's2').activations === 0);
  rec.check('s3 not attempted', s.hosts.find((h) => h.name === 's3')?.state === 'not-attempted');
  rec.check('s1 rolled back', s.hosts.find((h) => h.name === 's1')?.state === 'rolled-back');

  // The API, in-process, answering with the status, the preview and the audit.
  const app: FastifyInstance = buildApi({
    service: new DeploymentService(t.client, worker.taskQueue),
    tokens: TokenStore.fromJson({ tokens: [{ token: API_TOKEN, identity: 'olga', role: 'operator' }] }),
    logger: createLogger('api', 'silent'),
  });
  let apiText = '';
  try {
    for (const url of [`/api/deployments/${handle.workflowId}`, `/api/deployments/${handle.workflowId}/rollback-preview`, `/api/deployments/${handle.workflowId}/audit`, '/api/deployments']) {
      const r = await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${API_TOKEN}` } });
      expect(r.statusCode).toBe(200);
      apiText += r.body;
    }
    const act = await app.inject({ method: 'POST', url: `/api/deployments/${handle.workflowId}/rollback`, headers: { authorization: `Bearer ${API_TOKEN}` }, payload: { action: 'revert' } });
    apiText += act.body;
    const bad = await app.inject({ method: 'POST', url: '/api/deployments', headers: { authorization: `Bearer ${API_TOKEN}` }, payload: { fleet: { token: world.token }, change: {} } });
    apiText += bad.body;
  } finally {
    await app.close();
  }
  // An unknown host (no known_hosts entry) is refused the same way (after the first deployment lets go
  // of the fleet's lock).
  const now = await handle.query(statusQuery);
  if (now.phase === 'awaiting-operator') await handle.executeUpdate(rollbackUpdate, { args: [{ action: 'dismiss', requestedBy: 'olga' }] });
  await waitPhase(handle, ['closed'], 60_000);
  // The fleet's lock goes when the workflow completes (after its GC roots are released and its
  // audit is flushed), a little after its phase says closed.
  await handle.result();
  const pr2 = await world.openLockUpdate('v3');
  const h2 = await startDeployment(t, world, worker.taskQueue, { pr: pr2.number, order: ['s4'], onFailure: { revert: 'off', rollbackHosts: true } });
  const u = await waitPhase(h2, ['awaiting-operator', 'closed'], 120_000);
  rec.run();
  rec.fault();
  rec.check('unknown host s4 refused', u.hosts[0]?.state === 'failed' && /host key|known_hosts|not (in|listed)/i.test(u.hosts[0]?.error ?? ''), u);
  rec.check('s4 never logged into', logins(world, 's4') === 0);

  // Every execution in the namespace (deployments and their child workflows), every event.
  let histories = '';
  let executions = 0;
  for await (const wf of t.client.workflow.list()) {
    // Decoded: the payloads' data is base64 in a raw history, where no secret could ever be found.
    histories += historyText(await t.client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory());
    executions += 1;
  }
  expect(executions).toBeGreaterThanOrEqual(2);
  // The scan reads what the payloads say: the merge commit (a result payload only) is found in it.
  const closed = await handle.query(statusQuery);
  expect(closed.mergeSha).toMatch(/^[0-9a-f]{40}$/);
  expect(histories).toContain(`"mergeSha":"${closed.mergeSha}"`);
  const logs = worker.logs();
  expect(logs.length).toBeGreaterThan(1000);
  for (const [what, secret] of secretsOf()) {
    rec.check(`${what} not in workflow history`, !histories.includes(secret));
    rec.check(`${what} not in worker logs`, !logs.includes(secret));
    rec.check(`${what} not in API responses`, !apiText.includes(secret));
  }
  rec.note(`secrets: scanned ${histories.length} bytes of history, ${logs.length} bytes of worker logs, ${apiText.length} bytes of API responses for ${secretsOf().length} secret strings: none found`);
});

test('API tokens: every presented token, whatever its length, is compared as a 32-byte digest with timingSafeEqual against every entry', () => {
  const store = TokenStore.fromJson({
    tokens: [
      { token: 'operator-token-aaaaaaaaaaaaaaaa', identity: 'a', role: 'operator' },
      { token: 'viewer-token-bbbbbbbbbbbbbbbbbbbbbbbbbbbb', identity: 'b', role: 'viewer' },
      { token: API_TOKEN, identity: 'c', role: 'operator' },
    ],
  });
  // The CommonJS module object that src/api/tokens.ts calls through at run time.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const spy = jest.spyOn(require('node:crypto') as typeof crypto, 'timingSafeEqual');
  try {
    for (const len of [1, 8, 16, 31, 32, 33, 64, 500, 4096]) {
      spy.mockClear();
      const presented = API_TOKEN.slice(0, len).padEnd(len, 'x');
      store.authenticate(`Bearer ${presented}`);
      rec.check(`length ${len}: compared against all 3 entries`, spy.mock.calls.length === 3, spy.mock.calls.length);
      rec.check(`length ${len}: equal 32-byte buffers`, spy.mock.calls.every(([a, b]) => (a as Buffer).length === 32 && (b as Buffer).length === 32));
    }
    spy.mockClear();
    expect(store.authenticate(`Bearer ${API_TOKEN}`)?.identity).toBe('c');
    rec.check('a match still compares every entry (position does not leak)', spy.mock.calls.length === 3);
  } finally {
    spy.mockRestore();
  }
});
