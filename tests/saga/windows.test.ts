/**
 * Maintenance windows on the time-skipping test server (Temporal's, from Maven: testkit/time-skipping.ts)
 * with the real activities, the stand-in fleet and the GitHub stand-in: a deployment started outside
 * its window waits (durably: a timer) and starts when the window opens; a wave that would start after
 * the window closed waits for the next one; an operator's start-now overrides the wait (audited), and
 * is refused with the reason when nothing waits.
 */
import { WorkflowUpdateFailedError } from '@temporalio/client';
import type { DeploymentStatus, Phase } from '../../src/domain/deployment';
import { buildDeployInput, FleetFile, parseWith } from '../../src/schemas/fleet.schema';
import type { World } from '../../testkit/world';
import { statusQuery } from '../../workflows/messages';
import { startNowSignal, startNowUpdate } from '../../workflows/windows';
import { logins, saveHistory } from '../support/saga';
import { waitFor } from '../support/temporal';
import { timeSkippingHarness, type DeployHandle as Handle } from '../support/time-skipping';

const ts = timeSkippingHarness();

const ALL_DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
/** `HH:MM:SS` in UTC of the instant `t`. */
const utcTime = (t: number): string => new Date(t).toISOString().slice(11, 19);

async function withDeployment(title: string, rollout: Record<string, unknown>, fn: (handle: Handle, w: World) => Promise<void>): Promise<void> {
  const w = await ts.world({ hosts: [{ name: 'w1', kind: 'nixos' }, { name: 'w2', kind: 'nixos' }] });
  const pr = await w.openLockUpdate('v2');
  const fleet = parseWith(FleetFile, { ...w.fleetFile(), manualWindow: 0, rollout });
  const input = buildDeployInput(fleet, { pullRequest: pr.number }, 'alice', { searchAttributes: false });
  await ts.deploy(w, title, input, (handle) => fn(handle, w));
}

const phaseOf = async (handle: Handle, phases: Phase[]): Promise<DeploymentStatus> =>
  waitFor(`phase ${phases.join('/')}`, async () => {
    const s = await handle.query(statusQuery);
    return phases.includes(s.phase) ? s : undefined;
  }, 90_000, 200);

test('when a deployment starts outside its window, then it waits (visibly, touching nothing) until the window opens, then deploys', async () => {
  const now = await ts.env.currentTimeMs();
  const opens = Math.ceil((now + 3 * 3600_000) / 1000) * 1000;
  const windows = [{ days: ALL_DAYS, start: utcTime(opens), end: utcTime(opens + 2 * 3600_000), timeZone: 'UTC' }];
  await withDeployment('window-initial', { windows }, async (handle, w) => {
    const waiting = await phaseOf(handle, ['awaiting-window']);
    expect(waiting.window).toMatchObject({ for: 'the deployment', waiting: true, opensAt: new Date(opens).toISOString() });
    expect(waiting.mergeSha).toBeUndefined();
    expect(logins(w, 'w1') + logins(w, 'w2')).toBe(0);
    // Temporal Web's current details say it too.
    const meta = (await handle.query('__temporal_workflow_metadata')) as { currentDetails?: string };
    expect(meta.currentDetails).toContain('awaiting-window');
    expect(meta.currentDetails).toContain(`the deployment waits for its maintenance window: opens ${new Date(opens).toISOString()}`);
    // Awaiting the result lets the test server skip time to the window's opening.
    const s = await handle.result();
    expect(s.outcome).toBe('succeeded');
    expect(s.hosts.map((h) => `${h.name}:${h.state}`)).toEqual(['w1:switched', 'w2:switched']);
    expect(s.window).toMatchObject({ waiting: false, ended: 'window opened' });
    // By the workflow's clock (the test server's clock jumps ahead once a workflow completes): the
    // merge, and every entry after it, came once the window had opened.
    const merged = s.audit.find((a) => a.action === 'merge');
    expect(merged).toBeDefined();
    expect(Date.parse(merged?.at ?? '')).toBeGreaterThanOrEqual(opens);
    expect(s.audit.filter((a) => a.action === 'start-now')).toEqual([]);
    await saveHistory(handle, 'f-windows-initial-wait');
  });
}, 300_000);

test('when a wave would start after the window closed, then it waits for the next; start-now starts it (audited), and is refused when nothing waits', async () => {
  const now = await ts.env.currentTimeMs();
  const windows = [{ days: ALL_DAYS, start: utcTime(now - 60_000), end: utcTime(now + 30 * 60_000), timeZone: 'UTC' }];
  const waves = [
    { name: 'canary', hosts: ['w1'], bake: '1h' },
    { name: 'rest', hosts: ['w2'] },
  ];
  await withDeployment('window-wave', { windows, waves }, async (handle, w) => {
    await phaseOf(handle, ['baking']);
    // Nothing waits for a window: the update is refused with the reason, the signal is audited as rejected.
    const refused = await handle.executeUpdate(startNowUpdate, { args: [{ requestedBy: 'bob' }] }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(WorkflowUpdateFailedError);
    expect(String((refused as WorkflowUpdateFailedError).cause?.message)).toMatch(/not waiting for a maintenance window \(phase: baking\)/);
    await handle.signal(startNowSignal, { requestedBy: 'carol' });
    // The bake outlasts the window: the next wave waits for tomorrow's.
    await ts.env.sleep(3600_000);
    const waiting = await phaseOf(handle, ['awaiting-window']);
    expect(waiting.window).toMatchObject({ for: 'wave rest', waiting: true });
    expect(Date.parse(waiting.window?.opensAt as string)).toBeGreaterThan(now + 20 * 3600_000);
    expect(waiting.hosts.map((h) => `${h.name}:${h.state}`)).toEqual(['w1:switched', 'w2:pending']);
    expect(logins(w, 'w2')).toBe(0);
    const started = await handle.executeUpdate(startNowUpdate, { args: [{ requestedBy: 'bob', reason: 'security fix' }] });
    expect(started.accepted).toBe(true);
    expect(started.summary).toBe('started now by bob');
    const s = await handle.result();
    expect(s.outcome).toBe('succeeded');
    expect(s.hosts.map((h) => `${h.name}:${h.state}`)).toEqual(['w1:switched', 'w2:switched']);
    const entries = s.audit.filter((a) => a.action === 'start-now');
    expect(entries.map((a) => `${a.actor}: ${a.outcome}`)).toEqual([
      'carol: rejected: not waiting for a maintenance window (phase: baking)',
      expect.stringMatching(/^bob: started wave rest outside its maintenance window \(next opens .+\): security fix$/),
    ]);
    await saveHistory(handle, 'f-windows-wave-start-now');
  });
}, 300_000);
