/**
 * The worker process (workers/main.ts, as deployed) is SIGKILLed while a host's switch is in flight,
 * then a new worker process takes over. No host is switched twice, and the compensation that follows
 * the later failure still brings every host back.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startWorld, type World } from '../../testkit/world';
import { profileMoves, saveHistory, startDeployment, waitPhase } from '../support/saga';
import { startWorkerProcess } from '../support/worker-process';
import { startTestTemporal, taskQueueFor, waitFor, type TestTemporal } from '../support/temporal';

let t: TestTemporal;
let world: World | undefined;
let dir: string;
const workers = new Set<ChildProcess>();
beforeAll(async () => {
  t = await startTestTemporal();
  dir = mkdtempSync(join(tmpdir(), 'nixfleet-crash-'));
});
afterAll(async () => {
  for (const w of workers) w.kill('SIGKILL');
  await world?.stop();
  await t?.stop();
  rmSync(dir, { recursive: true, force: true });
});


test('when the worker is SIGKILLed in the middle of a switch and restarted, then no host is switched twice and compensation completes', async () => {
  const w = (world = await startWorld({ hosts: ['k1', 'k2', 'k3'].map((name) => ({ name, kind: 'nixos' as const })) }));
  const before = Object.fromEntries(w.fleet.hosts.map((h) => [h.name, h.profileGeneration()]));
  const pr = await w.openLockUpdate('v2');
  w.fleet.host('k3').failActivation('units', { onlyVersion: 'v2' });
  w.fleet.host('k2').hangActivation(true);
  const taskQueue = taskQueueFor('worker-crash');

  const first = await startWorkerProcess({ t, world: w, taskQueue, dir, tag: 'worker', track: workers, startTimeoutMs: 60_000 });
  const handle = await startDeployment(t, w, taskQueue, { pr: pr.number });
  await waitFor('k2 to be in the middle of its activation', () => (w.fleet.host('k2').commandLog().some((e) => e.tool === 'hang') ? true : undefined), 60_000);
  first.child.kill('SIGKILL');
  await waitFor('the first worker to die', () => (first.child.exitCode !== null || first.child.signalCode !== null ? true : undefined));
  // The activation the dead worker started finishes on the host on its own.
  w.fleet.host('k2').hangActivation(false);

  await startWorkerProcess({ t, world: w, taskQueue, dir, tag: 'worker', track: workers, startTimeoutMs: 60_000 });
  const s = await waitPhase(handle, ['awaiting-operator'], 120_000);
  expect(s.hosts.map((h) => `${h.name}:${h.state}`)).toEqual(['k1:rolled-back', 'k2:rolled-back', 'k3:rolled-back']);
  for (const h of ['k1', 'k2', 'k3']) {
    // Exactly one new generation per host (the retried switch found k2 already on its target) ...
    expect(profileMoves(w, h).set).toBe(1);
    expect(w.fleet.host(h).generations().map((g) => g.number)).toEqual([40, 41, 42, 43]);
    // ... and every host back on its recorded generation.
    expect(w.fleet.host(h).profileGeneration()).toEqual(before[h]);
    expect(w.fleet.host(h).currentSystem()).toBe(before[h]!.storePath);
  }
  // The hosts' steps run in the wave's child workflow: its history shows the retried switch.
  const wave = t.client.workflow.getHandle(`${handle.workflowId}-wave-1`);
  const history = await wave.fetchHistory();
  const retried = (history.events ?? []).filter((e) => e.activityTaskStartedEventAttributes && (e.activityTaskStartedEventAttributes.attempt ?? 1) > 1);
  expect(retried.length).toBeGreaterThanOrEqual(1);
  await saveHistory(handle, 'worker-crash');
  await saveHistory(wave, 'worker-crash-wave');
});
