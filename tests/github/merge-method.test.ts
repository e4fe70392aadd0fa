/**
 * Issue 12 bug 6: merges and reverts that fit the repository. Against the git-backed stand-in, which
 * checks every request and reply against GitHub's OpenAPI description.
 *
 * - a pull request deployed with an approved head (`--pr N --head SHA`) must target the fleet's
 *   branch; a commit deploy's commit must be on it (refused before anything is merged, naming the field);
 * - the merge method comes from the fleet file (`repository.mergeMethod`) or the repository's allowed
 *   methods (allow_merge_commit, allow_squash_merge, allow_rebase_merge), so squash-only and
 *   rebase-only repositories can deploy;
 * - a pull request a human merged by rebase (several commits) is reverted whole, in one commit, and
 *   a revert that cannot tell what the pull request put on the branch fails loudly.
 */
import { ApplicationFailure } from '@temporalio/activity';
import fc from 'fast-check';
import pino from 'pino';
import { createActivities } from '../../activities';
import type { Activities } from '../../activities';
import type { RepoRef } from '../../src/domain/deployment';
import {
  allowedMergeMethods,
  chooseMergeMethod,
  classifyGitHubError,
  MERGE_METHODS,
  mergePullRequest,
  MergeMethodNotAllowedError,
  revertMerge,
  RevertUnsupportedError,
} from '../../src/github';
import type { MergeMethod, MergeSettings } from '../../src/github';
import { buildDeployInput, parseFleetFile } from '../../src/schemas/fleet.schema';
import { LOCK_V1, LOCK_V2, OWNER, repoName, revertCommitsOnMain, startWorld } from './world';
import type { World } from './world';

let w: World;
let act: Activities;
let close: () => Promise<void>;

beforeAll(async () => {
  w = await startWorld();
  const created = createActivities({ github: w.octokit, ssh: { privateKey: 'unused', knownHosts: '' }, logger: pino({ level: 'silent' }) });
  act = created.activities;
  close = created.close;
});

afterAll(async () => {
  await close();
  await w.gh.stop();
});

afterEach(() => {
  expect(w.gh.validationFailures).toEqual([]);
});

const FILES = { 'flake.nix': '{ outputs = _: { }; }\n', 'flake.lock': LOCK_V1, 'hosts/hsb0.nix': '{ }\n' };
const repoRef = (name: string, extra: Partial<RepoRef> = {}): RepoRef => ({ owner: OWNER, name, branch: 'main', ...extra });
const puts = (repo: string): number => w.gh.countRequests('PUT', new RegExp(`/repos/${OWNER}/${repo}/pulls/\\d+/merge$`));

/** What an activity threw, as Temporal sees it. */
async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

const THREE_COMMITS: Array<{ files: Record<string, string | null>; message: string }> = [
  { files: { 'flake.lock': LOCK_V2 }, message: 'flake.lock: Update nixpkgs' },
  { files: { 'hosts/hsb0.nix': '{ services.x = true; }\n' }, message: 'hsb0: enable x' },
  { files: { 'overlays/y.nix': 'final: prev: { }\n' }, message: 'overlay y' },
];

