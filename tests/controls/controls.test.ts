/**
 * Operator controls on the real stack (dev server, sshd + Nix stand-in hosts, git-backed GitHub):
 * pause (after the hosts in flight), resume, abort, skip a host, retry-failed, promote; each refused
 * with its reason when it does not apply, and recorded in the audit trail with its actor (a refused
 * update too: `refused: <reason>`, patched 'h-ops-audit-refusals'; tests/controls/refusals). Driven the
 * way operators do: the client's update, `temporal workflow update execute` and `temporal workflow signal`.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { locateTemporalBinary } from '../../testkit/dev-server';
import type { World } from '../../testkit/world';
import { controlsQuery, controlUpdate, statusQuery } from '../../workflows/messages';
import { logins, profileMoves, revertCommits, sagaHarness, saveHistory, startDeployment, waitPhase, type DeployHandle } from '../support/saga';
import { waitFor } from '../support/temporal';

const execFileP = promisify(execFile);
const stack = sagaHarness();
const temporal = (...args: string[]) => execFileP(locateTemporalBinary(), [...args, '--address', stack.t.server.address, '--namespace', stack.t.server.namespace], { timeout: 60_000 });
const nixos = (...names: string[]) => names.map((name) => ({ name, kind: 'nixos' as const }));
const control = (handle: DeployHandle, c: string, requestedBy: string, extra: Record<string, unknown> = {}) =>
  handle.executeUpdate(controlUpdate, { args: [{ control: c as 'pause', requestedBy, ...extra }] });

/** The update was refused by its validator with a reason matching `why` (the client wraps it: WorkflowUpdateFailedError's cause). */
async function refused(p: Promise<unknown>, why: RegExp): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e as Error & { cause?: Error },
  );
  expect(err).toBeDefined();
  expect(err?.cause?.message ?? err?.message).toMatch(why);
}

/** The host's build is blocked in flight (hangBuild): its switch has started. */
const buildBlocked = (w: World, host: string) => waitFor(`${host}'s build to block`, () => (w.fleet.host(host).commandLog().some((e) => e.tool === 'hang-build') ? true : undefined), 60_000);

/**
 * The wave child has nothing in flight and has decided after every event it got: no pending
 * activity, every signal it sent delivered, its last workflow task completed. A pool that
 * still started hosts would have the next host's activity pending.
 */
async function childIdle(childId: string): Promise<void> {
  const h = stack.t.client.workflow.getHandle(childId);
  await waitFor(`${childId} to be idle`, async () => {
    const d = await h.describe();
    if ((d.raw.pendingActivities ?? []).length > 0) return undefined;
    const events = (await h.fetchHistory()).events ?? [];
    const sent = events.filter((e) => e.signalExternalWorkflowExecutionInitiatedEventAttributes).length;
    const delivered = events.filter((e) => e.externalWorkflowExecutionSignaledEventAttributes || e.signalExternalWorkflowExecutionFailedEventAttributes).length;
    // The last workflow task completed (the commands it recorded, a local read's marker among them, come after it).
    const lastTask = events.filter((e) => e.workflowTaskScheduledEventAttributes || e.workflowTaskStartedEventAttributes || e.workflowTaskCompletedEventAttributes).at(-1);
    return sent === delivered && lastTask?.workflowTaskCompletedEventAttributes ? true : undefined;
  }, 60_000, 250);
}

const scheduled = async (childId: string, host: string): Promise<number> =>
  ((await stack.t.client.workflow.getHandle(childId).fetchHistory()).events ?? []).filter((e) => e.activityTaskScheduledEventAttributes?.activityId?.includes(`-${host}/`)).length;

