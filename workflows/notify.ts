import { type ActivityOptions, CancellationScope, isCancellation, log, patched, proxyActivities, sleep, workflowInfo } from '@temporalio/workflow';
import type { DeployActivities } from '../src/domain/activities';
import type { Phase } from '../src/domain/deployment';
import { eventsFor, notificationBody, notifyTargetLabel, reminderAt, type NotifyEvent, type NotifyTarget } from '../src/domain/notify';
import { failureOf, NON_RETRYABLE } from './common';
import type { DeploymentRecord } from './deployment-state';

/** Patch id: deployments started before notifications existed send none (they have no targets either). */
export const NOTIFY_PATCH = 'f-windows-notify';

/**
 * Delivery is retried with backoff for about a minute; what is still not delivered then is reported
 * (status.notifications, an audit entry) and the deployment goes on: nothing here is awaited by a
 * deployment step, and the close waits at most this long for a delivery to end.
 */
const notifyStep: ActivityOptions = {
  startToCloseTimeout: '15 seconds',
  scheduleToCloseTimeout: '90 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '20 seconds', maximumAttempts: 6, nonRetryableErrorTypes: NON_RETRYABLE },
};

const MAX_REPORTED = 50;

/**
 * Sends the deployment's notifications (src/domain/notify.ts decides which phase changes are events):
 * each an activity started and not awaited; its failure is recorded, never thrown. When the deployment
 * starts waiting for an operator, a reminder is set for `remindBefore` seconds before the manual
 * window closes, cancelled when the wait ends.
 */
export function watchForNotifications(d: DeploymentRecord): void {
  const targets: NotifyTarget[] = d.input.notify ?? [];
  if (targets.length === 0) return;
  const sent = new Set<NotifyEvent>();
  let seq = 0;
  let enabled: boolean | undefined;
  let reminder: CancellationScope | undefined;

  const send = (event: NotifyEvent, deadline?: string): void => {
    sent.add(event);
    const at = new Date().toISOString();
    for (const [i, target] of targets.entries()) {
      if (!target.events.includes(event)) continue;
      seq += 1;
      const id = `${d.input.deploymentId}/${workflowInfo().runId}/${seq}`;
      const body = notificationBody(event, d.status, at, id, deadline);
      // A named target (the worker resolves its URL and secret: neither is in this history), or the
      // deprecated URL form of deployments started before names (the same input as before).
      const label = notifyTargetLabel(target);
      const activityTarget = 'target' in target ? { name: target.target } : { url: target.url, secretEnv: target.secretEnv };
      const report = (delivered: boolean, error?: string): void => {
        const list = (d.status.notifications ??= []);
        list.push({ event, target: label, delivered, ...(error ? { error: error.slice(0, 500) } : {}), at: new Date().toISOString() });
        if (list.length > MAX_REPORTED) list.splice(0, list.length - MAX_REPORTED);
      };
      // Not awaited by the deployment; the record's close waits for it (bounded by notifyStep).
      d.track(
        CancellationScope.nonCancellable(() =>
          proxyActivities<DeployActivities>({ ...notifyStep, activityId: `notify-${seq}`, summary: `notify ${label}: ${event}` })
            .notify({ deploymentId: d.input.deploymentId, target: activityTarget, targetIndex: i, body })
            .then(
              () => report(true),
              (err: unknown) => {
                const f = failureOf(err);
                report(false, `${f.type}: ${f.message}`);
                log.warn('notification not delivered', { event, target: label, error: f.message });
                d.audit({ actor: 'nixfleet (automatic)', action: 'notify', hosts: [], outcome: `${event} notification to ${label} not delivered: ${f.type}: ${f.message}` });
              },
            ),
        ),
      );
    }
  };

  const remind = (): void => {
    const lead = Math.max(0, ...targets.filter((t) => t.events.includes('reminder')).map((t) => t.remindBefore));
    const at = reminderAt(Date.now(), d.input.manualWindowSeconds, lead);
    if (at === undefined) return;
    const closes = new Date(Date.now() + d.input.manualWindowSeconds * 1000).toISOString();
    reminder = new CancellationScope();
    const scope = reminder;
    scope
      .run(async () => {
        await sleep(at - Date.now());
        if (d.status.phase === 'awaiting-operator' || d.status.phase === 'rolling-back') send('reminder', closes);
      })
      .catch((err: unknown) => {
        if (!isCancellation(err)) throw err;
      });
  };

  d.onPhase((from: Phase, to: Phase) => {
    const events = eventsFor(from, to, d.status, sent);
    if (events.length === 0 && !(to === 'closed' && reminder)) return;
    enabled ??= patched(NOTIFY_PATCH);
    if (!enabled) return;
    for (const e of events) {
      const deadline = e === 'awaiting-operator' ? new Date(Date.now() + d.input.manualWindowSeconds * 1000).toISOString() : e === 'waiting-for-window' ? d.status.window?.opensAt : undefined;
      send(e, deadline);
      if (e === 'awaiting-operator') remind();
    }
    if (to === 'closed' && reminder) {
      reminder.cancel();
      reminder = undefined;
    }
  });
}