describe('the stand-in models the repository merge settings as GitHub does', () => {
  test('GET /repos/{o}/{r} reports allow_merge_commit, allow_squash_merge, allow_rebase_merge (all true by default)', async () => {
    const repo = repoName('settings');
    await w.gh.createRepo(OWNER, repo, { files: FILES });
    const before = (await w.octokit.rest.repos.get({ owner: OWNER, repo })).data;
    expect([before.allow_merge_commit, before.allow_squash_merge, before.allow_rebase_merge]).toEqual([true, true, true]);
    w.gh.setMergeSettings(OWNER, repo, { allowMergeCommit: false, allowRebaseMerge: false });
    const after = (await w.octokit.rest.repos.get({ owner: OWNER, repo })).data;
    expect([after.allow_merge_commit, after.allow_squash_merge, after.allow_rebase_merge]).toEqual([false, true, false]);
    // GitHub keeps at least one merge button.
    expect(() => w.gh.setMergeSettings(OWNER, repo, { allowSquashMerge: false })).toThrow(/at least one/);
  });

  test('a disallowed method is refused with 405 and GitHub\'s message; nothing merged; the allowed one merges', async () => {
    const repo = repoName('refuse405');
    await w.gh.createRepo(OWNER, repo, { files: FILES });
    w.gh.setMergeSettings(OWNER, repo, { allowMergeCommit: false, allowSquashMerge: false });
    const pr = await w.gh.openPullRequest(OWNER, repo, { title: 'flake.lock: Update', headBranch: 'update', files: { 'flake.lock': LOCK_V2 } });
    const mainBefore = await w.gh.branchHead(OWNER, repo, 'main');
    for (const [method, message] of [
      ['merge', 'Merge commits are not allowed on this repository.'],
      ['squash', 'Squash merges are not allowed on this repository.'],
    ] as const) {
      const err = (await w.octokit.rest.pulls.merge({ owner: OWNER, repo, pull_number: pr.number, merge_method: method }).catch((e: unknown) => e)) as { status: number; response: { data: { message: string } } };
      expect(err.status).toBe(405);
      expect(err.response.data.message).toBe(message);
    }
    // Without merge_method GitHub merges with a merge commit: refused here too.
    const dflt = (await w.octokit.rest.pulls.merge({ owner: OWNER, repo, pull_number: pr.number }).catch((e: unknown) => e)) as { status: number };
    expect(dflt.status).toBe(405);
    expect(await w.gh.branchHead(OWNER, repo, 'main')).toBe(mainBefore);
    expect((await w.octokit.rest.pulls.get({ owner: OWNER, repo, pull_number: pr.number })).data.merged).toBe(false);
    await w.octokit.rest.pulls.merge({ owner: OWNER, repo, pull_number: pr.number, merge_method: 'rebase' });
    expect(await w.gh.readFile(OWNER, repo, 'main', 'flake.lock')).toBe(LOCK_V2);
  });

  test('mergePullRequest maps the 405 onto a permanent MergeMethodNotAllowedError', async () => {
    const repo = repoName('adapter405');
    await w.gh.createRepo(OWNER, repo, { files: FILES });
    w.gh.setMergeSettings(OWNER, repo, { allowMergeCommit: false });
    const pr = await w.gh.openPullRequest(OWNER, repo, { title: 'flake.lock: Update', headBranch: 'update', files: { 'flake.lock': LOCK_V2 } });
    const err = await mergePullRequest(w.octokit, { owner: OWNER, repo, number: pr.number, expectedHeadSha: pr.headSha, method: 'merge' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MergeMethodNotAllowedError);
    expect((err as Error).message).toContain('Merge commits are not allowed on this repository.');
    expect(classifyGitHubError(err)).toMatchObject({ retryable: false, code: 'merge_method_not_allowed' });
  });

  test('pulls/{n}/commits lists the pull request\'s own commits, oldest first, unchanged by its rebase merge', async () => {
    const repo = repoName('prcommits');
    await w.gh.createRepo(OWNER, repo, { files: FILES });
    const pr = await w.gh.openPullRequest(OWNER, repo, { title: 'three', headBranch: 'three', commits: THREE_COMMITS });
    const list = async (): Promise<string[]> => (await w.octokit.rest.pulls.listCommits({ owner: OWNER, repo, pull_number: pr.number })).data.map((c) => c.commit.message.trim());
    expect(await list()).toEqual(THREE_COMMITS.map((c) => c.message));
    await w.octokit.rest.pulls.merge({ owner: OWNER, repo, pull_number: pr.number, merge_method: 'rebase' });
    expect(await list()).toEqual(THREE_COMMITS.map((c) => c.message));
  });

  test('compare branch...sha: behind for a commit on the branch, identical for its head, diverged for another branch\'s', async () => {
    const repo = repoName('compare');
    const first = await w.gh.createRepo(OWNER, repo, { files: FILES });
    const head = await w.gh.pushCommit(OWNER, repo, 'main', { 'a.txt': 'a\n' }, 'a');
    const other = await w.gh.pushCommit(OWNER, repo, 'staging', { 'b.txt': 'b\n' }, 'b', { from: first });
    const status = async (sha: string): Promise<string> => (await w.octokit.rest.repos.compareCommits({ owner: OWNER, repo, base: 'main', head: sha })).data.status;
    expect(await status(first)).toBe('behind');
    expect(await status(head)).toBe('identical');
    expect(await status(other)).toBe('diverged');
    const ahead = (await w.octokit.rest.repos.compareCommits({ owner: OWNER, repo, base: first, head: 'main' })).data;
    expect(ahead).toMatchObject({ status: 'ahead', ahead_by: 1, behind_by: 0, total_commits: 1 });
    expect(ahead.files?.map((f) => [f.filename, f.status])).toEqual([['a.txt', 'added']]);
  });
});

describe('chooseMergeMethod (pure)', () => {
  test('the fleet file\'s method when allowed; else the first allowed of merge, squash, rebase', () => {
    expect(chooseMergeMethod(undefined, {})).toEqual({ ok: true, method: 'merge', source: 'repository' });
    expect(chooseMergeMethod(undefined, { allowMergeCommit: false })).toEqual({ ok: true, method: 'squash', source: 'repository' });
    expect(chooseMergeMethod(undefined, { allowMergeCommit: false, allowSquashMerge: false })).toEqual({ ok: true, method: 'rebase', source: 'repository' });
    expect(chooseMergeMethod('rebase', {})).toEqual({ ok: true, method: 'rebase', source: 'fleet' });
    const refused = chooseMergeMethod('merge', { allowMergeCommit: false, allowSquashMerge: true, allowRebaseMerge: false });
    expect(refused).toEqual({ ok: false, error: 'repository.mergeMethod: the repository does not allow merge merges (allowed: squash)' });
  });

  test('property: a chosen method is never one the repository forbids; the configured one is chosen exactly when allowed', () => {
    const flag = fc.option(fc.boolean(), { nil: undefined });
    const settings = fc.record({ allowMergeCommit: flag, allowSquashMerge: flag, allowRebaseMerge: flag }).map((s) => Object.fromEntries(Object.entries(s).filter(([, v]) => v !== undefined)) as MergeSettings);
    const configured = fc.option(fc.constantFrom<MergeMethod>(...MERGE_METHODS), { nil: undefined });
    fc.assert(
      fc.property(configured, settings, (c, s) => {
        const allowed = allowedMergeMethods(s);
        const r = chooseMergeMethod(c, s);
        if (r.ok) {
          expect(allowed).toContain(r.method);
          if (c !== undefined) expect(r.method).toBe(c);
          else expect(r.method).toBe(allowed[0]);
        } else {
          expect(c === undefined ? allowed.length === 0 : !allowed.includes(c)).toBe(true);
        }
        expect(r.ok).toBe(c === undefined ? allowed.length > 0 : allowed.includes(c));
      }),
    );
  });
});

describe('the fleet file\'s repository.mergeMethod', () => {
  const fleet = (mergeMethod?: string): string =>
    JSON.stringify({ repository: { owner: OWNER, name: 'fleet', ...(mergeMethod !== undefined ? { mergeMethod } : {}) }, hosts: [{ name: 'hsb0', address: '10.0.0.1', kind: 'nixos' }] });

  test('optional; when set it travels with the repository into the deployment input', () => {
    expect(buildDeployInput(parseFleetFile(fleet()), { pullRequest: 1 }, 'alice').repository).toEqual({ owner: OWNER, name: 'fleet', branch: 'main' });
    expect(buildDeployInput(parseFleetFile(fleet('squash')), { pullRequest: 1 }, 'alice').repository).toEqual({ owner: OWNER, name: 'fleet', branch: 'main', mergeMethod: 'squash' });
  });

  test('an unknown method is refused naming the field', () => {
    expect(() => parseFleetFile(fleet('fast-forward'))).toThrow(/^repository\.mergeMethod: /);
  });
});

describe('resolveChange: the change must belong to the fleet\'s branch', () => {
  test('--pr N --head SHA for a pull request into staging: refused naming the field, before any merge', async () => {
    const repo = repoName('head-staging');
    await w.gh.createRepo(OWNER, repo, { files: FILES });
    await w.gh.pushCommit(OWNER, repo, 'staging', { 'staging.txt': 's\n' }, 'staging', { from: (await w.gh.branchHead(OWNER, repo, 'main')) as string });
    const pr = await w.gh.openPullRequest(OWNER, repo, { title: 'flake.lock: Update', base: 'staging', headBranch: 'update', files: { 'flake.lock': LOCK_V2 } });
    const f = await failureOf(act.resolveChange({ deploymentId: 'd1', repository: repoRef(repo), change: { kind: 'pull-request', number: pr.number, expectedHeadSha: pr.headSha } }));
    expect(f.nonRetryable).toBe(true);
    expect(f.type).toBe('InvalidInput');
    expect(f.message).toBe(`change.pullRequest: pull request #${pr.number} targets staging, not main (the fleet's repository.branch)`);
    expect(puts(repo)).toBe(0);
    expect(w.gh.pulls(OWNER, repo)[0]?.merged).toBe(false);
  });

  test('a commit deploy: a commit on the branch resolves; a commit only on another branch is refused naming change.commit', async () => {
    const repo = repoName('commit-branch');
    const first = await w.gh.createRepo(OWNER, repo, { files: FILES });
    const onMain = await w.gh.pushCommit(OWNER, repo, 'main', { 'flake.lock': LOCK_V2 }, 'flake.lock: Update');
    const elsewhere = await w.gh.pushCommit(OWNER, repo, 'staging', { 'flake.lock': LOCK_V2.replace('bbbb', 'cccc') }, 'staging only', { from: first });
    await expect(act.resolveChange({ deploymentId: 'd2', repository: repoRef(repo), change: { kind: 'commit', sha: first } })).resolves.toEqual({ mergeSha: first, how: 'commit' });
    await expect(act.resolveChange({ deploymentId: 'd2', repository: repoRef(repo), change: { kind: 'commit', sha: onMain } })).resolves.toEqual({ mergeSha: onMain, how: 'commit' });
    const f = await failureOf(act.resolveChange({ deploymentId: 'd3', repository: repoRef(repo), change: { kind: 'commit', sha: elsewhere } }));
    expect(f).toMatchObject({ type: 'InvalidInput', nonRetryable: true });
    expect(f.message).toBe(`change.commit: commit ${elsewhere} is not on main (the fleet's repository.branch)`);
  });
});

describe('resolveChange: the merge method fits the repository', () => {
  test('squash-only repository: merged by squash (one commit on top of main)', async () => {
    const repo = repoName('squash-only');
    const first = await w.gh.createRepo(OWNER, repo, { files: FILES });
    w.gh.setMergeSettings(OWNER, repo, { allowMergeCommit: false, allowRebaseMerge: false });
    const pr = await w.gh.openPullRequest(OWNER, repo, { title: 'flake.lock: Update', headBranch: 'update', commits: THREE_COMMITS.slice(0, 2) });
    const r = await act.resolveChange({ deploymentId: 'd4', repository: repoRef(repo), change: { kind: 'pull-request', number: pr.number } });
    expect(r).toMatchObject({ pullRequest: pr.number, how: 'merged-now' });
    const [top] = await w.gh.log(OWNER, repo, 'main', 1);
    expect(top?.sha).toBe(r.mergeSha);
    expect(top?.parents).toEqual([first]);
    expect(top?.subject).toBe(`flake.lock: Update (#${pr.number}) (deployed by NixFleet: d4)`);
    expect(await w.gh.readFile(OWNER, repo, 'main', 'flake.lock')).toBe(LOCK_V2);
  });

  test('rebase-only repository: merged by rebase; the revert then takes back every rebased commit, once', async () => {
    const repo = repoName('rebase-only');
    const first = await w.gh.createRepo(OWNER, repo, { files: FILES });
    w.gh.setMergeSettings(OWNER, repo, { allowMergeCommit: false, allowSquashMerge: false });
    const pr = await w.gh.openPullRequest(OWNER, repo, { title: 'flake.lock: Update', headBranch: 'update', commits: THREE_COMMITS });
    const r = await act.resolveChange({ deploymentId: 'd5', repository: repoRef(repo), change: { kind: 'pull-request', number: pr.number, expectedHeadSha: pr.headSha } });
    expect(r.how).toBe('merged-now');
    const log = await w.gh.log(OWNER, repo, 'main', 4);
    expect(log.map((c) => c.subject)).toEqual(['overlay y', 'hsb0: enable x', 'flake.lock: Update nixpkgs', 'Initial commit']);
    expect(log[3]?.sha).toBe(first);
    const revert = { deploymentId: 'd5', repository: repoRef(repo), mergeSha: r.mergeSha, pullRequest: pr.number, mode: 'commit' as const, reason: 'hsb0 failed', requestedBy: 'alice', requestedAt: '2026-12-01T23:00:00Z' };
    const out = await act.revertMerge(revert);
    expect(out).toMatchObject({ kind: 'commit', alreadyReverted: false });
    expect(await w.gh.readFile(OWNER, repo, 'main', 'flake.lock')).toBe(LOCK_V1);
    expect(await w.gh.readFile(OWNER, repo, 'main', 'hosts/hsb0.nix')).toBe('{ }\n');
    expect(await w.gh.readFile(OWNER, repo, 'main', 'overlays/y.nix')).toBeUndefined();
    // Run again (a retried activity): the same commit, found through its trailer.
    const again = await act.revertMerge(revert);
    expect(again).toEqual({ kind: 'commit', commitSha: out.kind === 'commit' ? out.commitSha : '', alreadyReverted: true });
    expect(await revertCommitsOnMain(w, repo, r.mergeSha)).toHaveLength(1);
  });

  test('the fleet file asks for a method the repository forbids: refused naming repository.mergeMethod, nothing merged', async () => {
    const repo = repoName('forbidden');
    await w.gh.createRepo(OWNER, repo, { files: FILES });
    w.gh.setMergeSettings(OWNER, repo, { allowMergeCommit: false });
    const pr = await w.gh.openPullRequest(OWNER, repo, { title: 'flake.lock: Update', headBranch: 'update', files: { 'flake.lock': LOCK_V2 } });
    const f = await failureOf(act.resolveChange({ deploymentId: 'd6', repository: repoRef(repo, { mergeMethod: 'merge' }), change: { kind: 'pull-request', number: pr.number } }));
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toContain('repository.mergeMethod: the repository does not allow merge merges (allowed: squash, rebase)');
    expect(puts(repo)).toBe(0);
  });

  test('the fleet file\'s method is used when allowed (rebase on a repository that allows all)', async () => {
    const repo = repoName('fleet-rebase');
    const first = await w.gh.createRepo(OWNER, repo, { files: FILES });
    const pr = await w.gh.openPullRequest(OWNER, repo, { title: 'flake.lock: Update', headBranch: 'update', files: { 'flake.lock': LOCK_V2 } });
    const r = await act.resolveChange({ deploymentId: 'd7', repository: repoRef(repo, { mergeMethod: 'rebase' }), change: { kind: 'pull-request', number: pr.number } });
    const [top] = await w.gh.log(OWNER, repo, 'main', 1);
    expect(top).toMatchObject({ sha: r.mergeSha, parents: [first], subject: 'flake.lock: Update' });
  });
});

describe('revertMerge reverts what the pull request actually put on the branch', () => {
  const base = { mode: 'commit' as const, reason: 'switch failed on hsb0', requestedBy: 'alice' };

  test('a human merged it by rebase (three commits): all three undone in one revert commit; run twice, still one', async () => {
    const repo = repoName('human-rebase');
    await w.gh.createRepo(OWNER, repo, { files: FILES });
    const pr = await w.gh.openPullRequest(OWNER, repo, { title: 'flake.lock: Update', headBranch: 'update', commits: THREE_COMMITS });
    const { data } = await w.octokit.rest.pulls.merge({ owner: OWNER, repo, pull_number: pr.number, merge_method: 'rebase' });
    const later = await w.gh.pushCommit(OWNER, repo, 'main', { 'hosts/csb1.nix': '{ }\n' }, 'Add csb1');
    // The deployer does not say how it was merged (it did not merge it).
    const args = { ...base, owner: OWNER, repo, branch: 'main', mergeSha: data.sha, prNumber: pr.number };
    const r = await revertMerge(w.octokit, args);
    expect(r.status).toBe('reverted');
    expect(r.merged).toMatchObject({ how: 'rebase' });
    expect(r.merged?.commits).toHaveLength(3);
    expect(r.changedPaths).toEqual(['flake.lock', 'hosts/hsb0.nix', 'overlays/y.nix']);
    expect(await w.gh.readFile(OWNER, repo, 'main', 'flake.lock')).toBe(LOCK_V1);
    expect(await w.gh.readFile(OWNER, repo, 'main', 'hosts/hsb0.nix')).toBe('{ }\n');
    expect(await w.gh.readFile(OWNER, repo, 'main', 'overlays/y.nix')).toBeUndefined();
    expect(await w.gh.readFile(OWNER, repo, 'main', 'hosts/csb1.nix')).toBe('{ }\n');
    const [revert] = await w.gh.log(OWNER, repo, 'main', 1);
    expect(revert?.parents).toEqual([later]);
    expect(revert?.message).toContain('as 3 commits');
    const again = await revertMerge(w.octokit, args);
    expect(again).toMatchObject({ status: 'already-reverted', revertedBy: r.revertCommitSha });
    expect(await revertCommitsOnMain(w, repo, data.sha)).toEqual([r.revertCommitSha]);
  });

  test('a human squashed a two-commit pull request while the worker is set to rebase: only the squash commit is undone', async () => {
    const repo = repoName('human-squash');
    await w.gh.createRepo(OWNER, repo, { files: FILES });
    const unrelated = await w.gh.pushCommit(OWNER, repo, 'main', { 'hosts/gpc0.nix': '{ }\n' }, 'Add gpc0');
    const pr = await w.gh.openPullRequest(OWNER, repo, { title: 'flake.lock: Update', headBranch: 'update', commits: THREE_COMMITS.slice(0, 2) });
    const { data } = await w.octokit.rest.pulls.merge({ owner: OWNER, repo, pull_number: pr.number, merge_method: 'squash' });
    const r = await revertMerge(w.octokit, { ...base, owner: OWNER, repo, branch: 'main', mergeSha: data.sha, prNumber: pr.number, mergeMethod: 'rebase' });
    expect(r.merged).toEqual({ how: 'squash', base: unrelated, commits: [data.sha] });
    expect(r.changedPaths).toEqual(['flake.lock', 'hosts/hsb0.nix']);
    expect(await w.gh.readFile(OWNER, repo, 'main', 'hosts/gpc0.nix')).toBe('{ }\n');
  });

  test('a pull request with main merged into it, merged by rebase: the merge commit is dropped on the branch, and all its own commits are reverted', async () => {
    const repo = repoName('rebase-with-merge');
    await w.gh.createRepo(OWNER, repo, { files: FILES });
    const pr = await w.gh.openPullRequest(OWNER, repo, { title: 'flake.lock: Update', headBranch: 'update', commits: THREE_COMMITS.slice(0, 2) });
    const onMain = await w.gh.pushCommit(OWNER, repo, 'main', { 'hosts/gpc0.nix': '{ }\n' }, 'Add gpc0');
    // The author brings main into the branch with a merge commit (the pull request's newest commit).
    const tree = await w.octokit.rest.git.createTree({ owner: OWNER, repo, base_tree: pr.headSha, tree: [{ path: 'hosts/gpc0.nix', mode: '100644', type: 'blob', content: '{ }\n' }] });
    const merge = await w.octokit.rest.git.createCommit({ owner: OWNER, repo, message: "Merge branch 'main' into update", tree: tree.data.sha, parents: [pr.headSha, onMain] });
    await w.octokit.rest.git.updateRef({ owner: OWNER, repo, ref: 'heads/update', sha: merge.data.sha });
    const { data: listed } = await w.octokit.rest.pulls.listCommits({ owner: OWNER, repo, pull_number: pr.number });
    expect(listed.map((c) => c.parents.length)).toEqual([1, 1, 2]);
    const { data } = await w.octokit.rest.pulls.merge({ owner: OWNER, repo, pull_number: pr.number, merge_method: 'rebase' });
    const r = await revertMerge(w.octokit, { ...base, owner: OWNER, repo, branch: 'main', mergeSha: data.sha, prNumber: pr.number });
    expect(r.status).toBe('reverted');
    expect(r.merged).toMatchObject({ how: 'rebase', base: onMain });
    expect(r.merged?.commits).toHaveLength(2);
    expect(r.changedPaths).toEqual(['flake.lock', 'hosts/hsb0.nix']);
    expect(await w.gh.readFile(OWNER, repo, 'main', 'flake.lock')).toBe(LOCK_V1);
    expect(await w.gh.readFile(OWNER, repo, 'main', 'hosts/gpc0.nix')).toBe('{ }\n');
  });

  test('the merge is no longer on the branch (history rewritten by a force push): the revert fails loudly, nothing pushed', async () => {
    const repo = repoName('rewritten');
    const first = await w.gh.createRepo(OWNER, repo, { files: FILES });
    const pr = await w.gh.openPullRequest(OWNER, repo, { title: 'flake.lock: Update', headBranch: 'update', commits: THREE_COMMITS });
    const { data } = await w.octokit.rest.pulls.merge({ owner: OWNER, repo, pull_number: pr.number, merge_method: 'rebase' });
    await w.gh.forcePush(OWNER, repo, 'main', first);
    const rewritten = await w.gh.pushCommit(OWNER, repo, 'main', { 'flake.lock': LOCK_V2 }, 'flake.lock: Update (re-applied by hand)');
    const err = await revertMerge(w.octokit, { ...base, owner: OWNER, repo, branch: 'main', mergeSha: data.sha, prNumber: pr.number }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RevertUnsupportedError);
    expect((err as Error).message).toContain('is no longer on main');
    expect(classifyGitHubError(err)).toMatchObject({ retryable: false, code: 'revert_unsupported' });
    expect(await w.gh.branchHead(OWNER, repo, 'main')).toBe(rewritten);
    // Through the activity: a permanent failure (the workflow reports the revert failed), not "reverted".
    const f = await failureOf(act.revertMerge({ deploymentId: 'd8', repository: repoRef(repo), mergeSha: data.sha, pullRequest: pr.number, mode: 'commit', reason: 'x', requestedBy: 'alice', requestedAt: '2026-12-01T23:00:00Z' }));
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toContain('revert_unsupported');
  });
});
