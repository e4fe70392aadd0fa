/**
 * The deploy saga authenticated as a GitHub App on the real stack (Temporal dev server, stand-in
 * hosts, GitHub stand-in): installation tokens that live 3 seconds are renewed during the deployment,
 * and the revert is GitHub's own commit (the app's [bot], signed) on a branch that requires signed
 * commits.
 */
import { createGitHub } from '../../src/github';
import { fleetFlakeLock } from '../../testkit/fleet';
import { rollbackSignal } from '../../workflows/messages';
import { revertCommits, sagaHarness, startDeployment, waitPhase } from '../support/saga';
import { waitFor } from '../support/temporal';

const stack = sagaHarness();

test('as a GitHub App: a failed deployment reverts with a signed commit by the app, renewing its short-lived tokens without a 401', async () => {
  const w = await stack.world({ hosts: ['a1', 'a2'].map((name) => ({ name, kind: 'nixos' as const, generations: [10, 11] })), githubApp: { tokenTtlSeconds: 3 } });
  expect(w.app).toBeDefined();
  w.github.requireSignedCommits(w.owner, w.repo, w.branch);
  const pr = await w.openLockUpdate('v2');
  w.fleet.host('a2').failActivation('units', { onlyVersion: 'v2' });
  // a1 holds its activation until the token used for the merge has expired.
  w.fleet.host('a1').hangActivation(true);

  await stack.withWorker(w, 'github-app', async (taskQueue) => {
    const handle = await startDeployment(stack.t, w, taskQueue, { pr: pr.number });
    await waitFor('a1 activation to start', () => (w.fleet.host('a1').commandLog().some((e) => e.tool === 'hang') ? true : undefined), 90_000);
    const issuedAtMerge = w.github.appTokens.issued;
    expect(issuedAtMerge).toBeGreaterThanOrEqual(1);
    const firstExpiry = w.github.appTokens.lastExpiresAt;
    await waitFor('the installation token of the merge to expire', () => (Date.now() > firstExpiry ? true : undefined), 20_000, 100);
    w.fleet.host('a1').hangActivation(false);

    const s = await waitPhase(handle, ['awaiting-operator']);
    expect(s.failedHost).toBe('a2');
    expect(s.outcome).toBe('failed-rolled-back');
    const mergeSha = s.mergeSha as string;

    // One revert commit, made by GitHub for the app (no synthetic author), signed, accepted by the branch.
    const reverts = await revertCommits(w, mergeSha);
    expect(reverts).toHaveLength(1);
    expect(s.revert).toEqual({ kind: 'commit', commitSha: reverts[0], alreadyReverted: false });
    const [head] = await w.github.log(w.owner, w.repo, w.branch, 1);
    expect(head?.sha).toBe(reverts[0]);
    expect(await w.github.readFile(w.owner, w.repo, w.branch, 'flake.lock')).toBe(fleetFlakeLock({ version: 'v1' }));

    // The revert needed a new token; none of the adapter's requests met an expired one.
    expect(w.github.appTokens.issued).toBeGreaterThan(issuedAtMerge);
    expect(w.github.appTokens.refusedExpired).toBe(0);
    expect(w.github.requests.filter((r) => r.status === 401)).toEqual([]);

    // Read as the app, through its own token exchange (after the counts above).
    const { data: commit } = await createGitHub({ baseUrl: w.github.baseUrl, app: w.app! }).rest.git.getCommit({ owner: w.owner, repo: w.repo, commit_sha: reverts[0]! });
    expect(commit.author.name).toBe('nixfleet-deployer[bot]');
    expect(commit.committer.name).toBe('nixfleet-deployer[bot]');
    expect(commit.verification).toMatchObject({ verified: true });

    await handle.signal(rollbackSignal, { action: 'dismiss', requestedBy: 'alice' });
    await handle.result();
  });
});
