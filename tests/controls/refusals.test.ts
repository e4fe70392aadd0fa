/**
 * A refused operator control is in the audit trail with its actor and reason, whichever client sent
 * it (patched 'h-ops-audit-refusals'), on the whole real stack (dev server, worker, sshd + Nix stand-in
 * hosts, GitHub stand-in, the API): through the API (olga's token) and through the Temporal client's
 * update directly (as `temporal workflow update` does, bypassing the API). The caller gets the same
 * reason as before (the API's 409, the update's failure). A malformed request is rejected by the
 * update's validator: it leaves no entry and no event in the history, and the deployment carries on.
 * The same refusal repeated back to back is recorded once, and an actor's refusals up to a cap
 * (REFUSAL_AUDIT_LIMITS, src/domain/audit.ts): past it they are answered and leave no event.
 * A flood of refused signals (patched 'refusals-bounded'), which the history records whatever the
 * workflow does, adds only their own events past those limits: no audit entry, no audit activity.
 * A skip of a host in flight, which only the API can see, is refused there and recorded all the same.
 */
import type { DeploymentStatus } from '../../src/domain/deployment';
import { REFUSAL_AUDIT_LIMITS } from '../../src/domain/controls';
import { controlSignal, controlUpdate, rollbackSignal } from '../../workflows/messages';
import { startStack, type Stack } from '../api/stack';
import { saveHistory } from '../support/saga';
import { waitFor } from '../support/temporal';

let s: Stack;
beforeAll(async () => {
  s = await startStack('controls-refusals', [
    { name: 'q1', kind: 'nixos' },
    { name: 'q2', kind: 'nixos' },
  ]);
}, 300_000);
afterAll(async () => {
  await s?.stop();
});

const trailOf = async (id: string): Promise<string[]> => (await s.call<DeploymentStatus>('GET', `/api/deployments/${id}`)).body.audit.map((a) => `${a.actor}:${a.action}:${a.outcome}`);
const failureText = (p: Promise<unknown>): Promise<string | undefined> =>
  p.then(
    () => undefined,
    (e: Error & { cause?: Error }) => e.cause?.message ?? e.message,
  );

test('when a control that does not apply is sent through the API or the Temporal client, then it is refused with the reason and recorded with its actor; a malformed one leaves no trace and the deployment carries on', async () => {
  const w = s.world;
  const pr = await w.openLockUpdate('v2');
  w.fleet.host('q1').hangBuild(true);
  const id = await s.deploy(pr.number, { revert: 'commit', rollbackHosts: true });
  await waitFor("q1's build to block", () => (w.fleet.host('q1').commandLog().some((e) => e.tool === 'hang-build') ? true : undefined), 60_000);
  const handle = s.t.client.workflow.getHandle(id);
  const updateEvents = async () => ((await handle.fetchHistory()).events ?? []).filter((e) => e.workflowExecutionUpdateAcceptedEventAttributes).length;

  // Through the API: olga resumes a deployment nobody paused, three times in a row.
  for (let i = 0; i < 3; i++) {
    const res = await s.call<{ message: string }>('POST', `/api/deployments/${id}/control`, { control: 'resume' });
    expect(res.status).toBe(409);
    expect(res.body.message).toBe('the deployment is not paused');
  }
  // Through the Temporal client's update, as `temporal workflow update` would: tess promotes outside a bake.
  expect(await failureText(handle.executeUpdate(controlUpdate, { args: [{ control: 'promote', requestedBy: 'tess' }] }))).toBe('the deployment is deploying; promote applies only while a wave bakes');
  const before = await updateEvents();
  // Malformed: an unknown control, no actor, not an object. Rejected before the history.
  expect(await failureText(handle.executeUpdate(controlUpdate, { args: [{ control: 'explode', requestedBy: 'mal' } as never] }))).toMatch(/^control: must be one of/);
  expect(await failureText(handle.executeUpdate(controlUpdate, { args: [{ control: 'pause' } as never] }))).toBe('requestedBy: required (who asked)');
  expect(await failureText(handle.executeUpdate(controlUpdate, { args: ['not an object' as never] }))).toBe('request must be an object');
  expect(await updateEvents()).toBe(before);

  // Hammering: hana alternates two refused controls 30 times (never the same twice in a row). Each is
  // answered with its reason; perActor of them are recorded, the rest are rejected by the validator
  // and leave no event: the history grows by perActor updates, not 30.
  for (let i = 0; i < 30; i++) {
    const c = i % 2 === 0 ? 'resume' : 'promote';
    expect(await failureText(handle.executeUpdate(controlUpdate, { args: [{ control: c, requestedBy: 'hana' }] }))).toBe(c === 'resume' ? 'the deployment is not paused' : 'the deployment is deploying; promote applies only while a wave bakes');
  }
  expect(await updateEvents()).toBe(before + REFUSAL_AUDIT_LIMITS.perActor);
  expect((await trailOf(id)).filter((a) => a.startsWith('hana:'))).toHaveLength(REFUSAL_AUDIT_LIMITS.perActor);

  const refusals = (await trailOf(id)).filter((a) => !a.startsWith('hana:') && (a.includes(':refused: ') || a.includes('rejected') || a.includes('invalid-request')));
  // olga's three identical refusals are one entry; tess's is hers; nothing of the malformed ones.
  expect(refusals).toEqual(['olga:resume:refused: the deployment is not paused', 'tess:promote:refused: the deployment is deploying; promote applies only while a wave bakes']);

  // The deployment carries on: a control that applies is still accepted, and it succeeds.
  expect((await s.call('POST', `/api/deployments/${id}/control`, { control: 'pause' })).status).toBe(200);
  expect((await s.call('POST', `/api/deployments/${id}/control`, { control: 'resume' })).status).toBe(200);
  w.fleet.host('q1').hangBuild(false);
  const final = await s.waitPhase(id, ['succeeded']);
  expect(final.hosts.map((h) => h.state)).toEqual(['switched', 'switched']);
  expect(final.audit.filter((a) => a.actor !== 'hana').map((a) => `${a.actor}:${a.action}`)).toEqual(['olga:deploy', 'olga:merge', 'olga:resume', 'tess:promote', 'olga:pause', 'olga:resume']);
  await waitFor('the workflow to close', async () => ((await handle.describe()).status.name === 'COMPLETED' ? true : undefined), 60_000);
  await saveHistory(handle, 'h-ops-audit-refusals');
}, 300_000);

