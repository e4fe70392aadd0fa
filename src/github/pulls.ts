import type { Octokit } from '@octokit/rest';
import type { AdapterLogger } from './client';
import { httpStatus, githubMessage, MergedHeadMismatchError, MergeHeadMovedError, MergeMethodNotAllowedError, NotMergeableError } from './errors';

import type { MergeMethod } from '../domain/deployment';

export type { MergeMethod };

export interface PullRequestSummary {
  number: number;
  title: string;
  state: 'open' | 'closed';
  merged: boolean;
  mergeCommitSha: string | null;
  headSha: string;
  headRef: string;
  baseRef: string;
  baseSha: string;
  mergeable: boolean | null;
  commits: number;
  htmlUrl: string;
}

export interface RepoRef {
  owner: string;
  repo: string;
}

export async function getPullRequest(gh: Octokit, args: RepoRef & { number: number }): Promise<PullRequestSummary> {
  const { data } = await gh.rest.pulls.get({ owner: args.owner, repo: args.repo, pull_number: args.number });
  return {
    number: data.number,
    title: data.title,
    state: data.state as 'open' | 'closed',
    merged: data.merged,
    mergeCommitSha: data.merge_commit_sha,
    headSha: data.head.sha,
    headRef: data.head.ref,
    baseRef: data.base.ref,
    baseSha: data.base.sha,
    mergeable: data.mergeable,
    commits: data.commits,
    htmlUrl: data.html_url,
  };
}

export interface MergeResult {
  mergeSha: string;
  /** True when the pull request was already merged (a retried activity): nothing was merged now. */
  alreadyMerged: boolean;
}

/**
 * Merges a pull request guarded by the approved head sha (GitHub answers 409 when the head moved).
 * Idempotent: if it is already merged (an earlier attempt whose reply was lost), returns its
 * merge_commit_sha after checking that the merged head is the expected one.
 */
export async function mergePullRequest(
  gh: Octokit,
  args: RepoRef & { number: number; expectedHeadSha: string; method: MergeMethod; commitTitle?: string; log?: AdapterLogger },
): Promise<MergeResult> {
  const already = async (): Promise<MergeResult | undefined> => {
    const pr = await getPullRequest(gh, args);
    if (!pr.merged) {
      if (pr.state === 'closed') throw new NotMergeableError(`pull request #${args.number} is closed without being merged`);
      return undefined;
    }
    if (pr.headSha !== args.expectedHeadSha) throw new MergedHeadMismatchError(args.expectedHeadSha, pr.headSha);
    if (!pr.mergeCommitSha) throw new NotMergeableError(`pull request #${args.number} is merged but has no merge commit sha`);
    args.log?.info({ pr: args.number, mergeSha: pr.mergeCommitSha }, 'pull request already merged');
    return { mergeSha: pr.mergeCommitSha, alreadyMerged: true };
  };
  const before = await already();
  if (before) return before;
  try {
    const { data } = await gh.rest.pulls.merge({
      owner: args.owner,
      repo: args.repo,
      pull_number: args.number,
      sha: args.expectedHeadSha,
      merge_method: args.method,
      ...(args.commitTitle ? { commit_title: args.commitTitle } : {}),
    });
    args.log?.info({ pr: args.number, mergeSha: data.sha, method: args.method }, 'pull request merged');
    return { mergeSha: data.sha, alreadyMerged: false };
  } catch (err) {
    const status = httpStatus(err);
    if (status === 409) throw new MergeHeadMovedError(`pull request #${args.number}: ${githubMessage(err)} (expected head ${args.expectedHeadSha})`, err);
    if (status === 405) {
      // A concurrent or lost earlier attempt may have merged it meanwhile.
      const after = await already();
      if (after) return after;
      if (/merges? (?:commits )?are not allowed on this repository/i.test(githubMessage(err)) || /^merge commits are not allowed/i.test(githubMessage(err))) {
        throw new MergeMethodNotAllowedError(`pull request #${args.number}: ${githubMessage(err)} (merge method ${args.method})`, err);
      }
      throw new NotMergeableError(`pull request #${args.number}: ${githubMessage(err)}`, err);
    }
    throw err;
  }
}

/**
 * Whether `sha` is on `branch` (the branch head or one of its ancestors): GitHub's compare of
 * `branch...sha` says `identical` or `behind`. A sha GitHub does not know (404) is not on it.
 */
export async function isCommitOnBranch(gh: Octokit, args: RepoRef & { branch: string; sha: string }): Promise<boolean> {
  try {
    const { data } = await gh.rest.repos.compareCommits({ owner: args.owner, repo: args.repo, base: args.branch, head: args.sha, per_page: 1 });
    return data.status === 'identical' || data.status === 'behind';
  } catch (err) {
    if (httpStatus(err) === 404) return false;
    throw err;
  }
}
