/**
 * Offline hosts with build-first (issue 15, item 3): the reachability probe comes before the build,
 * so under rollout.offline an unreachable host is skipped or waited for in the build phase instead of
 * failing its build. Real stack: the Temporal dev server, stand-in sshd + Nix hosts behind the
 * forced-command allowlist, the GitHub stand-in. (The same modes without build-first:
 * tests/faults/reboot-offline.test.ts.) And whether a host needs a reboot is read and shown also
 * without rollout.reboot.
 */
import type { DeploymentStatus } from '../../src/domain/deployment';
import type { World } from '../../testkit/world';
import { startAllowlistedWorld, startInProcessWorker, type RunningWorker } from './harness';
import { saveHistory, startDeployment, waitPhase } from '../support/saga';
import { startTestTemporal, type TestTemporal } from '../support/temporal';

jest.setTimeout(600_000);
let t: TestTemporal;
let w: World;
let wk: RunningWorker;
beforeAll(async () => {
  t = await startTestTemporal();
  w = await startAllowlistedWorld({ hosts: ['b1', 'b2'].map((name) => ({ name, kind: 'nixos' as const })) });
  wk = await startInProcessWorker(t, w, 'build-first offline');
});
afterEach(async () => {
  const b1 = w.fleet.host('b1');
  if (!b1.running) await b1.restart();
});
afterAll(async () => {
  await wk?.stop().catch(() => undefined);
  await w?.stop();
  await t?.stop();
});

const host = (s: DeploymentStatus, name: string) => s.hosts.find((h) => h.name === name);
const NO_REVERT = { revert: 'off' as const, rollbackHosts: true };

test('build-first with rollout.offline: skip skips an unreachable host before its build and deploys the rest', async () => {
  const b1 = w.fleet.host('b1');
  await b1.kill();
  const pr = await w.openLockUpdate('v2');
  const handle = await startDeployment(t, w, wk.taskQueue, { pr: pr.number, onFailure: NO_REVERT, order: ['b1', 'b2'], rollout: { buildFirst: true, offline: 'skip' } });
  const s = await waitPhase(handle, ['awaiting-operator', 'closed', 'succeeded'], 300_000);
  expect(host(s, 'b1')).toMatchObject({ state: 'not-attempted', offline: expect.stringMatching(/rollout\.offline: skip/) });
  expect(host(s, 'b1')?.error).toBeUndefined();
  expect(host(s, 'b2')?.state).toBe('switched');
  expect(s.outcome).toBe('succeeded');
  // No kernel change: read, and no reboot needed (shown without rollout.reboot too).
  expect(host(s, 'b2')?.reboot).toEqual({ needed: false });
  expect(b1.commandLog().filter((e) => e.tool === 'nix')).toEqual([]);
  await handle.result();
});

test('build-first with rollout.offline: wait builds a host once it comes back, then deploys it', async () => {
  const b1 = w.fleet.host('b1');
  await b1.kill();
  const gen0 = b1.profileGeneration();
  const pr = await w.openLockUpdate('v3');
  const handle = await startDeployment(t, w, wk.taskQueue, { pr: pr.number, onFailure: NO_REVERT, order: ['b1', 'b2'], rollout: { buildFirst: true, offline: 'wait 5m' } });
  // Waited for in the build phase: pending (not failed, not skipped) while it sleeps.
  const waiting = await waitPhase(handle, ['building', 'deploying', 'awaiting-operator', 'closed', 'succeeded'], 300_000);
  expect(waiting.phase).toBe('building');
  expect(host(waiting, 'b1')?.state).toBe('pending');
  await b1.restart();
  const s = await waitPhase(handle, ['succeeded', 'awaiting-operator', 'closed'], 300_000);
  expect(s.failure).toBeUndefined();
  expect(s.outcome).toBe('succeeded');
  expect(host(s, 'b1')?.state).toBe('switched');
  expect(b1.profileGeneration().number).toBeGreaterThan(gen0.number);
  // It switched to what the build phase built for it.
  expect(host(s, 'b1')?.after?.storePath).toBe(host(s, 'b1')?.target);
  await handle.result();
  await saveHistory(t.client.workflow.getHandle(`${handle.workflowId}-build`), 'c-ops-build-offline-wait-build');
  await saveHistory(handle, 'c-ops-build-offline-wait');
});

test('without rollout.reboot, whether each host needs a reboot is still read and shown: a kernel update needs one, the host is not rebooted', async () => {
  const pr = await w.openLockUpdate('v5', { kernel: '6.9.9' });
  const b2 = w.fleet.host('b2');
  const bootId = b2.bootId();
  const handle = await startDeployment(t, w, wk.taskQueue, { pr: pr.number, onFailure: NO_REVERT, order: ['b1', 'b2'] });
  const s = await waitPhase(handle, ['awaiting-operator', 'closed', 'succeeded'], 300_000);
  expect(s.outcome).toBe('succeeded');
  for (const n of ['b1', 'b2']) expect(host(s, n)?.reboot).toEqual({ needed: true, differs: ['kernel', 'initrd', 'kernelModules'] });
  expect(b2.reboots).toBe(0);
  expect(b2.bootId()).toBe(bootId);
  await handle.result();
  await saveHistory(t.client.workflow.getHandle(`${handle.workflowId}-wave-1`), 'c-ops-reboot-detect-wave');
});
