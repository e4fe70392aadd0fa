/**
 * Durable reboots and offline hosts (issue 15, items 2 and 3) on the real stack: the Temporal dev
 * server, stand-in sshd + Nix hosts behind the forced-command allowlist, the GitHub stand-in. A
 * kernel update with rollout.reboot: when-needed boots the new generation by a reboot, also when the
 * worker process is SIGKILLed while the host is down; a host that boots the wrong generation is set
 * back to the recorded one by a second reboot; one that never comes back is reported within the
 * deadline. rollout.offline: fail, skip, wait (the host comes back: deployed; it does not: reported).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DeploymentStatus } from '../../src/domain/deployment';
import type { World } from '../../testkit/world';
import { startAllowlistedWorld, startInProcessWorker, type RunningWorker } from './harness';
import { saveHistory, startDeployment, waitPhase } from '../support/saga';
import { startWorkerProcess } from '../support/worker-process';
import { startTestTemporal, taskQueueFor, waitFor, type TestTemporal } from '../support/temporal';
import { statusQuery } from '../../workflows/messages';

jest.setTimeout(600_000);
let t: TestTemporal;
let dir: string;
const worlds: World[] = [];
const workers: RunningWorker[] = [];
const procs = new Set<ChildProcess>();
beforeAll(async () => {
  t = await startTestTemporal();
  dir = mkdtempSync(join(tmpdir(), 'nixfleet-reboot-'));
});
afterAll(async () => {
  for (const p of procs) p.kill('SIGKILL');
  for (const w of workers) await w.stop().catch(() => undefined);
  await Promise.allSettled(worlds.map((w) => w.stop()));
  await t?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function world(names: string[]): Promise<World> {
  const w = await startAllowlistedWorld({ hosts: names.map((name) => ({ name, kind: 'nixos' as const })) });
  worlds.push(w);
  return w;
}
async function worker(w: World, title: string): Promise<string> {
  const wk = await startInProcessWorker(t, w, title);
  workers.push(wk);
  return wk.taskQueue;
}
const host = (s: DeploymentStatus, name: string) => s.hosts.find((h) => h.name === name);
const NO_REVERT = { revert: 'off' as const, rollbackHosts: true };


test('a kernel update with reboot: when-needed boots the new generation by a reboot; the worker process SIGKILLed while the host is down, another finishes the deployment', async () => {
  const w = await world(['k1']);
  const k1 = w.fleet.host('k1');
  k1.rebootDownMs = 6_000;
  const taskQueue = taskQueueFor('reboot healthy worker killed');
  const first = (await startWorkerProcess({ t, world: w, taskQueue, dir, tag: 'k1a', env: { NIXFLEET_AUDIT_DB: join(dir, 'k1a.audit.db') }, track: procs, startTimeoutMs: 300_000 })).child;
  const pr = await w.openLockUpdate('v2', { kernel: '6.9.1' });
  const bootIdBefore = k1.bootId();
  const handle = await startDeployment(t, w, taskQueue, { pr: pr.number, onFailure: NO_REVERT, rollout: { reboot: 'when-needed', rebootTimeout: '5m', healthChecks: ['systemd'] } });
  // The host went down for its reboot: the worker dies during the durable wait.
  await waitFor('k1 to go down for its reboot', () => (k1.reboots === 1 && !k1.running ? true : undefined), 300_000, 25);
  first.kill('SIGKILL');
  await waitFor('the first worker to die', () => (first.exitCode !== null || first.signalCode !== null ? true : undefined));
  await startWorkerProcess({ t, world: w, taskQueue, dir, tag: 'k1b', env: { NIXFLEET_AUDIT_DB: join(dir, 'k1b.audit.db') }, track: procs, startTimeoutMs: 300_000 });
  const s = await waitPhase(handle, ['succeeded', 'awaiting-operator', 'closed'], 300_000);
  expect(s.outcome).toBe('succeeded');
  const h = host(s, 'k1');
  expect(h?.state).toBe('switched');
  expect(h?.reboot).toEqual({ needed: true, differs: ['kernel', 'initrd', 'kernelModules'], rebooted: true });
  expect(k1.reboots).toBe(1);
  expect(k1.bootId()).not.toBe(bootIdBefore);
  const gen = k1.profileGeneration();
  expect(h?.after?.number).toBe(gen.number);
  expect(k1.bootedSystem()).toBe(gen.storePath);
  expect(k1.currentSystem()).toBe(gen.storePath);
  expect(k1.bootDefault()).toEqual(gen);
  // Booted, never switched live: the only activation of the new generation is `boot`.
  expect(k1.commandLog().filter((e) => e.tool === 'switch-to-configuration' && e.args[1] === gen.storePath).map((e) => e.args[0])).toEqual(['boot']);
});

test('a host that boots the wrong generation is set back to the recorded one by a second reboot and reported', async () => {
  const w = await world(['k2']);
  const k2 = w.fleet.host('k2');
  const taskQueue = await worker(w, 'reboot wrong generation');
  const recorded = k2.profileGeneration();
  k2.failNextBoot('wrong-generation');
  const pr = await w.openLockUpdate('v2', { kernel: '6.9.2' });
  const handle = await startDeployment(t, w, taskQueue, { pr: pr.number, onFailure: NO_REVERT, rollout: { reboot: 'always', rebootTimeout: '2m' } });
  const s = await waitPhase(handle, ['awaiting-operator', 'closed', 'succeeded'], 300_000);
  const h = host(s, 'k2');
  expect(s.outcome).not.toBe('succeeded');
  expect(h?.error).toMatch(/booted .* not generation \d+/);
  expect(h?.error).toMatch(new RegExp(`set back to generation ${recorded.number} as the boot default and rebooted onto it`));
  expect(k2.reboots).toBe(2);
  expect(k2.bootedSystem()).toBe(recorded.storePath);
  expect(k2.currentSystem()).toBe(recorded.storePath);
  expect(k2.bootDefault()?.storePath).toBe(recorded.storePath);
  expect(k2.profileGeneration().storePath).toBe(recorded.storePath);
  await saveHistory(t.client.workflow.getHandle(`${handle.workflowId}-wave-1`), 'e-reboot-wrong-generation-wave');
});

test('a host that never comes back from its reboot is reported at the deadline (not waited for forever)', async () => {
  const w = await world(['k3']);
  const k3 = w.fleet.host('k3');
  const taskQueue = await worker(w, 'reboot never comes back');
  k3.failNextBoot('never-comes-back');
  const pr = await w.openLockUpdate('v2', { kernel: '6.9.3' });
  const handle = await startDeployment(t, w, taskQueue, { pr: pr.number, onFailure: { revert: 'off', rollbackHosts: false }, rollout: { reboot: 'when-needed', rebootTimeout: '8s' } });
  const failed = await waitFor('k3 to be reported', async () => {
    const st = await handle.query(statusQuery);
    return host(st, 'k3')?.state === 'failed' ? st : undefined;
  }, 300_000, 200);
  const h = host(failed, 'k3');
  expect(h?.error).toMatch(/did not come back within 8s of its reboot/);
  expect(h?.uncertain).toMatch(/did not come back/);
  expect(k3.running).toBe(false);
  expect(k3.reboots).toBe(1);
  await k3.restart();
  await waitPhase(handle, ['awaiting-operator', 'closed'], 300_000);
});

test('rollout.offline: fail fails an unreachable host before its build; skip reports it skipped and deploys the rest', async () => {
  const w = await world(['o1', 'o2']);
  const o1 = w.fleet.host('o1');
  const taskQueue = await worker(w, 'offline fail skip');
  await o1.kill();
  const pr1 = await w.openLockUpdate('v2');
  const h1 = await startDeployment(t, w, taskQueue, { pr: pr1.number, onFailure: NO_REVERT, order: ['o1', 'o2'], rollout: { offline: 'fail' } });
  const s1 = await waitPhase(h1, ['awaiting-operator', 'closed', 'succeeded'], 300_000);
  expect(host(s1, 'o1')?.state).toBe('failed');
  expect(host(s1, 'o1')?.error).toMatch(/unreachable before its build \(rollout\.offline: fail\)/);
  expect(host(s1, 'o2')?.state).toBe('not-attempted');
  await h1.terminate('next case');

  const pr2 = await w.openLockUpdate('v3');
  const h2 = await startDeployment(t, w, taskQueue, { pr: pr2.number, onFailure: NO_REVERT, order: ['o1', 'o2'], rollout: { offline: 'skip' } });
  const s2 = await waitPhase(h2, ['awaiting-operator', 'closed', 'succeeded'], 300_000);
  expect(host(s2, 'o1')).toMatchObject({ state: 'not-attempted', offline: expect.stringMatching(/rollout\.offline: skip/) });
  expect(host(s2, 'o2')?.state).toBe('switched');
  expect(o1.commandLog().filter((e) => e.tool === 'nix')).toEqual([]);
});

test('rollout.offline: wait deploys a host that comes back within the wait, and reports one that does not', async () => {
  const w = await world(['l1', 'l2']);
  const l1 = w.fleet.host('l1');
  const l2 = w.fleet.host('l2');
  const taskQueue = await worker(w, 'offline wait');
  await l1.kill();
  const pr = await w.openLockUpdate('v2');
  const handle = await startDeployment(t, w, taskQueue, { pr: pr.number, onFailure: NO_REVERT, order: ['l1'], rollout: { offline: 'wait 5m' } });
  // Waited for: still pending (not failed, not skipped) while it sleeps; then it wakes up.
  const waiting = await waitPhase(handle, ['deploying'], 300_000);
  expect(host(waiting, 'l1')?.state).toBe('pending');
  const gen0 = l1.profileGeneration();
  await l1.restart();
  const s = await waitPhase(handle, ['succeeded', 'awaiting-operator', 'closed'], 300_000);
  expect(s.outcome).toBe('succeeded');
  expect(host(s, 'l1')?.state).toBe('switched');
  expect(l1.profileGeneration().number).toBeGreaterThan(gen0.number);
  await handle.result();
  await saveHistory(t.client.workflow.getHandle(`${handle.workflowId}-wave-1`), 'e-reboot-offline-wait-wave');

  await l2.kill();
  const pr2 = await w.openLockUpdate('v3');
  const h2 = await startDeployment(t, w, taskQueue, { pr: pr2.number, onFailure: NO_REVERT, order: ['l2'], rollout: { offline: 'wait 4s' } });
  const s2 = await waitPhase(h2, ['awaiting-operator', 'closed', 'succeeded'], 300_000);
  expect(host(s2, 'l2')?.state).toBe('failed');
  expect(host(s2, 'l2')?.error).toMatch(/still unreachable after waiting 4s/);
});