test('when an operator pauses, then the host in flight finishes and no further host starts until resumed; a second pause and a resume too many are refused', async () => {
  const w = await stack.world({ hosts: nixos('p1', 'p2', 'p3') });
  const pr = await w.openLockUpdate('v2');
  w.fleet.host('p1').hangBuild(true);
  await stack.withWorker(w, 'controls-pause', async (taskQueue) => {
    const handle = await startDeployment(stack.t, w, taskQueue, { pr: pr.number });
    await buildBlocked(w, 'p1');
    // Through the temporal CLI's update, as an operator without the deployer's CLI would.
    const { stdout } = await temporal('workflow', 'update', 'execute', '--workflow-id', handle.workflowId, '--name', 'controlAndWait', '--input', JSON.stringify({ control: 'pause', requestedBy: 'alice' }), '--output', 'json');
    expect(stdout).toContain('"accepted": true');
    await expect(temporal('workflow', 'update', 'execute', '--workflow-id', handle.workflowId, '--name', 'controlAndWait', '--input', JSON.stringify({ control: 'pause', requestedBy: 'bob' }))).rejects.toThrow(/already paused/);
    // The workflow lists what it knows is not started (its running wave child's progress is merged in by the API, which refuses p1).
    expect(await handle.query(controlsQuery)).toMatchObject({ allowed: ['resume', 'abort', 'skip'], state: { paused: true, pausedBy: 'alice' } });
    expect((await handle.query(controlsQuery)).skippable).toEqual(expect.arrayContaining(['p2', 'p3']));
    expect((await handle.query(statusQuery)).controls).toMatchObject({ paused: true, pausedBy: 'alice' });

    w.fleet.host('p1').hangBuild(false);
    const child = `${handle.workflowId}-wave-1`;
    await waitFor('p1 to be activated', () => (w.fleet.host('p1').activations().length === 1 ? true : undefined), 60_000);
    await childIdle(child);
    // p1 finished; p2 was never started while paused.
    expect(await scheduled(child, 'p1')).toBeGreaterThan(0);
    expect(await scheduled(child, 'p2')).toBe(0);
    expect(logins(w, 'p2')).toBe(0);
    expect((await handle.query(statusQuery)).phase).toBe('deploying');

    const resumed = await control(handle, 'resume', 'carol');
    expect(resumed).toMatchObject({ accepted: true, summary: 'resumed' });
    await refused(control(handle, 'resume', 'carol'), /the deployment is not paused/);
    const s = await waitPhase(handle, ['succeeded'], 120_000);
    expect(s.hosts.map((h) => h.state)).toEqual(['switched', 'switched', 'switched']);
    const final = await handle.result();
    expect(final.outcome).toBe('succeeded');
    // Accepted and refused controls are in the trail with their actor (bob's refused pause came through `temporal workflow update`).
    expect(final.audit.map((a) => `${a.actor}:${a.action}:${a.outcome}`).slice(2)).toEqual([
      'alice:pause:paused: no further host starts; the hosts in flight finish',
      'bob:pause:refused: the deployment is already paused',
      'carol:resume:resumed',
      'carol:resume:refused: the deployment is not paused',
    ]);
    await saveHistory(handle, 'd-controls-pause');
    await saveHistory(stack.t.client.workflow.getHandle(child), 'd-controls-pause-wave');
  });
}, 300_000);

test('when an operator skips a host not started yet, then it is never contacted and ends held; skipping a host in flight is refused, and a malformed signal is recorded and changes nothing', async () => {
  const w = await stack.world({ hosts: nixos('s1', 's2', 's3') });
  const pr = await w.openLockUpdate('v2');
  w.fleet.host('s1').hangBuild(true);
  await stack.withWorker(w, 'controls-skip', async (taskQueue) => {
    const handle = await startDeployment(stack.t, w, taskQueue, { pr: pr.number });
    await buildBlocked(w, 's1');
    // The signal path: fire and forget through the temporal CLI.
    await temporal('workflow', 'signal', '--workflow-id', handle.workflowId, '--name', 'control', '--input', JSON.stringify({ control: 'skip', host: 's2', requestedBy: 'dave' }));
    await temporal('workflow', 'signal', '--workflow-id', handle.workflowId, '--name', 'control', '--input', JSON.stringify({ control: 'explode', requestedBy: 'eve' }));
    await temporal('workflow', 'signal', '--workflow-id', handle.workflowId, '--name', 'control', '--input', '"not an object"');
    await waitFor('the skip to be recorded', async () => ((await handle.query(statusQuery)).hosts[1]?.state === 'held' ? true : undefined));
    // s1 is in flight in its wave child: the workflow's validator cannot see that (waves report by their
    // results), so the skip is accepted there and withdrawn, truthfully, once the child reports s1 deployed.
    expect(await control(handle, 'skip', 'dave', { host: 's1' })).toMatchObject({ accepted: true });
    w.fleet.host('s1').hangBuild(false);
    const final = await handle.result();
    expect(final.outcome).toBe('succeeded');
    expect(final.hosts.map((h) => `${h.name}:${h.state}`)).toEqual(['s1:switched', 's2:held', 's3:switched']);
    expect(final.hosts[0]?.warning).toBeUndefined();
    expect(final.audit.map((a) => `${a.actor}:${a.action}:${a.outcome}`)).toContain('nixfleet (automatic):skip:the skip of s1 came after its wave had started it: it was deployed (switched)');
    expect(final.hosts[1]?.warning).toBe('skipped by dave');
    expect(logins(w, 's2')).toBe(0);
    expect(final.controls?.skipped).toEqual(['s2']);
    const trail = final.audit.map((a) => `${a.actor}:${a.action}:${a.outcome}`);
    expect(trail).toContain('dave:skip:skipped s2: it is not deployed');
    expect(trail).toContain('eve:invalid-request:rejected: control: must be one of pause, resume, abort, skip, retry-failed, promote (got "explode")');
    expect(trail).toContain('unknown:invalid-request:rejected: request must be an object');
  });
}, 300_000);

