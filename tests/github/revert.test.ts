import { classifyGitHubError, revertBranchName, revertMerge, RevertConflictError } from '../../src/github';
import { LOCK_V1, LOCK_V2, mergedFlakeUpdate, OWNER, repoName, revertCommitsOnMain, startWorld } from './world';
import type { World } from './world';

let w: World;

beforeAll(async () => {
  w = await startWorld();
});

afterAll(async () => {
  await w.gh.stop();
});

afterEach(() => {
  // Every request the adapter made and every reply the stand-in gave matched GitHub's OpenAPI description.
  expect(w.gh.validationFailures).toEqual([]);
});

const base = { mode: 'commit' as const, reason: 'switch failed on hsb0, csb0', requestedBy: 'alice' };

describe('revertMerge (commit mode) against the git-backed stand-in', () => {
  test('restores only flake.lock on top of the head; a commit pushed after the merge survives', async () => {
    const repo = repoName('revert');
    const m = await mergedFlakeUpdate(w, repo);
    expect(await w.gh.readFile(OWNER, repo, 'main', 'flake.lock')).toBe(LOCK_V2);
    const later = await w.gh.pushCommit(OWNER, repo, 'main', { 'hosts/csb1.nix': '{ networking.hostName = "csb1"; }\n' }, 'Add csb1');

    const r = await revertMerge(w.octokit, { ...base, owner: OWNER, repo, branch: 'main', mergeSha: m.mergeSha, prNumber: m.number });

    expect(r).toMatchObject({ status: 'reverted', changedPaths: ['flake.lock'], restoredPaths: ['flake.lock'], fellBackToPullRequest: false, attempts: 1, baseHeadSha: later });
    const head = await w.gh.branchHead(OWNER, repo, 'main');
    expect(head).toBe(r.revertCommitSha);
    const [revert, previous] = await w.gh.log(OWNER, repo, 'main', 2);
    expect(revert?.parents).toEqual([later]);
    expect(previous?.sha).toBe(later);
    expect(revert?.message).toContain(`Reverts: ${m.mergeSha}`);
    expect(revert?.message).toContain('Reason: switch failed on hsb0, csb0');
    expect(revert?.message).toContain('Requested-by: alice');
    expect(revert?.subject).toBe(`Revert "Merge pull request #${m.number} from ${OWNER}/update-flake-lock"`);
    // Tree = the head's tree with only flake.lock restored.
    expect(await w.gh.readFile(OWNER, repo, 'main', 'flake.lock')).toBe(LOCK_V1);
    expect(await w.gh.readFile(OWNER, repo, 'main', 'hosts/csb1.nix')).toContain('csb1');
  });

  test('run twice: exactly one revert commit, the second run reports already-reverted and finds it', async () => {
    const repo = repoName('twice');
    const m = await mergedFlakeUpdate(w, repo);
    const commitsBefore = w.gh.countRequests('POST', new RegExp(`/repos/${OWNER}/${repo}/git/commits$`));
    const first = await revertMerge(w.octokit, { ...base, owner: OWNER, repo, branch: 'main', mergeSha: m.mergeSha });
    const second = await revertMerge(w.octokit, { ...base, owner: OWNER, repo, branch: 'main', mergeSha: m.mergeSha });
    expect(first.status).toBe('reverted');
    expect(second).toMatchObject({ status: 'already-reverted', revertedBy: first.revertCommitSha, restoredPaths: [] });
    expect(await revertCommitsOnMain(w, repo, m.mergeSha)).toEqual([first.revertCommitSha]);
    expect(w.gh.countRequests('POST', new RegExp(`/repos/${OWNER}/${repo}/git/commits$`)) - commitsBefore).toBe(1);
  });

  test('already reverted by hand (no trailer): reported, nothing written', async () => {
    const repo = repoName('byhand');
    const m = await mergedFlakeUpdate(w, repo);
    const manual = await w.gh.pushCommit(OWNER, repo, 'main', { 'flake.lock': LOCK_V1 }, 'Put the old lock back');
    const r = await revertMerge(w.octokit, { ...base, owner: OWNER, repo, branch: 'main', mergeSha: m.mergeSha });
    expect(r.status).toBe('already-reverted');
    expect(r.revertedBy).toBeUndefined();
    expect(await w.gh.branchHead(OWNER, repo, 'main')).toBe(manual);
  });

  test('flake.lock edited after the merge: non-retryable conflict naming the path, nothing written', async () => {
    const repo = repoName('conflict');
    const m = await mergedFlakeUpdate(w, repo);
    const edited = await w.gh.pushCommit(OWNER, repo, 'main', { 'flake.lock': LOCK_V2.replace('bbbb2222', 'cccc3333') }, 'Bump again');
    const err = await revertMerge(w.octokit, { ...base, owner: OWNER, repo, branch: 'main', mergeSha: m.mergeSha }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RevertConflictError);
    expect((err as RevertConflictError).paths).toEqual(['flake.lock']);
    expect((err as Error).message).toContain('flake.lock');
    expect(classifyGitHubError(err)).toMatchObject({ retryable: false, code: 'revert_conflict' });
    expect(await w.gh.branchHead(OWNER, repo, 'main')).toBe(edited);
  });

  test('a push lands between read and update (racePushOnce): 422 not-fast-forward for real, retried, one revert commit, raced commit survives', async () => {
    const repo = repoName('race');
    const m = await mergedFlakeUpdate(w, repo);
    w.gh.racePushOnce(OWNER, repo, 'main', { 'hosts/gpc0.nix': '{ }\n' }, 'Add gpc0 (concurrent)');
    const r = await revertMerge(w.octokit, { ...base, owner: OWNER, repo, branch: 'main', mergeSha: m.mergeSha });
    expect(r.status).toBe('reverted');
    expect(r.attempts).toBe(2);
    const patches = w.gh.requests.filter((q) => q.method === 'PATCH' && q.path === `/repos/${OWNER}/${repo}/git/refs/heads/main`);
    expect(patches.map((q) => q.status)).toEqual([422, 200]);
    expect(await revertCommitsOnMain(w, repo, m.mergeSha)).toEqual([r.revertCommitSha]);
    const [revert, raced] = await w.gh.log(OWNER, repo, 'main', 2);
    expect(raced?.subject).toBe('Add gpc0 (concurrent)');
    expect(revert?.parents).toEqual([raced?.sha]);
    expect(await w.gh.readFile(OWNER, repo, 'main', 'hosts/gpc0.nix')).toBe('{ }\n');
    expect(await w.gh.readFile(OWNER, repo, 'main', 'flake.lock')).toBe(LOCK_V1);
  });

  test('a file the merge added is deleted (sha: null), other merged files restored', async () => {
    const repo = repoName('added');
    const m = await mergedFlakeUpdate(w, repo, { extraFiles: { 'overlays/new.nix': 'final: prev: { }\n', 'hosts/hsb0.nix': '{ boot.x = 1; }\n' } });
    const r = await revertMerge(w.octokit, { ...base, owner: OWNER, repo, branch: 'main', mergeSha: m.mergeSha });
    expect(r.changedPaths).toEqual(['flake.lock', 'hosts/hsb0.nix', 'overlays/new.nix']);
    expect(await w.gh.readFile(OWNER, repo, 'main', 'overlays/new.nix')).toBeUndefined();
    expect(await w.gh.readFile(OWNER, repo, 'main', 'hosts/hsb0.nix')).toBe('{ }\n');
  });

  test('squash merge: reverted against its single parent', async () => {
    const repo = repoName('squash');
    const m = await mergedFlakeUpdate(w, repo, { method: 'squash' });
    expect((await w.gh.log(OWNER, repo, 'main', 1))[0]?.parents).toEqual([m.preMergeSha]);
    const r = await revertMerge(w.octokit, { ...base, owner: OWNER, repo, branch: 'main', mergeSha: m.mergeSha, prNumber: m.number, mergeMethod: 'squash' });
    expect(r.status).toBe('reverted');
    expect(await w.gh.readFile(OWNER, repo, 'main', 'flake.lock')).toBe(LOCK_V1);
  });

  test('rebase merge of two commits: walks back the commit count and restores both paths', async () => {
    const repo = repoName('rebase');
    const m = await mergedFlakeUpdate(w, repo, {
      method: 'rebase',
      commits: [
        { files: { 'flake.lock': LOCK_V2 }, message: 'flake.lock: Update nixpkgs' },
        { files: { 'hosts/hsb0.nix': '{ services.x = true; }\n' }, message: 'hsb0: enable x' },
      ],
    });
    const log = await w.gh.log(OWNER, repo, 'main', 3);
    expect(log.map((c) => c.subject)).toEqual(['hsb0: enable x', 'flake.lock: Update nixpkgs', 'Initial commit']);
    const r = await revertMerge(w.octokit, { ...base, owner: OWNER, repo, branch: 'main', mergeSha: m.mergeSha, prNumber: m.number, mergeMethod: 'rebase' });
    expect(r.changedPaths).toEqual(['flake.lock', 'hosts/hsb0.nix']);
    expect(await w.gh.readFile(OWNER, repo, 'main', 'flake.lock')).toBe(LOCK_V1);
    expect(await w.gh.readFile(OWNER, repo, 'main', 'hosts/hsb0.nix')).toBe('{ }\n');
  });

  test('same requestedAt: a retry whose first attempt died before the ref update rebuilds the identical commit', async () => {
    const repo = repoName('determ');
    const m = await mergedFlakeUpdate(w, repo);
    // First attempt: the PATCH fails with a 502 after the commit object was created.
    w.gh.inject({ operation: 'git/update-ref', status: 502, times: 1 });
    const args = { ...base, owner: OWNER, repo, branch: 'main', mergeSha: m.mergeSha, requestedAt: '2025-01-02T03:04:05Z' };
    const err = await revertMerge(w.octokit, args).catch((e: unknown) => e);
    expect(classifyGitHubError(err)).toMatchObject({ retryable: true, code: 'server_error', status: 502 });
    const r = await revertMerge(w.octokit, args);
    expect(r.status).toBe('reverted');
    const created = w.gh.requests.filter((q) => q.method === 'POST' && q.path === `/repos/${OWNER}/${repo}/git/commits`);
    expect(created).toHaveLength(2);
    expect(await revertCommitsOnMain(w, repo, m.mergeSha)).toEqual([r.revertCommitSha]);
  });
});

