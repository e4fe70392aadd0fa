/**
 * A refused operator control is in the audit trail with its actor and reason, whichever client sent
 * it (patched 'h-ops-audit-refusals'), on the whole real stack (dev server, worker, sshd + Nix stand-in
 * hosts, GitHub stand-in, the API): through the API (olga's token) and through the Temporal client's
 * update directly (as `temporal workflow update` does, bypassing the API). The caller gets the same
 * reason as before (the API's 409, the update's failure). A malformed request is rejected by the
 * update's validator: it leaves no entry and no event in the history, and the deployment carries on.
 * The same refusal repeated back to back is recorded once, and an actor's refusals up to a cap
 * (REFUSAL_AUDIT_LIMITS, src/domain/controls.ts): past it they are answered and leave no event.
 */
import type { DeploymentStatus } from '../../src/domain/deployment';
import { REFUSAL_AUDIT_LIMITS } from '../../src/domain/controls';
import { controlUpdate } from '../../workflows/messages';
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
