import type { Octokit } from '@octokit/rest';
import { createGitHub, mergePullRequest } from '../../src/github';
import type { MergeMethod } from '../../src/github';
import { startGitHubStandin } from '../../testkit/github';
import type { GitHubStandin } from '../../testkit/github';

export const OWNER = 'acme';
export const TOKEN = 'ghp_standin_secret_token_0123456789';

export const LOCK_V1 = '{\n  "nodes": { "nixpkgs": { "locked": { "rev": "aaaa1111" } } },\n  "version": 7\n}\n';
export const LOCK_V2 = '{\n  "nodes": { "nixpkgs": { "locked": { "rev": "bbbb2222" } } },\n  "version": 7\n}\n';

export interface World {
  gh: GitHubStandin;
  octokit: Octokit;
}

export async function startWorld(): Promise<World> {
  const gh = await startGitHubStandin({ token: TOKEN });
  return { gh, octokit: createGitHub({ baseUrl: gh.baseUrl, token: TOKEN }) };
}

let counter = 0;
export function repoName(prefix: string): string {
  counter += 1;
  return `${prefix}-${counter}`;
}

/** A fleet repository with a merged flake.lock update: returns the pull request and merge sha. */
export async function mergedFlakeUpdate(
  w: World,
  repo: string,
  opts: { method?: MergeMethod; extraFiles?: Record<string, string | null>; commits?: Array<{ files: Record<string, string | null>; message: string }> } = {},
): Promise<{ number: number; mergeSha: string; headSha: string; preMergeSha: string }> {
  await w.gh.createRepo(OWNER, repo, { files: { 'flake.nix': '{ outputs = _: { }; }\n', 'flake.lock': LOCK_V1, 'hosts/hsb0.nix': '{ }\n' } });
  const preMergeSha = (await w.gh.branchHead(OWNER, repo, 'main')) as string;
  const pr = await w.gh.openPullRequest(OWNER, repo, {
    title: 'flake.lock: Update',
    headBranch: 'update-flake-lock',
    ...(opts.commits ? { commits: opts.commits } : { files: { 'flake.lock': LOCK_V2, ...(opts.extraFiles ?? {}) } }),
  });
  const merged = await mergePullRequest(w.octokit, { owner: OWNER, repo, number: pr.number, expectedHeadSha: pr.headSha, method: opts.method ?? 'merge' });
  return { number: pr.number, mergeSha: merged.mergeSha, headSha: pr.headSha, preMergeSha };
}

/** Commits reachable from main carrying the revert trailer for this merge. */
export async function revertCommitsOnMain(w: World, repo: string, mergeSha: string): Promise<string[]> {
  const log = await w.gh.log(OWNER, repo, 'main', 200);
  return log.filter((c) => c.message.includes(`Reverts: ${mergeSha}`)).map((c) => c.sha);
}