describe('revertMerge (pull-request mode and branch protection)', () => {
  test('protected branch: the direct push is refused (422) and a revert pull request is opened instead', async () => {
    const repo = repoName('protected');
    const m = await mergedFlakeUpdate(w, repo);
    w.gh.protectBranch(OWNER, repo, 'main');
    const head = await w.gh.branchHead(OWNER, repo, 'main');
    const r = await revertMerge(w.octokit, { ...base, owner: OWNER, repo, branch: 'main', mergeSha: m.mergeSha, prNumber: m.number });
    expect(r).toMatchObject({ status: 'pull-request-opened', fellBackToPullRequest: true });
    expect(r.fallbackReason).toMatch(/Protected branch update failed for refs\/heads\/main/);
    expect(r.pullRequest?.branch).toBe(revertBranchName(m.mergeSha));
    expect(await w.gh.branchHead(OWNER, repo, 'main')).toBe(head);
    const pulls = w.gh.pulls(OWNER, repo).filter((p) => p.headRef === revertBranchName(m.mergeSha));
    expect(pulls).toHaveLength(1);
    expect(pulls[0]?.body).toContain('switch failed on hsb0, csb0');
    expect(pulls[0]?.body).toContain('Protected branch update failed');
    expect(await w.gh.readFile(OWNER, repo, revertBranchName(m.mergeSha), 'flake.lock')).toBe(LOCK_V1);

    // Retried: reuses the open pull request, creates nothing.
    const commitsBefore = w.gh.countRequests('POST', new RegExp(`/repos/${OWNER}/${repo}/git/commits$`));
    const again = await revertMerge(w.octokit, { ...base, owner: OWNER, repo, branch: 'main', mergeSha: m.mergeSha, prNumber: m.number });
    expect(again).toMatchObject({ status: 'pull-request-opened', fellBackToPullRequest: true, pullRequest: { number: r.pullRequest?.number, reused: true } });
    expect(w.gh.countRequests('POST', new RegExp(`/repos/${OWNER}/${repo}/git/commits$`))).toBe(commitsBefore);
  });

  test('pull-request mode run twice: one branch, one pull request; merging it reverts, then already-reverted', async () => {
    const repo = repoName('prmode');
    const m = await mergedFlakeUpdate(w, repo);
    const later = await w.gh.pushCommit(OWNER, repo, 'main', { 'README.md': 'fleet\n' }, 'Docs');
    const args = { ...base, mode: 'pull-request' as const, owner: OWNER, repo, branch: 'main', mergeSha: m.mergeSha, prNumber: m.number };
    const first = await revertMerge(w.octokit, args);
    const second = await revertMerge(w.octokit, args);
    expect(first).toMatchObject({ status: 'pull-request-opened', fellBackToPullRequest: false, pullRequest: { reused: false } });
    expect(second).toMatchObject({ status: 'pull-request-opened', pullRequest: { number: first.pullRequest?.number, reused: true } });
    expect((await w.gh.branches(OWNER, repo)).filter((b) => b.startsWith('revert-'))).toEqual([revertBranchName(m.mergeSha)]);
    expect(w.gh.pulls(OWNER, repo).filter((p) => p.headRef.startsWith('revert-'))).toHaveLength(1);
    expect(w.gh.countRequests('POST', new RegExp(`/repos/${OWNER}/${repo}/pulls$`))).toBe(1);
    expect(w.gh.countRequests('POST', new RegExp(`/repos/${OWNER}/${repo}/git/refs$`))).toBe(1);
    expect(await w.gh.branchHead(OWNER, repo, 'main')).toBe(later);

    // A human merges the revert PR (guarded by its head sha); a later run reports already-reverted.
    const merged = await w.octokit.rest.pulls.merge({ owner: OWNER, repo, pull_number: first.pullRequest?.number as number, sha: first.revertCommitSha as string });
    expect(merged.data.merged).toBe(true);
    expect(await w.gh.readFile(OWNER, repo, 'main', 'flake.lock')).toBe(LOCK_V1);
    expect(await w.gh.readFile(OWNER, repo, 'main', 'README.md')).toBe('fleet\n');
    const third = await revertMerge(w.octokit, args);
    expect(third).toMatchObject({ status: 'already-reverted', revertedBy: first.revertCommitSha });
  });

  test('a revert branch left by a crashed attempt (no PR yet) is reused', async () => {
    const repo = repoName('leftover');
    const m = await mergedFlakeUpdate(w, repo);
    // First attempt dies on POST /pulls after creating the branch.
    w.gh.inject({ operation: 'pulls/create', status: 500, times: 1 });
    const args = { ...base, mode: 'pull-request' as const, owner: OWNER, repo, branch: 'main', mergeSha: m.mergeSha };
    await expect(revertMerge(w.octokit, args)).rejects.toMatchObject({ status: 500 });
    const r = await revertMerge(w.octokit, args);
    expect(r).toMatchObject({ status: 'pull-request-opened', pullRequest: { reused: true } });
    expect(w.gh.countRequests('POST', new RegExp(`/repos/${OWNER}/${repo}/git/commits$`))).toBe(1);
    expect(w.gh.pulls(OWNER, repo).filter((p) => p.headRef.startsWith('revert-'))).toHaveLength(1);
  });
});
