/**
 * start-now through the operator surfaces on the real stack (dev server, stand-in world, API, the
 * nixfleet binary): a deployment waiting for its maintenance window is started by an operator (a viewer
 * may not), the audit log names who, and a start-now when nothing waits is refused with the reason.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { DeploymentStatus } from '../../src/domain/deployment';
import { OPERATOR, startStack, VIEWER, type Stack } from '../api/stack';
import { waitFor } from '../support/temporal';

let s: Stack;
beforeAll(async () => {
  s = await startStack('start-now', [{ name: 's1', kind: 'nixos' }]);
}, 300_000);
afterAll(async () => {
  await s?.stop();
});

const BIN = join(__dirname, '..', '..', 'bin', 'nixfleet');
async function nixfleet(args: string[], token = OPERATOR): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, NIXFLEET_API_URL: s.base, NIXFLEET_TOKEN: token }, stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.end();
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { code, out, err };
}

const utcTime = (t: number): string => new Date(t).toISOString().slice(11, 19);

test('when a deployment waits for its window, then an operator starts it now from the CLI (audited), a viewer may not, and a second start-now is refused with the reason', async () => {
  const pr = await s.world.openLockUpdate('v2');
  const opens = Date.now() + 6 * 3600_000;
  const fleet = { ...s.world.fleetFile({ revert: 'commit', rollbackHosts: true }), rollout: { windows: [{ days: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'], start: utcTime(opens), end: utcTime(opens + 3600_000), timeZone: 'UTC' }] } };
  const started = await s.call<{ deploymentId: string }>('POST', '/api/deployments', { fleet, change: { pullRequest: pr.number } });
  expect(started.status).toBe(201);
  const id = started.body.deploymentId;
  const waiting = await s.waitPhase(id, ['awaiting-window']);
  expect(waiting.window).toMatchObject({ for: 'the deployment', waiting: true, windows: expect.stringContaining('UTC') });

  expect((await s.call('POST', `/api/deployments/${id}/start-now`, {}, VIEWER)).status).toBe(403);
  expect((await s.call<{ message: string }>('POST', `/api/deployments/${id}/start-now`, { scope: 'always' })).status).toBe(400);

  const run = await nixfleet(['start-now', id, '--reason', 'the window moved']);
  expect(run.err).toBe('');
  expect(run.code).toBe(0);
  expect(run.out).toContain('started now by olga');

  // A bound for a loaded machine, not a timing assertion.
  const done = await waitFor(`${id} to succeed`, async () => {
    const r = await s.call<DeploymentStatus>('GET', `/api/deployments/${id}`, undefined, VIEWER);
    return r.status === 200 && ['succeeded', 'closed'].includes(r.body.phase) ? r.body : undefined;
  }, 480_000, 500);
  expect(done.hosts.map((h) => h.state)).toEqual(['switched']);
  const again = await nixfleet(['start-now', id]);
  expect(again.code).not.toBe(0);
  expect(again.err).toMatch(/not waiting for a maintenance window \(phase: (succeeded|closed)\)|is closed/);

  const audit = await s.call<{ audit: DeploymentStatus['audit'] }>('GET', `/api/deployments/${id}/audit`);
  expect(audit.body.audit.filter((a) => a.action === 'start-now').map((a) => `${a.actor}: ${a.outcome}`)).toEqual([
    expect.stringMatching(/^olga: started the deployment outside its maintenance window \(next opens .+\): the window moved$/),
  ]);
}, 600_000);
