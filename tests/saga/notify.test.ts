/**
 * Telling the on-call, on the real stack (dev server, stand-in fleet, GitHub stand-in) with a local
 * HTTP receiver that checks every delivery's HMAC-SHA256 signature as a real one would: a failed
 * deployment sends failed, rolled-back, awaiting-operator and the reminder before the manual window
 * closes; a receiver that is down, or that refuses the signature, never holds or fails the deployment,
 * and what was not delivered is in the status and the audit trail.
 */
import { freePort } from '../../testkit/dev-server';
import { sagaHarness, startDeployment } from '../support/saga';
import { signedReceiver, type SignedDelivery as Delivery } from '../support/webhook-receiver';

const stack = sagaHarness();
const SECRET = 'hook-secret-for-the-test';
const ENV = { NIXFLEET_TEST_HOOK_SECRET: SECRET, NIXFLEET_TEST_WRONG_SECRET: 'not-the-receivers' };
const HOOK_PATH = '/hooks/T000/B000/some-token';

/** A receiver that takes a delivery only when its signature verifies under SECRET (401 otherwise). */
async function receiver(): Promise<{ url: string; deliveries: Delivery[]; readonly refused: number; close(): Promise<void> }> {
  const r = await signedReceiver({ [HOOK_PATH]: SECRET });
  return {
    url: `${r.base}${HOOK_PATH}`,
    deliveries: r.deliveries,
    get refused() {
      return r.refused;
    },
    close: () => r.close(),
  };
}

test('when a deployment fails, then the on-call is told it failed, was rolled back, waits for an operator, and is reminded before the window closes; every delivery signed', async () => {
  const hook = await receiver();
  try {
    const w = await stack.world({ hosts: [{ name: 'n1', kind: 'nixos' }, { name: 'n2', kind: 'nixos' }] });
    const pr = await w.openLockUpdate('v2');
    w.fleet.host('n2').failActivation('script', { onlyVersion: 'v2' });
    await stack.withWorker(
      w,
      'notify-failed',
      async (taskQueue) => {
        const handle = await startDeployment(stack.t, w, taskQueue, {
          pr: pr.number,
          manualWindowSeconds: 8,
          notify: [{ url: hook.url, secretEnv: 'NIXFLEET_TEST_HOOK_SECRET', remindBefore: 5 }],
        });
        const s = await handle.result();
        expect(s.outcome).toBe('failed-rolled-back');
        expect(hook.refused).toBe(0);
        // Deliveries run side by side: their order of arrival is not theirs; the ids number them in order.
        const seq = (d: Delivery): number => Number(d.delivery.split('/').pop());
        const deliveries = [...hook.deliveries].sort((a, b) => seq(a) - seq(b));
        expect(deliveries.map((d) => d.event)).toEqual(['failed', 'rolled-back', 'awaiting-operator', 'reminder']);
        for (const d of deliveries) {
          expect(d.body.event).toBe(d.event);
          expect(d.body.id).toBe(d.delivery);
          expect(d.body.deploymentId).toBe(handle.workflowId);
          expect(d.body.change).toBe(`PR #${pr.number}`);
          expect(d.body.text).toContain(`Deployment ${handle.workflowId}`);
        }
        expect(new Set(deliveries.map((d) => d.delivery)).size).toBe(4);
        expect(deliveries[0]?.body).toMatchObject({ failedHost: 'n2', hosts: expect.objectContaining({ failed: ['n2'] }) });
        // Told when the compensation starts: the outcome is not known yet, the failure is.
        expect(deliveries[0]?.body.text).toMatch(/failed\.\nFailure: switch failed on n2: .*\nfailed: n2\nswitched: n1$/s);
        expect(deliveries[1]?.body.text).toMatch(/was rolled back\.\nOutcome: failed-rolled-back\./);
        expect(deliveries[3]?.body.text).toMatch(/still waiting for an operator: the manual window closes soon/);
        expect(deliveries[3]?.body.deadline).toBe(deliveries[2]?.body.deadline);
        // The status lists each by the receiver's origin only (a Slack URL's path is its secret).
        expect(s.notifications?.map((n) => `${n.event}:${n.delivered}:${n.target}`).sort()).toEqual(
          ['awaiting-operator', 'failed', 'reminder', 'rolled-back'].map((e) => `${e}:true:${new URL(hook.url).origin}`),
        );
        expect(JSON.stringify(s)).not.toContain('some-token');
      },
      { notifyEnv: ENV },
    );
  } finally {
    await hook.close();
  }
}, 240_000);

test('when the receiver is down or refuses the signature, then the deployment still succeeds and the undelivered notifications are reported in the status and the audit trail', async () => {
  const hook = await receiver();
  const down = `http://127.0.0.1:${await freePort()}/down`;
  try {
    const w = await stack.world({ hosts: [{ name: 'm1', kind: 'nixos' }] });
    const pr = await w.openLockUpdate('v2');
    await stack.withWorker(
      w,
      'notify-down',
      async (taskQueue) => {
        const handle = await startDeployment(stack.t, w, taskQueue, {
          pr: pr.number,
          notify: [
            { url: down, secretEnv: 'NIXFLEET_TEST_HOOK_SECRET', events: ['succeeded'] },
            { url: hook.url, secretEnv: 'NIXFLEET_TEST_WRONG_SECRET', events: ['succeeded'] },
            { url: hook.url, secretEnv: 'NIXFLEET_NOT_SET', events: ['succeeded'] },
          ],
        });
        const s = await handle.result();
        expect(s.outcome).toBe('succeeded');
        expect(s.hosts.map((h) => h.state)).toEqual(['switched']);
        const report = Object.fromEntries((s.notifications ?? []).map((n) => [n.error?.split(':')[0] ?? 'ok', n]));
        expect(s.notifications).toHaveLength(3);
        expect(s.notifications?.every((n) => !n.delivered && n.event === 'succeeded')).toBe(true);
        expect(report.NotifyUnreachable?.error).toMatch(/could not be reached/);
        expect(report.NotifyRefused?.error).toMatch(/refused the notification: 401/);
        expect(report.NotifyMisconfigured?.error).toMatch(/NIXFLEET_NOT_SET is not set/);
        expect(hook.refused).toBe(1);
        expect(hook.deliveries).toEqual([]);
        const audited = s.audit.filter((a) => a.action === 'notify');
        expect(audited).toHaveLength(3);
        for (const a of audited) expect(a.outcome).toMatch(/^succeeded notification to http:\/\/127\.0\.0\.1:\d+ not delivered: Notify\w+: /);
      },
      { notifyEnv: ENV },
    );
  } finally {
    await hook.close();
  }
}, 240_000);