test('when an operator aborts, then no further host starts, the host in flight finishes, and the deployment compensates at once', async () => {
  const w = await stack.world({ hosts: nixos('a1', 'a2', 'a3') });
  const before = w.fleet.host('a1').profileGeneration();
  const pr = await w.openLockUpdate('v2');
  w.fleet.host('a1').hangBuild(true);
  await stack.withWorker(w, 'controls-abort', async (taskQueue) => {
    const handle = await startDeployment(stack.t, w, taskQueue, { pr: pr.number, manualWindowSeconds: 0 });
    await buildBlocked(w, 'a1');
    const outcome = await control(handle, 'abort', 'frank', { reason: 'wrong window' });
    expect(outcome.accepted).toBe(true);
    await refused(control(handle, 'pause', 'frank'), /being aborted/);
    w.fleet.host('a1').hangBuild(false);
    const final = await handle.result();
    expect(final.failure).toBe('aborted by frank: wrong window');
    expect(final.hosts.map((h) => `${h.name}:${h.state}`)).toEqual(['a1:rolled-back', 'a2:not-attempted', 'a3:not-attempted']);
    expect(w.fleet.host('a1').profileGeneration()).toEqual(before);
    expect(logins(w, 'a2')).toBe(0);
    expect(await revertCommits(w, final.mergeSha as string)).toHaveLength(1);
    expect(final.outcome).toBe('failed-rolled-back');
    expect(final.audit.map((a) => `${a.actor}:${a.action}`)).toEqual(['alice:deploy', 'alice:merge', 'frank:abort', 'frank:pause', 'nixfleet (automatic):auto-compensate']);
    expect(final.audit[3]?.outcome).toBe('refused: the deployment is being aborted');
    await saveHistory(handle, 'd-controls-abort');
  });
}, 300_000);

test('when an operator promotes during a bake, then the next wave starts at once; promote outside a bake is refused', async () => {
  const w = await stack.world({ hosts: nixos('c1', 'r1') });
  const pr = await w.openLockUpdate('v2');
  await stack.withWorker(w, 'controls-promote', async (taskQueue) => {
    // A bake of an hour: only the promote can end it within the test's bound.
    const handle = await startDeployment(stack.t, w, taskQueue, { pr: pr.number, rollout: { waves: [{ name: 'canary', hosts: ['c1'], bake: 3600 }, { name: 'rest', hosts: ['r1'] }] } });
    await refused(control(handle, 'promote', 'gina'), /promote applies only while a wave bakes/);
    await waitPhase(handle, ['baking']);
    expect((await handle.query(controlsQuery)).allowed).toContain('promote');
    expect(await control(handle, 'promote', 'gina')).toMatchObject({ accepted: true, summary: 'promoted: the bake ends now' });
    const final = await handle.result();
    expect(final.outcome).toBe('succeeded');
    expect(final.hosts.map((h) => h.state)).toEqual(['switched', 'switched']);
    expect(final.audit.filter((a) => a.action === 'promote').map((a) => `${a.actor}:${a.outcome}`)).toEqual([expect.stringMatching(/^gina:refused: the deployment is \w+; promote applies only while a wave bakes$/), 'gina:promoted: the bake ends now']);
    await saveHistory(handle, 'd-controls-promote');
  });
}, 300_000);

