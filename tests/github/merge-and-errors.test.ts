import { classifyGitHubError, createGitHub, getPullRequest, mergePullRequest, MergedHeadMismatchError, MergeHeadMovedError, NotMergeableError } from '../../src/github';
import type { AdapterLogger } from '../../src/github';
import { startGitHubStandin } from '../../testkit/github';
import { LOCK_V1, LOCK_V2, OWNER, repoName, startWorld, TOKEN } from './world';
import type { World } from './world';

let w: World;

beforeAll(async () => {
  w = await startWorld();
});

afterAll(async () => {
  await w.gh.stop();
});

afterEach(() => {
  expect(w.gh.validationFailures).toEqual([]);
});

async function openUpdate(repo: string): Promise<{ number: number; headSha: string }> {
  await w.gh.createRepo(OWNER, repo, { files: { 'flake.lock': LOCK_V1 } });
  return w.gh.openPullRequest(OWNER, repo, { title: 'flake.lock: Update', headBranch: 'update', files: { 'flake.lock': LOCK_V2 } });
}

const puts = (repo: string, n: number): number => w.gh.countRequests('PUT', new RegExp(`/repos/${OWNER}/${repo}/pulls/${n}/merge$`));

describe('mergePullRequest', () => {
  test('merges guarded by the head sha; a retried merge does not merge twice', async () => {
    const repo = repoName('merge');
    const pr = await openUpdate(repo);
    const first = await mergePullRequest(w.octokit, { owner: OWNER, repo, number: pr.number, expectedHeadSha: pr.headSha, method: 'merge' });
    const again = await mergePullRequest(w.octokit, { owner: OWNER, repo, number: pr.number, expectedHeadSha: pr.headSha, method: 'merge' });
    expect(first.alreadyMerged).toBe(false);
    expect(again).toEqual({ mergeSha: first.mergeSha, alreadyMerged: true });
    expect(puts(repo, pr.number)).toBe(1);
    expect(await w.gh.branchHead(OWNER, repo, 'main')).toBe(first.mergeSha);
    const summary = await getPullRequest(w.octokit, { owner: OWNER, repo, number: pr.number });
    expect(summary).toMatchObject({ merged: true, mergeCommitSha: first.mergeSha, headSha: pr.headSha, baseRef: 'main', commits: 1 });
  });

  test('head moved after approval: GitHub answers 409, a permanent MergeHeadMovedError, nothing merged', async () => {
    const repo = repoName('moved');
    const pr = await openUpdate(repo);
    const mainBefore = await w.gh.branchHead(OWNER, repo, 'main');
    await w.gh.pushCommit(OWNER, repo, 'update', { 'flake.lock': '{"sneaky":true}\n' }, 'sneaky change');
    const err = await mergePullRequest(w.octokit, { owner: OWNER, repo, number: pr.number, expectedHeadSha: pr.headSha, method: 'squash' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MergeHeadMovedError);
    expect(classifyGitHubError(err)).toMatchObject({ retryable: false, code: 'merge_head_moved', status: 409 });
    expect(w.gh.requests.filter((r) => r.method === 'PUT' && r.path.includes(`/${repo}/pulls/`)).map((r) => r.status)).toEqual([409]);
    expect(await w.gh.branchHead(OWNER, repo, 'main')).toBe(mainBefore);
  });

  test('merged earlier with another head: MergedHeadMismatchError (permanent)', async () => {
    const repo = repoName('mismatch');
    const pr = await openUpdate(repo);
    const moved = await w.gh.pushCommit(OWNER, repo, 'update', { 'flake.nix': '{ }\n' }, 'more');
    await w.octokit.rest.pulls.merge({ owner: OWNER, repo, pull_number: pr.number, sha: moved });
    const err = await mergePullRequest(w.octokit, { owner: OWNER, repo, number: pr.number, expectedHeadSha: pr.headSha, method: 'merge' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MergedHeadMismatchError);
    expect(classifyGitHubError(err)).toMatchObject({ retryable: false, code: 'merged_head_mismatch' });
  });

  test('405 not mergeable (conflict) is permanent', async () => {
    const repo = repoName('conflict');
    const pr = await openUpdate(repo);
    await w.gh.pushCommit(OWNER, repo, 'main', { 'flake.lock': '{"other":1}\n' }, 'conflicting');
    const err = await mergePullRequest(w.octokit, { owner: OWNER, repo, number: pr.number, expectedHeadSha: pr.headSha, method: 'merge' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotMergeableError);
    expect(classifyGitHubError(err)).toMatchObject({ retryable: false, code: 'not_mergeable', status: 405 });
  });

  test('a 502 on the merge is retryable; the retry merges exactly once', async () => {
    const repo = repoName('flaky');
    const pr = await openUpdate(repo);
    w.gh.inject({ operation: 'pulls/merge', status: 502 });
    const err = await mergePullRequest(w.octokit, { owner: OWNER, repo, number: pr.number, expectedHeadSha: pr.headSha, method: 'merge' }).catch((e: unknown) => e);
    expect(classifyGitHubError(err)).toMatchObject({ retryable: true, code: 'server_error', status: 502 });
    const ok = await mergePullRequest(w.octokit, { owner: OWNER, repo, number: pr.number, expectedHeadSha: pr.headSha, method: 'merge' });
    expect(ok.alreadyMerged).toBe(false);
    expect((await w.gh.log(OWNER, repo, 'main', 5)).filter((c) => c.parents.length === 2)).toHaveLength(1);
  });
});

describe('classifyGitHubError on real stand-in replies', () => {
  async function failWith(fault: Parameters<World['gh']['inject']>[0]): Promise<unknown> {
    const repo = repoName('classify');
    await w.gh.createRepo(OWNER, repo);
    w.gh.inject({ operation: 'git/get-ref', ...fault });
    return w.octokit.rest.git.getRef({ owner: OWNER, repo, ref: 'heads/main' }).catch((e: unknown) => e);
  }

  test('5xx: retryable', async () => {
    for (const status of [500, 502, 503]) {
      expect(classifyGitHubError(await failWith({ status }))).toMatchObject({ retryable: true, code: 'server_error', status });
    }
  });

  test('403 with retry-after: retryable after that many seconds', async () => {
    const c = classifyGitHubError(await failWith({ status: 403, retryAfterSeconds: 7 }));
    expect(c).toMatchObject({ retryable: true, code: 'rate_limited', status: 403, retryAfterMs: 7000 });
  });

  test('403 with only x-ratelimit-reset: retryable until the reset', async () => {
    const now = Date.now();
    const err = await failWith({ status: 403, retryAfterSeconds: null, headers: { 'x-ratelimit-reset': String(Math.floor(now / 1000) + 30) } });
    const c = classifyGitHubError(err, now);
    expect(c.retryable).toBe(true);
    expect(c.retryAfterMs).toBeGreaterThan(28_000);
    expect(c.retryAfterMs).toBeLessThanOrEqual(30_000);
  });

  test('429: retryable; 403 without rate-limit signs: permanent', async () => {
    expect(classifyGitHubError(await failWith({ status: 429, retryAfterSeconds: 2 }))).toMatchObject({ retryable: true, code: 'rate_limited', retryAfterMs: 2000 });
    const forbidden = await failWith({ status: 403, message: 'Resource not accessible by integration', headers: { 'x-ratelimit-remaining': '4999' }, retryAfterSeconds: null });
    // The stand-in's 403 default adds rate-limit headers; override them to model a permission error.
    expect(classifyGitHubError(forbidden)).toMatchObject({ retryable: false, code: 'forbidden' });
  });

  test('401, 404, 422 validation / protected branch: permanent', async () => {
    const noAuth = await createGitHub({ baseUrl: w.gh.baseUrl, token: 'wrong' }).rest.git.getRef({ owner: OWNER, repo: 'x', ref: 'heads/main' }).catch((e: unknown) => e);
    expect(classifyGitHubError(noAuth)).toMatchObject({ retryable: false, code: 'unauthorized', status: 401 });
    const missing = await w.octokit.rest.pulls.get({ owner: OWNER, repo: 'does-not-exist', pull_number: 1 }).catch((e: unknown) => e);
    expect(classifyGitHubError(missing)).toMatchObject({ retryable: false, code: 'not_found', status: 404 });
    expect(classifyGitHubError(await failWith({ status: 422, message: 'Protected branch update failed for refs/heads/main.' }))).toMatchObject({ retryable: false, code: 'protected_branch' });
    expect(classifyGitHubError(await failWith({ status: 422 }))).toMatchObject({ retryable: false, code: 'validation_failed' });
    expect(classifyGitHubError(await failWith({ status: 422, message: 'Update is not a fast forward' }))).toMatchObject({ retryable: true, code: 'not_fast_forward' });
  });

  test('network failure (server gone): retryable', async () => {
    const gone = await startGitHubStandin({ token: TOKEN });
    const octokit = createGitHub({ baseUrl: gone.baseUrl, token: TOKEN });
    await gone.stop();
    const err = await octokit.rest.git.getRef({ owner: OWNER, repo: 'x', ref: 'heads/main' }).catch((e: unknown) => e);
    expect(classifyGitHubError(err)).toMatchObject({ retryable: true, code: 'network' });
  });

  test('the token never reaches the adapter log', async () => {
    const lines: string[] = [];
    const capture = (obj: object, msg?: string): void => {
      lines.push(JSON.stringify(obj) + (msg ?? ''));
    };
    const log: AdapterLogger = { debug: capture, info: capture, warn: capture, error: capture };
    const octokit = createGitHub({ baseUrl: w.gh.baseUrl, token: TOKEN, log });
    const repo = repoName('logs');
    await w.gh.createRepo(OWNER, repo);
    await octokit.rest.git.getRef({ owner: OWNER, repo, ref: 'heads/main' });
    await octokit.rest.git.getRef({ owner: OWNER, repo, ref: 'heads/nope' }).catch(() => undefined);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.join('\n')).not.toContain(TOKEN);
  });
});
