/**
 * The deploy saga on the real stack: Temporal dev server, stand-in sshd + Nix hosts that build the
 * fleet flake from the GitHub stand-in over git smart HTTP, and the real activities.
 */
import { MemoryAuditStore } from '../../src/audit/memory-audit-store';
import { deploymentCurrentDetails } from '../../src/domain/presentation';
import { fleetFlakeLock } from '../../testkit/fleet';
import { rollbackSignal } from '../../workflows/messages';
import { logins, profileMoves, revertCommits, saveHistory, startDeployment, waitPhase, sagaHarness } from '../support/saga';
import { waitFor } from '../support/temporal';

const stack = sagaHarness();

test('when host 3 of 5 fails, then 4 and 5 are never contacted, one revert restores only flake.lock, and 1-3 are back on their recorded generations', async () => {
  const w = (await stack.world({ hosts: ['n1', 'n2', 'n3', 'n4', 'n5'].map((name) => ({ name, kind: 'nixos' as const, generations: [40, 41, 42] })) }));
  const before = Object.fromEntries(w.fleet.hosts.map((h) => [h.name, h.profileGeneration()]));
  const pr = await w.openLockUpdate('v2');
  w.fleet.host('n3').failActivation('units', { onlyVersion: 'v2' });
  // n1 holds its activation until a human has pushed to main after the merge.
  w.fleet.host('n1').hangActivation(true);
  const auditLog = new MemoryAuditStore();

  await stack.withWorker(w, 'five-hosts', async (taskQueue) => {
    const handle = await startDeployment(stack.t, w, taskQueue, { pr: pr.number });
    await waitFor('n1 activation to start', () => (w.fleet.host('n1').commandLog().some((e) => e.tool === 'hang') ? true : undefined));
    const afterMerge = await w.github.pushCommit(w.owner, w.repo, w.branch, { 'docs/after-merge.md': 'pushed after the merge\n' }, 'docs: a commit that lands after the merge');
    w.fleet.host('n1').hangActivation(false);

    const s = await waitPhase(handle, ['awaiting-operator']);
    const mergeSha = s.mergeSha as string;
    expect(s.failedHost).toBe('n3');
    expect(s.hosts.map((h) => `${h.name}:${h.state}`)).toEqual(['n1:rolled-back', 'n2:rolled-back', 'n3:rolled-back', 'n4:not-attempted', 'n5:not-attempted']);
    expect(s.hosts[2]).toMatchObject({ profileMoved: true });
    expect(s.outcome).toBe('failed-rolled-back');
    // Temporal Web's current details (the metadata query): set at the last transition, from the same status.
    const details = async (): Promise<string | undefined> => (await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata')).currentDetails;
    expect(await details()).toBe(deploymentCurrentDetails(s));
    expect(await details()).toMatch(/^awaiting-operator · failed-rolled-back · 0\/5 switched, 3 rolled-back, 2 not-attempted · halted at n3 · merge [0-9a-f]{7,}$/);

    // Hosts 4 and 5 were never contacted.
    for (const h of ['n4', 'n5']) {
      expect(logins(w, h)).toBe(0);
      expect(w.fleet.host(h).commandLog()).toEqual([]);
      expect(w.fleet.host(h).profileGeneration()).toEqual(before[h]);
    }
    // Hosts 1-3 are on their exact recorded generations, activated.
    for (const h of ['n1', 'n2', 'n3']) {
      const host = w.fleet.host(h);
      expect(host.profileGeneration()).toEqual(before[h]);
      expect(host.currentSystem()).toBe(before[h]!.storePath);
      expect(s.hosts.find((x) => x.name === h)?.before).toEqual(before[h]);
      // Where the rollback landed: the recorded generation itself (its link was still there).
      expect(s.hosts.find((x) => x.name === h)?.now).toEqual(before[h]);
      // One switch, one pinned rollback: never a relative --rollback.
      expect(profileMoves(w, h)).toMatchObject({ set: 1, switchGeneration: 1 });
      expect(host.commandLog().some((e) => e.args.includes('--rollback'))).toBe(false);
    }

    // Exactly one revert commit, on top of the commit pushed after the merge, restoring only flake.lock.
    const reverts = await revertCommits(w, mergeSha);
    expect(reverts).toHaveLength(1);
    expect(s.revert).toEqual({ kind: 'commit', commitSha: reverts[0], alreadyReverted: false });
    const [head] = await w.github.log(w.owner, w.repo, w.branch, 1);
    expect(head?.sha).toBe(reverts[0]);
    expect(head?.parents).toEqual([afterMerge]);
    expect(await w.github.readFile(w.owner, w.repo, w.branch, 'flake.lock')).toBe(fleetFlakeLock({ version: 'v1' }));
    expect(await w.github.readFile(w.owner, w.repo, w.branch, 'docs/after-merge.md')).toBe('pushed after the merge\n');
    expect(w.github.countRequests('POST', /\/git\/commits$/)).toBe(1);

    await handle.signal(rollbackSignal, { action: 'dismiss', requestedBy: 'alice' });
    const final = await handle.result();
    expect(final.audit.map((a) => a.action)).toEqual(['deploy', 'merge', 'auto-compensate', 'dismiss']);
    // Closed: the query replays the history, and the details are those of the close.
    expect(await details()).toBe(deploymentCurrentDetails(final));
    expect(await details()).toMatch(/^closed · failed-rolled-back · /);
    // The same trail reached the durable audit log, once each.
    const stored = await auditLog.list({ deploymentId: handle.workflowId });
    expect(stored.map((r) => [r.seq, r.actor, r.action, r.reverted])).toEqual(final.audit.map((a, i) => [i + 1, a.actor, a.action, a.reverted]));
    expect(stored[2]).toMatchObject({ repository: `${w.owner}/${w.repo}`, hosts: ['n3', 'n2', 'n1'], reverted: reverts[0] });
    await saveHistory(handle, 'five-hosts-third-fails');
    await saveHistory(stack.t.client.workflow.getHandle(`${handle.workflowId}-wave-1`), 'five-hosts-third-fails-wave');
  }, { audit: auditLog });
});

type Policy = { revert: 'off' | 'commit' | 'pull-request'; rollbackHosts: boolean };
test.each<[Policy]>([
  [{ revert: 'off', rollbackHosts: false }],
  [{ revert: 'off', rollbackHosts: true }],
  [{ revert: 'commit', rollbackHosts: false }],
  [{ revert: 'commit', rollbackHosts: true }],
  [{ revert: 'pull-request', rollbackHosts: false }],
  [{ revert: 'pull-request', rollbackHosts: true }],
])('policy %j: the revert and the rollbacks follow the policy', async (policy) => {
  const w = (await stack.world({ hosts: [{ name: 'p1', kind: 'nixos' }, { name: 'p2', kind: 'nixos' }] }));
  const before = { p1: w.fleet.host('p1').profileGeneration(), p2: w.fleet.host('p2').profileGeneration() };
  const pr = await w.openLockUpdate('v2');
  w.fleet.host('p2').failActivation('script', { onlyVersion: 'v2' });
  await stack.withWorker(w, `policy-${policy.revert}-${policy.rollbackHosts}`, async (taskQueue) => {
    const handle = await startDeployment(stack.t, w, taskQueue, { pr: pr.number, onFailure: policy, manualWindowSeconds: 0 });
    const s = await handle.result();
    const mergeSha = s.mergeSha as string;
    const lock = await w.github.readFile(w.owner, w.repo, w.branch, 'flake.lock');
    const pulls = w.github.pulls(w.owner, w.repo).filter((p) => p.number !== pr.number);
    if (policy.revert === 'off') {
      expect(s.revert).toBeUndefined();
      expect(lock).toBe(fleetFlakeLock({ version: 'v2' }));
      expect(pulls).toHaveLength(0);
    } else if (policy.revert === 'commit') {
      expect(await revertCommits(w, mergeSha)).toHaveLength(1);
      expect(lock).toBe(fleetFlakeLock({ version: 'v1' }));
      expect(pulls).toHaveLength(0);
    } else {
      expect(s.revert).toMatchObject({ kind: 'pull-request', fellBackFromProtectedBranch: false });
      expect(lock).toBe(fleetFlakeLock({ version: 'v2' }));
      expect(pulls).toHaveLength(1);
      expect(s.revert?.kind === 'pull-request' && s.revert.url).toContain(`/pull/${pulls[0]?.number}`);
    }
    for (const h of ['p1', 'p2'] as const) {
      const g = w.fleet.host(h).profileGeneration();
      if (policy.rollbackHosts) {
        expect(g).toEqual(before[h]);
        expect(w.fleet.host(h).currentSystem()).toBe(before[h].storePath);
      } else {
        expect(g.number).toBe(before[h].number + 1);
      }
    }
    expect(s.hosts.map((h) => h.state)).toEqual(policy.rollbackHosts ? ['rolled-back', 'rolled-back'] : ['switched', 'failed']);
    expect(s.outcome).toBe(policy.rollbackHosts ? 'failed-rolled-back' : 'failed-not-rolled-back');
    if (policy.revert === 'commit' && policy.rollbackHosts) await saveHistory(handle, 'policy-commit-rollback');
  });
});

test('a Home Manager host is switched and rolled back to its recorded store path', async () => {
  const w = (await stack.world({
    hosts: [
      { name: 'desk', kind: 'nixos' },
      { name: 'alice-hm', kind: 'home-manager', generations: [7, 8, 9] },
      { name: 'srv', kind: 'nixos' },
    ],
  }));
  const hmBefore = w.fleet.host('alice-hm').profileGeneration();
  const pr = await w.openLockUpdate('v2');
  w.fleet.host('srv').failActivation('units', { onlyVersion: 'v2' });
  await stack.withWorker(w, 'home-manager', async (taskQueue) => {
    const handle = await startDeployment(stack.t, w, taskQueue, { pr: pr.number, manualWindowSeconds: 0 });
    const s = await handle.result();
    const hm = s.hosts.find((h) => h.name === 'alice-hm');
    expect(hm).toMatchObject({ state: 'rolled-back', before: hmBefore });
    expect(hm?.after?.storePath).not.toBe(hmBefore.storePath);
    // Home Manager rolls back by activating the recorded store path, which makes a NEW generation.
    const now = w.fleet.host('alice-hm').profileGeneration();
    expect(now.storePath).toBe(hmBefore.storePath);
    expect(now.number).toBe(hmBefore.number + 2);
    expect(w.fleet.host('alice-hm').currentSystem()).toBe(hmBefore.storePath);
    await saveHistory(handle, 'home-manager');
  });
});