test('when hosts failed within the budget, then retry-failed deploys only them again, keeps the hosts that switched, and the deployment succeeds', async () => {
  const w = await stack.world({ hosts: nixos('f1', 'f2', 'f3') });
  const pr = await w.openLockUpdate('v2');
  w.fleet.host('f2').failActivation('units', { onlyVersion: 'v2' });
  await stack.withWorker(w, 'controls-retry', async (taskQueue) => {
    const handle = await startDeployment(stack.t, w, taskQueue, { pr: pr.number, onFailure: { revert: 'commit', rollbackHosts: false }, rollout: { failureBudget: 1 } });
    const s = await waitPhase(handle, ['awaiting-operator'], 120_000);
    expect(s.hosts.map((h) => h.state)).toEqual(['switched', 'failed', 'switched']);
    expect((await handle.query(controlsQuery)).allowed).toEqual(['retry-failed']);
    // The operator repairs the unit that failed on f2 (it runs the new generation, its unit failed):
    // the retry deploys f2 alone, finds it on the target with no failed unit now, and it passes.
    w.fleet.host('f2').failActivation(false);
    w.fleet.host('f2').setFailedUnits([]);
    const outcome = await control(handle, 'retry-failed', 'hank');
    expect(outcome).toMatchObject({ accepted: true, summary: 'retried f2: all switched' });
    expect(outcome.status.hosts[1]).toMatchObject({ name: 'f2', state: 'switched' });
    expect(outcome.status.hosts[1]?.error).toBeUndefined();
    const final = await handle.result();
    expect(final.outcome).toBe('succeeded');
    expect(final.hosts.map((h) => h.state)).toEqual(['switched', 'switched', 'switched']);
    expect(w.fleet.host('f2').currentSystem()).toBe(final.hosts[1]?.after?.storePath);
    // f1 and f3 were switched once, never again.
    expect(profileMoves(w, 'f1').activations).toBe(1);
    expect(profileMoves(w, 'f3').activations).toBe(1);
    expect(final.audit.at(-1)).toMatchObject({ actor: 'hank', action: 'retry-failed', hosts: ['f2'], outcome: 'retried f2: all switched' });
    await saveHistory(handle, 'd-controls-retry');
  });
}, 300_000);

test('when the merge was reverted, then retry-failed is refused with the reason', async () => {
  const w = await stack.world({ hosts: nixos('g1', 'g2') });
  const pr = await w.openLockUpdate('v2');
  w.fleet.host('g2').failActivation('units', { onlyVersion: 'v2' });
  await stack.withWorker(w, 'controls-retry-refused', async (taskQueue) => {
    const handle = await startDeployment(stack.t, w, taskQueue, { pr: pr.number, onFailure: { revert: 'commit', rollbackHosts: false } });
    await waitPhase(handle, ['awaiting-operator'], 120_000);
    await refused(control(handle, 'retry-failed', 'ivy'), /the change was reverted: retrying would deploy a reverted change/);
    // The refused update is recorded with its actor and reason.
    expect((await handle.query(statusQuery)).audit.filter((a) => a.actor === 'ivy').map((a) => a.outcome)).toEqual([expect.stringMatching(/^refused: the change was reverted/)]);
    // The signal path refuses the same and records it.
    await handle.signal('control', { control: 'retry-failed', requestedBy: 'ivy' });
    await waitFor('the refused signal in the trail', async () => ((await handle.query(statusQuery)).audit.some((a) => a.actor === 'ivy' && a.action === 'retry-failed' && a.outcome.startsWith('rejected: the change was reverted')) ? true : undefined));
    expect((await handle.query(statusQuery)).phase).toBe('awaiting-operator');
    await handle.terminate('test over');
  });
}, 300_000);
