/**
 * Issue 14: after a halt the host rollbacks do not wait for the merge's revert. The revert is held
 * back on GitHub (a rate limit on its commit), and every host that moved is back on its recorded
 * generation while it is still pending; then the one revert lands, on top of the branch.
 */
import { fleetFlakeLock } from '../../testkit/fleet';
import { rollbackSignal, statusQuery } from '../../workflows/messages';
import { profileMoves, revertCommits, saveHistory, startDeployment, waitPhase, sagaHarness } from '../support/saga';
import { waitFor } from '../support/temporal';

const stack = sagaHarness();

test('when the third host fails and the revert is rate limited, then the hosts are rolled back before the revert lands, and one revert lands after', async () => {
  const w = await stack.world({ hosts: ['t1', 't2', 't3'].map((name) => ({ name, kind: 'nixos' as const, generations: [40, 41] })) });
  const before = Object.fromEntries(w.fleet.hosts.map((h) => [h.name, h.profileGeneration()]));
  const pr = await w.openLockUpdate('v2');
  w.fleet.host('t3').failActivation('units', { onlyVersion: 'v2' });
  // Only the revert creates a commit through the API (the merge is GitHub's own): its first try is
  // refused for 15 s, longer than three sequential rollbacks take here.
  w.github.inject({ operation: 'git/create-commit', status: 403, retryAfterSeconds: 15 });

  await stack.withWorker(w, 'b-speed-together', async (taskQueue) => {
    const handle = await startDeployment(stack.t, w, taskQueue, { pr: pr.number });
    const during = await waitFor(
      'every host that moved to be rolled back',
      async () => {
        const s = await handle.query(statusQuery);
        return s.hosts.every((h) => h.state === 'rolled-back') ? s : undefined;
      },
      90_000,
      100,
    );
    // The hosts did not wait for the revert: it is still held by the rate limit.
    expect(during.phase).toBe('compensating');
    expect(during.revert).toBeUndefined();
    expect(await revertCommits(w, during.mergeSha as string)).toEqual([]);
    for (const h of ['t1', 't2', 't3']) {
      expect(w.fleet.host(h).profileGeneration()).toEqual(before[h]);
      expect(w.fleet.host(h).currentSystem()).toBe(before[h]!.storePath);
      expect(profileMoves(w, h)).toMatchObject({ set: 1, switchGeneration: 1 });
    }

    const s = await waitPhase(handle, ['awaiting-operator']);
    expect(s.outcome).toBe('failed-rolled-back');
    const reverts = await revertCommits(w, s.mergeSha as string);
    expect(reverts).toHaveLength(1);
    expect(s.revert).toEqual({ kind: 'commit', commitSha: reverts[0], alreadyReverted: false });
    expect(await w.github.readFile(w.owner, w.repo, w.branch, 'flake.lock')).toBe(fleetFlakeLock({ version: 'v1' }));
    // One audit entry for both, as before: the hosts last deployed first, and the revert.
    const auto = s.audit.find((a) => a.action === 'auto-compensate');
    expect(auto).toMatchObject({ hosts: ['t3', 't2', 't1'], reverted: reverts[0] });
    await handle.signal(rollbackSignal, { action: 'dismiss', requestedBy: 'alice' });
    await handle.result();
    await saveHistory(handle, 'b-speed-compensate-together');
    await saveHistory(stack.t.client.workflow.getHandle(`${handle.workflowId}-wave-1`), 'b-speed-compensate-together-wave');
  });
});
