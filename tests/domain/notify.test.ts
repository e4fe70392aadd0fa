/** Which phase changes tell the on-call, and what they are told (src/domain/notify.ts). */
import { eventsFor, notificationBody, reminderAt, targetLabel, type NotifyEvent } from '../../src/domain/notify';
import type { DeploymentStatus } from '../../src/domain/deployment';

const none = new Set<NotifyEvent>();

test('when a deployment fails, is compensated and waits, then failed, rolled-back and awaiting-operator are raised, each once', () => {
  expect(eventsFor('deploying', 'compensating', {}, none)).toEqual(['failed']);
  expect(eventsFor('compensating', 'awaiting-operator', { outcome: 'failed-rolled-back' }, new Set(['failed']))).toEqual(['rolled-back', 'awaiting-operator']);
  expect(eventsFor('compensating', 'awaiting-operator', { outcome: 'failed-rollback-incomplete' }, new Set(['failed']))).toEqual(['awaiting-operator']);
  // A manual rollback that completes it: rolled-back once; back to waiting is no new awaiting-operator.
  expect(eventsFor('rolling-back', 'awaiting-operator', { outcome: 'failed-rolled-back' }, new Set(['failed', 'awaiting-operator']))).toEqual(['rolled-back']);
  expect(eventsFor('rolling-back', 'closed', { outcome: 'failed-rolled-back' }, new Set(['failed', 'awaiting-operator', 'rolled-back']))).toEqual([]);
  // Dismissed: nothing new.
  expect(eventsFor('awaiting-operator', 'closed', { outcome: 'failed-dismissed' }, new Set(['failed', 'awaiting-operator']))).toEqual([]);
});

test('when a deployment succeeds, is refused, or its merge fails, then succeeded or failed is raised; nothing for an unchanged phase', () => {
  expect(eventsFor('deploying', 'succeeded', { outcome: 'succeeded' }, none)).toEqual(['succeeded']);
  expect(eventsFor('starting', 'closed', { outcome: 'refused' }, none)).toEqual(['failed']);
  expect(eventsFor('merging', 'closed', { outcome: 'failed-not-rolled-back' }, none)).toEqual(['failed']);
  expect(eventsFor('starting', 'awaiting-window', {}, none)).toEqual(['waiting-for-window']);
  expect(eventsFor('deploying', 'deploying', { outcome: 'succeeded' }, none)).toEqual([]);
});

test('the reminder goes out remindBefore seconds before the window closes, never when it would come first', () => {
  expect(reminderAt(1000, 3600, 600)).toBe(1000 + 3000 * 1000);
  expect(reminderAt(1000, 3600, 3600)).toBeUndefined();
  expect(reminderAt(1000, 0, 60)).toBeUndefined();
  expect(reminderAt(1000, 3600, 0)).toBeUndefined();
});

test('the body has a Slack-compatible text naming the deployment, its failure and hosts; the target shows by origin only', () => {
  const status = {
    deploymentId: 'deploy-acme.fleet.pr42',
    phase: 'awaiting-operator',
    repository: { owner: 'acme', name: 'fleet', branch: 'main' },
    change: { kind: 'pull-request', number: 42 },
    hosts: [
      { name: 'a', kind: 'nixos', state: 'rolled-back' },
      { name: 'b', kind: 'nixos', state: 'failed' },
      { name: 'c', kind: 'nixos', state: 'not-attempted' },
    ],
    audit: [],
    failure: 'switch failed on b',
    failedHost: 'b',
    outcome: 'failed-rolled-back',
  } as DeploymentStatus;
  const body = notificationBody('awaiting-operator', status, '2026-12-02T03:00:00.000Z', 'id-1', '2026-12-03T03:00:00.000Z');
  expect(body).toMatchObject({ id: 'id-1', event: 'awaiting-operator', repository: 'acme/fleet@main', change: 'PR #42', hosts: { 'rolled-back': ['a'], failed: ['b'], 'not-attempted': ['c'] } });
  expect(body.text).toBe(
    'Deployment deploy-acme.fleet.pr42 (acme/fleet@main, PR #42) is waiting for an operator.\nOutcome: failed-rolled-back.\nFailure: switch failed on b\nfailed: b\nrolled-back: a\nnot-attempted: c\nManual window closes: 2026-12-03T03:00:00.000Z',
  );
  expect(targetLabel('https://hooks.slack.com/services/T0/B0/secret')).toBe('https://hooks.slack.com');
  expect(targetLabel('not a url')).toBe('(invalid URL)');
});
