/**
 * The compensation's edges on the real stack (dev server, stand-in sshd + Nix hosts, GitHub stand-in),
 * issue 12: a commit deploy never reverts a commit it did not merge (bug 2); a wave child that ends
 * without its result does not skip the compensation, and cancelling in the manual window is audited
 * (bug 5); failures inside the budget whose rollback fails keep the deployment open (bug 7); each
 * operator's audit entry says what that operator did, the merge-failure path is audited, and every
 * audit write carries the run (bug 4).
 */
import { WorkflowFailedError } from '@temporalio/client';
import { MemoryAuditStore } from '../../src/audit/memory-audit-store';
import { fleetFlakeLock } from '../../testkit/fleet';
import { rollbackPreviewQuery, rollbackUpdate } from '../../workflows/messages';
import { profileMoves, revertCommits, saveHistory, startDeployment, waitPhase, sagaHarness } from '../support/saga';
import { waitFor } from '../support/temporal';

const stack = sagaHarness();
const nixos = (...names: string[]) => names.map((name) => ({ name, kind: 'nixos' as const }));

test('bug 2: when a commit deploy fails before any host changed, then nothing is reverted (the commit is not this deployment\'s merge)', async () => {
  const w = await stack.world({ hosts: nixos('c1', 'c2') });
  // A commit a human pushed (here: one that puts back a flake.lock that had been reverted).
  const sha = await w.github.pushCommit(w.owner, w.repo, w.branch, { 'flake.lock': fleetFlakeLock({ version: 'v2' }) }, 'Revert "Revert "flake.lock: update to v2""');
  w.fleet.host('c1').failBuild(true);
  await stack.withWorker(w, 'commit-deploy-no-revert', async (taskQueue) => {
    const handle = await startDeployment(stack.t, w, taskQueue, { commit: sha, manualWindowSeconds: 0 });
    const s = await handle.result();
    expect(s.failedHost).toBe('c1');
    expect(s.hosts.map((h) => `${h.name}:${h.state}`)).toEqual(['c1:failed', 'c2:not-attempted']);
    expect(s.revert).toBeUndefined();
    expect(await revertCommits(w, sha)).toEqual([]);
    const [head] = await w.github.log(w.owner, w.repo, w.branch, 1);
    expect(head?.sha).toBe(sha);
    expect(w.github.countRequests('POST', /\/git\/commits$/)).toBe(0);
    expect(profileMoves(w, 'c1')).toMatchObject({ set: 0, switchGeneration: 0 });
    expect(s.outcome).toBe('failed-rolled-back');
    expect(s.audit.find((a) => a.action === 'auto-compensate')?.outcome).toMatch(/no revert; rolled back: none$/);
    await saveHistory(handle, 'commit-deploy-no-revert');
  });
});

test('bug 5: when the wave child is terminated mid-switch, then the parent re-reads the host, compensates and keeps the manual window; cancelling there is audited', async () => {
  const w = await stack.world({ hosts: nixos('t1', 't2') });
  const before = w.fleet.host('t1').profileGeneration();
  const pr = await w.openLockUpdate('v2');
  w.fleet.host('t1').hangActivation(true);
  const auditLog = new MemoryAuditStore();
  await stack.withWorker(
    w,
    'wave-terminated',
    async (taskQueue) => {
      const handle = await startDeployment(stack.t, w, taskQueue, { pr: pr.number });
      await waitFor('t1 activation to start', () => (w.fleet.host('t1').commandLog().some((e) => e.tool === 'hang') ? true : undefined), 60_000);
      await stack.t.client.workflow.getHandle(`${handle.workflowId}-wave-1`).terminate('operator killed the wave');
      w.fleet.host('t1').hangActivation(false);
      const s = await waitPhase(handle, ['awaiting-operator'], 120_000);
      expect(s.failure).toMatch(/^wave all failed before it finished/);
      expect(s.failedHost).toBe('t1');
      const t1 = s.hosts.find((h) => h.name === 't1');
      expect(t1).toMatchObject({ state: 'rolled-back', before });
      expect(s.hosts.find((h) => h.name === 't2')?.state).toBe('not-attempted');
      expect(w.fleet.host('t1').profileGeneration()).toEqual(before);
      expect(await revertCommits(w, s.mergeSha as string)).toHaveLength(1);
      expect(s.outcome).toBe('failed-rolled-back');
      expect(s.audit.map((a) => a.action)).toEqual(['deploy', 'merge', 'auto-compensate']);

      await handle.cancel();
      await expect(handle.result()).rejects.toBeInstanceOf(WorkflowFailedError);
      const stored = await waitFor('the cancel entry in the audit log', async () => {
        const rows = await auditLog.list({ deploymentId: handle.workflowId });
        return rows.length >= 4 ? rows : undefined;
      });
      expect(stored.map((r) => r.action)).toEqual(['deploy', 'merge', 'auto-compensate', 'dismiss']);
      expect(stored[3]?.outcome).toMatch(/^cancelled while awaiting an operator/);
      await saveHistory(handle, 'wave-terminated-then-cancelled');
    },
    { audit: auditLog },
  );
});