test('when a flood of malformed and refused signals reaches a deployment (as `temporal workflow signal` sends them), then the trail records at most its limit of refusals, counts the rest, and the deployment still closes', async () => {
  const w = s.world;
  const pr = await w.openLockUpdate('v3');
  w.fleet.host('q1').hangBuild(true);
  // q1's log already holds the first test's blocked build: wait for this deployment's.
  const hangs = (): number => w.fleet.host('q1').commandLog().filter((e) => e.tool === 'hang-build').length;
  const earlier = hangs();
  const id = await s.deploy(pr.number, { revert: 'commit', rollbackHosts: true });
  await waitFor("q1's build to block", () => (hangs() > earlier ? true : undefined), 60_000);
  const handle = s.t.client.workflow.getHandle(id);
  const auditActivities = async (): Promise<number> =>
    ((await handle.fetchHistory()).events ?? []).filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'recordAudit').length;
  // A skip of q1, in flight in its wave child (which the deployment cannot see; the API can): refused
  // with the reason, and recorded with the actor (the API tells the deployment the state it saw).
  const skip = await waitFor('the API to see q1 in flight', async () => {
    const res = await s.call<{ message: string }>('POST', `/api/deployments/${id}/control`, { control: 'skip', host: 'q1' });
    return res.status === 409 ? res : undefined;
  }, 30_000);
  expect(skip.body.message).toMatch(/^host q1 is switching; only a host not started yet can be skipped$/);
  await waitFor('the refused skip in the trail', async () => ((await trailOf(id)).includes(`olga:skip:refused: ${skip.body.message}`) ? true : undefined), 30_000);
  const before = await auditActivities();

  // 60 malformed controls, each under another name (so only the total limit holds them); 20 refused
  // controls from one actor; 20 rollback requests while the deployment is not awaiting an operator.
  const sent = 100;
  for (let i = 0; i < 60; i++) await handle.signal(controlSignal, { control: 'rm -rf /', requestedBy: `mallory-${i}` } as never);
  for (let i = 0; i < 20; i++) await handle.signal(controlSignal, { control: i % 2 === 0 ? 'resume' : 'promote', requestedBy: 'eve' });
  for (let i = 0; i < 20; i++) await handle.signal(rollbackSignal, { action: 'revert-and-rollback', requestedBy: `trudy-${i}` });
  // Signals' refusals are `rejected: …`; the skip's `refused: …` counts towards the same total.
  const rejected = (st: DeploymentStatus): number => st.audit.filter((a) => a.outcome.startsWith('rejected: ')).length;
  const status = await waitFor('every signal to be answered', async () => {
    const st = (await s.call<DeploymentStatus>('GET', `/api/deployments/${id}`)).body;
    return rejected(st) + (st.refusalsNotRecorded ?? 0) >= 80 ? st : undefined;
  }, 60_000);
  const recorded = rejected(status);
  expect(recorded).toBe(REFUSAL_AUDIT_LIMITS.total - 1);
  expect(status.audit.filter((a) => a.actor === 'eve').length).toBeLessThanOrEqual(REFUSAL_AUDIT_LIMITS.perActor);
  // The 80 controls are refused at once; the rollback requests wait in the queue for the manual window.
  expect(recorded + (status.refusalsNotRecorded ?? 0)).toBe(80);
  expect(await auditActivities()).toBe(before + recorded);

  // It carries on and closes: the build is released, the deployment succeeds, the queued rollback
  // requests are answered (refused: nothing to roll back) within the limit, and the workflow completes.
  w.fleet.host('q1').hangBuild(false);
  const final = await s.waitPhase(id, ['succeeded']);
  expect(final.hosts.map((h) => h.state)).toEqual(['switched', 'switched']);
  await waitFor('the workflow to close', async () => ((await handle.describe()).status.name === 'COMPLETED' ? true : undefined), 60_000);
  const closed = (await s.call<DeploymentStatus>('GET', `/api/deployments/${id}`)).body;
  const refusals = closed.audit.filter((a) => /^(refused|rejected): /.test(a.outcome)).length;
  expect(refusals).toBeLessThanOrEqual(REFUSAL_AUDIT_LIMITS.total);
  expect(refusals + (closed.refusalsNotRecorded ?? 0)).toBeLessThanOrEqual(sent);
  expect(await auditActivities()).toBeLessThanOrEqual(before + REFUSAL_AUDIT_LIMITS.total + 5);
  await saveHistory(handle, 'refusals-bounded');
}, 300_000);
