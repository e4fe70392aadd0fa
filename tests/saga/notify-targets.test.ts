/**
 * Notification targets by name, and the reminder before the manual window closes, on Temporal's
 * time-skipping test server (testkit/time-skipping.ts) with the real activities, the stand-in fleet
 * and the GitHub stand-in, and a local receiver that checks every delivery's HMAC-SHA256 signature:
 * - the fleet file names targets (`oncall` from the worker's targets file with a secretFile, `pager`
 *   from the worker's environment); the worker resolves them, and the deployment's history holds
 *   neither a URL nor a secret;
 * - a failed deployment waiting for an operator through a 24 h manual window is reminded 1 h before
 *   it closes (the server skips the day), and not reminded when an operator acts before.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DeploymentStatus, Phase } from '../../src/domain/deployment';
import type { NotifyBody } from '../../src/domain/notify';
import { buildDeployInput, FleetFile, parseWith } from '../../src/schemas/fleet.schema';
import { rollbackUpdate, statusQuery } from '../../workflows/messages';
import { saveHistory } from '../support/saga';
import { waitFor } from '../support/temporal';
import { historyText } from '../support/history-text';
import { timeSkippingHarness, type DeployHandle as Handle } from '../support/time-skipping';
import { signedReceiver, type SignedDelivery as Delivery } from '../support/webhook-receiver';

const ONCALL_SECRET = 'oncall-secret-from-a-file-5f1c';
const PAGER_SECRET = 'pager-secret-from-the-env-9a2e';
const receiver = () => signedReceiver({ '/hooks/T000/B000/oncall-token': ONCALL_SECRET, '/pager/pager-token': PAGER_SECRET });

const ts = timeSkippingHarness();
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nixfleet-notify-targets-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const phaseOf = async (handle: Handle, phases: Phase[]): Promise<DeploymentStatus> =>
  waitFor(`phase ${phases.join('/')}`, async () => {
    const s = await handle.query(statusQuery);
    return phases.includes(s.phase) ? s : undefined;
  }, 120_000, 200);
const seq = (d: Delivery): number => Number(d.body.id.split('/').pop());

async function failedDeployment(title: string, hook: { base: string }, fn: (handle: Handle) => Promise<void>): Promise<void> {
  const w = await ts.world({ hosts: [{ name: 'r1', kind: 'nixos' }, { name: 'r2', kind: 'nixos' }] });
  const pr = await w.openLockUpdate('v2');
  w.fleet.host('r2').failActivation('script', { onlyVersion: 'v2' });
  // The worker's own configuration: a targets file (the secret in a file of its own) and the environment.
  const secretFile = join(dir, `${title}-oncall.secret`);
  writeFileSync(secretFile, `${ONCALL_SECRET}\n`, { mode: 0o600 });
  const targetsFile = join(dir, `${title}-targets.json`);
  writeFileSync(targetsFile, JSON.stringify({ oncall: { url: `${hook.base}/hooks/T000/B000/oncall-token`, secretFile } }), { mode: 0o600 });
  const notifyEnv = { NIXFLEET_NOTIFY_TARGETS_FILE: targetsFile, NIXFLEET_NOTIFY_PAGER_URL: `${hook.base}/pager/pager-token`, NIXFLEET_NOTIFY_PAGER_SECRET: PAGER_SECRET };
  const fleet = parseWith(FleetFile, {
    ...w.fleetFile({ revert: 'commit', rollbackHosts: true }),
    manualWindow: '24h',
    notify: [
      { target: 'oncall', remindBefore: '1h' },
      { target: 'pager', events: ['failed'] },
    ],
  });
  const input = buildDeployInput(fleet, { pullRequest: pr.number }, 'alice', { searchAttributes: false });
  expect(JSON.stringify(input)).not.toContain(hook.base);
  await ts.deploy(w, title, input, fn, { notifyEnv });
}

test('when a failed deployment waits through its 24 h manual window, then the named targets are told, the on-call is reminded 1 h before it closes, and no URL or secret is in the history', async () => {
  const hook = await receiver();
  try {
    await failedDeployment('notify-targets-reminder', hook, async (handle) => {
      // Awaiting the result lets the test server skip the manual window's day.
      const s = await handle.result();
      expect(s.outcome).toBe('failed-rolled-back');
      expect(hook.refused).toBe(0);
      const oncall = hook.deliveries.filter((d) => d.path.startsWith('/hooks/')).sort((a, b) => seq(a) - seq(b));
      const pager = hook.deliveries.filter((d) => d.path.startsWith('/pager/'));
      expect(oncall.map((d) => d.event)).toEqual(['failed', 'rolled-back', 'awaiting-operator', 'reminder']);
      expect(pager.map((d) => d.event)).toEqual(['failed']);
      const waiting = oncall[2]?.body as NotifyBody;
      const reminder = oncall[3]?.body as NotifyBody;
      // The deadline is the manual window's end, 24 h after the wait began; the reminder goes out 1 h before it, by the workflow's clock.
      expect(Date.parse(waiting.deadline as string) - Date.parse(waiting.at)).toBe(24 * 3600_000);
      expect(reminder.deadline).toBe(waiting.deadline);
      expect(Date.parse(reminder.at)).toBeGreaterThanOrEqual(Date.parse(waiting.deadline as string) - 3600_000);
      expect(Date.parse(reminder.at)).toBeLessThan(Date.parse(waiting.deadline as string) - 3600_000 + 60_000);
      expect(reminder.text).toMatch(/still waiting for an operator: the manual window closes soon/);
      expect(reminder.text).toContain(`Manual window closes: ${waiting.deadline}`);
      // The status and the audit trail name the targets, never their URLs.
      expect(s.notifications?.map((n) => `${n.event}:${n.target}:${n.delivered}`).sort()).toEqual(
        ['awaiting-operator:target oncall:true', 'failed:target oncall:true', 'failed:target pager:true', 'reminder:target oncall:true', 'rolled-back:target oncall:true'],
      );
      // Neither URL nor secret reached Temporal: not in the input, the activities' inputs, nor anywhere in the history.
      const history = historyText(await handle.fetchHistory());
      for (const secret of [hook.base, '127.0.0.1:' + new URL(hook.base).port, 'oncall-token', 'pager-token', ONCALL_SECRET, PAGER_SECRET]) expect(history).not.toContain(secret);
      // The check reads the decoded payloads: the target's name is there (the decoding works), its URL is not.
      expect(history).toContain('"notify":[{"target":"oncall"');
      expect(history).toContain('"target":{"name":"oncall"}');
      await saveHistory(handle, 'd-around-notify-targets');
    });
  } finally {
    await hook.close();
  }
}, 300_000);

test('when an operator acts within the manual window, then no reminder goes out', async () => {
  const hook = await receiver();
  try {
    await failedDeployment('notify-targets-no-reminder', hook, async (handle) => {
      await phaseOf(handle, ['awaiting-operator']);
      // Time skips only while the test awaits a result: the window is still at its start.
      const out = await handle.executeUpdate(rollbackUpdate, { args: [{ action: 'dismiss', requestedBy: 'olga', reason: 'seen' }] });
      expect(out).toBeDefined();
      const s = await handle.result();
      expect(s.phase).toBe('closed');
      await waitFor('the awaiting-operator notification', async () => (hook.deliveries.some((d) => d.event === 'awaiting-operator') ? true : undefined), 60_000, 100);
      expect(hook.deliveries.map((d) => d.event)).not.toContain('reminder');
      expect(s.notifications?.map((n) => n.event)).not.toContain('reminder');
    });
  } finally {
    await hook.close();
  }
}, 300_000);
