import type { Octokit } from '@octokit/rest';
import { findRevertCommit, revertBranchName } from './revert';

export interface QuarantineStatus {
  quarantined: boolean;
  /** A commit on the branch that reverted this merge (`Reverts: <sha>` trailer). */
  revertCommit?: string;
  /** An open revert pull request for it. */
  revertPullRequest?: { number: number; url: string };
}

/**
 * A commit that was reverted once (by NixFleet, or with its trailer) is quarantined: deploying it
 * again needs an explicit override. An open `revert-<sha>` pull request quarantines it too.
 */
export async function quarantineStatus(gh: Octokit, args: { owner: string; repo: string; branch: string; mergeSha: string }): Promise<QuarantineStatus> {
  const revertCommit = await findRevertCommit(gh, args.owner, args.repo, args.branch, args.mergeSha);
  if (revertCommit) return { quarantined: true, revertCommit };
  const { data } = await gh.rest.pulls.list({ owner: args.owner, repo: args.repo, state: 'open', head: `${args.owner}:${revertBranchName(args.mergeSha)}`, per_page: 10 });
  const pr = data[0];
  if (pr) return { quarantined: true, revertPullRequest: { number: pr.number, url: pr.html_url } };
  return { quarantined: false };
}