test('bug 7: when a failure inside the budget cannot be rolled back, then the deployment waits for an operator, who rolls back only that host', async () => {
  const w = await stack.world({ hosts: nixos('k1', 'k2', 'k3') });
  const before = w.fleet.host('k2').profileGeneration();
  const pr = await w.openLockUpdate('v2');
  // Every activation on k2 fails, its rollback's included, until the fault is cleared.
  w.fleet.host('k2').failActivation('script');
  await stack.withWorker(w, 'budget-rollback-fails', async (taskQueue) => {
    const handle = await startDeployment(stack.t, w, taskQueue, { pr: pr.number, rollout: { failureBudget: 1 } });
    const s = await waitPhase(handle, ['awaiting-operator', 'succeeded', 'closed'], 120_000);
    expect(s.phase).toBe('awaiting-operator');
    expect(s.outcome).toBe('succeeded-with-failures');
    expect(s.hosts.map((h) => `${h.name}:${h.state}`)).toEqual(['k1:switched', 'k2:rollback-failed', 'k3:switched']);
    expect(s.failure).toMatch(/not back on their recorded generation: k2 \(rollback-failed\)/);
    const preview = await handle.query(rollbackPreviewQuery);
    expect(preview.hosts.map((h) => h.name)).toEqual(['k2']);
    expect(preview.allowed).toEqual(['revert-and-rollback', 'dismiss']);

    w.fleet.host('k2').failActivation(false);
    const out = await handle.executeUpdate(rollbackUpdate, { args: [{ action: 'revert-and-rollback', requestedBy: 'olga' }] });
    expect(out.accepted).toBe(true);
    const final = await handle.result();
    expect(final.hosts.map((h) => `${h.name}:${h.state}`)).toEqual(['k1:switched', 'k2:rolled-back', 'k3:switched']);
    expect(w.fleet.host('k2').profileGeneration()).toEqual(before);
    // The deployment succeeded: its merge stays.
    expect(await revertCommits(w, final.mergeSha as string)).toEqual([]);
    expect(await w.github.readFile(w.owner, w.repo, w.branch, 'flake.lock')).toBe(fleetFlakeLock({ version: 'v2' }));
    expect(final.outcome).toBe('succeeded-with-failures');
    expect(final.audit.at(-1)).toMatchObject({ actor: 'olga', action: 'revert-and-rollback', hosts: ['k2'] });
    await saveHistory(handle, 'budget-rollback-fails');
  });
});

test('bug 4: the second operator\'s entry says the merge was already reverted by the first; every audit write names the run', async () => {
  const w = await stack.world({ hosts: nixos('a1', 'a2') });
  const pr = await w.openLockUpdate('v2');
  w.fleet.host('a2').failActivation('units', { onlyVersion: 'v2' });
  await stack.withWorker(w, 'audit-attribution', async (taskQueue) => {
    const handle = await startDeployment(stack.t, w, taskQueue, { pr: pr.number, onFailure: { revert: 'off', rollbackHosts: false } });
    await waitPhase(handle, ['awaiting-operator']);
    await handle.executeUpdate(rollbackUpdate, { args: [{ action: 'revert', requestedBy: 'dave' }] });
    await handle.executeUpdate(rollbackUpdate, { args: [{ action: 'revert-and-rollback', requestedBy: 'erin' }] });
    const final = await handle.result();
    const sha = final.revert?.kind === 'commit' ? final.revert.commitSha : '?';
    const [dave, erin] = final.audit.slice(-2);
    expect(dave).toMatchObject({ actor: 'dave', action: 'revert', reverted: sha, outcome: `reverted in ${sha.slice(0, 12)}` });
    expect(erin).toMatchObject({ actor: 'erin', action: 'revert-and-rollback', hosts: ['a2', 'a1'] });
    expect(erin?.reverted).toBeUndefined();
    expect(erin?.outcome).toBe(`already reverted by dave in ${sha.slice(0, 12)}; rolled back: a2, a1`);
    expect(await revertCommits(w, final.mergeSha as string)).toHaveLength(1);

    // Every recordAudit the workflow scheduled carries its run id.
    const history = await handle.fetchHistory();
    const { runId } = await handle.describe();
    const inputs = (history.events ?? [])
      .map((e) => e.activityTaskScheduledEventAttributes)
      .filter((a) => a?.activityType?.name === 'recordAudit')
      .map((a) => JSON.parse(Buffer.from(a?.input?.payloads?.[0]?.data ?? new Uint8Array()).toString('utf8')) as { runId?: string; seq: number });
    expect(inputs.map((i) => i.seq)).toEqual(final.audit.map((_, i) => i + 1));
    for (const i of inputs) expect(i.runId).toBe(runId);
    await saveHistory(handle, 'manual-two-operators');
  });
});

test('bug 4: when the merge fails, then the audit trail says so', async () => {
  const w = await stack.world({ hosts: nixos('g1') });
  await stack.withWorker(w, 'merge-fails-audited', async (taskQueue) => {
    // No such pull request: the merge fails before anything is deployed.
    const handle = await startDeployment(stack.t, w, taskQueue, { pr: 4242 });
    const s = await handle.result();
    expect(s.outcome).toBe('failed-not-rolled-back');
    expect(s.failure).toMatch(/^merge failed: /);
    expect(s.audit.map((a) => `${a.actor}:${a.action}`)).toEqual(['alice:deploy', 'alice:merge']);
    expect(s.audit[1]?.outcome).toBe(s.failure);
    await saveHistory(handle, 'merge-fails');
  });
});
