/**
 * start-now's accepted path through the signal (`temporal workflow signal --name start-now`, fire and
 * forget), on Temporal's time-skipping test server with the real activities, the stand-in fleet and the
 * GitHub stand-in: a deployment waiting hours for its window starts at once, touches no host before,
 * and the audit trail names who started it. (The update's accepted path: tests/saga/windows.test.ts;
 * the CLI's and the API's: tests/cli/start-now.test.ts.)
 */
import { buildDeployInput, FleetFile, parseWith } from '../../src/schemas/fleet.schema';
import { statusQuery } from '../../workflows/messages';
import { startNowSignal } from '../../workflows/windows';
import { logins, saveHistory } from '../support/saga';
import { waitFor } from '../support/temporal';
import { timeSkippingHarness } from '../support/time-skipping';

const ts = timeSkippingHarness();

const utcTime = (t: number): string => new Date(t).toISOString().slice(11, 19);

test('when a deployment waits for its window and an operator signals start-now, then it deploys at once (before the window opens) and the audit names the operator', async () => {
  const w = await ts.world({ hosts: [{ name: 'q1', kind: 'nixos' }] });
  const pr = await w.openLockUpdate('v2');
  const now = await ts.env.currentTimeMs();
  const opens = Math.ceil((now + 6 * 3600_000) / 1000) * 1000;
  const windows = [{ days: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'], start: utcTime(opens), end: utcTime(opens + 3600_000), timeZone: 'UTC' }];
  const input = buildDeployInput(parseWith(FleetFile, { ...w.fleetFile(), manualWindow: 0, rollout: { windows } }), { pullRequest: pr.number }, 'alice', { searchAttributes: false });
  await ts.deploy(w, 'start-now-signal', input, async (handle) => {
    const waiting = await waitFor('the window wait', async () => {
      const s = await handle.query(statusQuery);
      return s.phase === 'awaiting-window' ? s : undefined;
    }, 90_000, 200);
    expect(waiting.window).toMatchObject({ for: 'the deployment', waiting: true, opensAt: new Date(opens).toISOString() });
    expect(logins(w, 'q1')).toBe(0);
    // Fire and forget, as `temporal workflow signal --name start-now` sends it.
    await handle.signal(startNowSignal, { requestedBy: 'carol', reason: 'change approved' });
    const s = await handle.result();
    expect(s.outcome).toBe('succeeded');
    expect(s.hosts.map((h) => `${h.name}:${h.state}`)).toEqual(['q1:switched']);
    expect(s.window).toMatchObject({ waiting: false, ended: 'started now by carol' });
    // It did not wait for the window: every step, by the workflow's own clock, came before the opening
    // (the test server's clock after the close tells nothing: it skips on while nothing runs).
    expect(s.audit.length).toBeGreaterThan(2);
    for (const a of s.audit) expect(Date.parse(a.at)).toBeLessThan(opens);
    expect(s.audit.filter((a) => a.action === 'start-now').map((a) => `${a.actor}: ${a.outcome}`)).toEqual([
      expect.stringMatching(/^carol: started the deployment outside its maintenance window \(next opens .+\): change approved$/),
    ]);
    await saveHistory(handle, 'd-around-start-now-signal');
  });
}, 300_000);
