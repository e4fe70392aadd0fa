/**
 * Reverting a merged flake.lock update on GitHub with the Git Data API (there is no REST revert
 * endpoint). Follows the procedure in notes/domain.md, "Reverting the merge on GitHub":
 *
 * 1. the paths whose blobs differ between the merge commit and its first parent (for a rebase
 *    merge, the commit `commits` first-parents back) are what the merge changed;
 * 2. read the branch head; every changed path already at its pre-merge blob → already reverted;
 *    a changed path that is neither the merged nor the pre-merge blob → RevertConflictError;
 * 3. a new tree on top of the HEAD's tree restoring only those paths (sha null removes a file the
 *    merge added), a commit with parents [head], PATCH the ref with force: false; on 422 "Update is
 *    not a fast forward" start again from 2 (bounded);
 * 4. pull-request mode (or when branch protection refuses the push): the same commit on
 *    `revert-<merge sha>`, and a pull request whose body says what and why.
 *
 * Idempotent: a retried revert finds the branch already restored (and the commit that did it, by its
 * `Reverts: <sha>` trailer), or reuses the existing revert branch and open pull request.
 */
import type { Octokit } from '@octokit/rest';
import type { AdapterLogger } from './client';
import { githubMessage, isNotFastForward, isProtectedBranch, isPullRequestExists, isReferenceExists, NotMergedError, RevertConflictError, RevertRaceExhaustedError, RevertUnsupportedError } from './errors';
import type { MergeMethod } from './pulls';

export type RevertMode = 'commit' | 'pull-request';

export interface RevertMergeArgs {
  owner: string;
  repo: string;
  /** The branch the pull request was merged into. */
  branch: string;
  /** The pull request's merge_commit_sha. */
  mergeSha: string;
  /** The merged pull request; checked (merged, same merge sha, same base) and named in messages. */
  prNumber?: number;
  /**
   * How it was merged. Needed only for rebase merges of several commits: the pre-merge base is then
   * `commits` first-parents back from mergeSha (requires prNumber). Otherwise: a merge commit's
   * first parent, or a squash commit's parent.
   */
  mergeMethod?: MergeMethod;
  mode: RevertMode;
  reason: string;
  requestedBy: string;
  /**
   * When the revert was requested (ISO 8601, e.g. the workflow's time). Used as the commit's author
   * and committer date, so a retried attempt builds the byte-identical commit (same sha) instead of
   * a second one. Without it GitHub stamps the current time.
   */
  requestedAt?: string;
  /** Author/committer of the revert commit when requestedAt is given; else the token's user. */
  commitIdentity?: { name: string; email: string };
  /**
   * Leave author and committer to GitHub (requestedAt and commitIdentity are then not used): as a
   * GitHub App, GitHub makes the commit as `<app>[bot]` and signs it, so a branch that requires
   * signed commits accepts it. A retried attempt then builds a commit with another sha; the revert
   * stays idempotent because it re-reads the branch (already restored) and finds the commit by its
   * `Reverts: <sha>` trailer.
   */
  authoredByGitHub?: boolean;
  /** Attempts when the branch moves between read and update (422 not a fast forward). Default 5. */
  maxAttempts?: number;
  log?: AdapterLogger;
}

export type RevertStatus = 'reverted' | 'already-reverted' | 'pull-request-opened' | 'nothing-to-revert';

export interface RevertResult {
  status: RevertStatus;
  /** Paths the merge changed (normally just flake.lock). */
  changedPaths: string[];
  /** Paths this call restored (empty when already reverted). */
  restoredPaths: string[];
  /** The revert commit: pushed to the branch, or at the tip of the revert pull request's branch. */
  revertCommitSha?: string;
  /** When already reverted: the commit on the branch carrying `Reverts: <mergeSha>`, if found. */
  revertedBy?: string;
  pullRequest?: { number: number; url: string; branch: string; reused: boolean };
  /** The direct push was refused by branch protection and a pull request was opened instead. */
  fellBackToPullRequest: boolean;
  fallbackReason?: string;
  /** Head reads (1 + number of not-fast-forward retries). */
  attempts: number;
  /** The branch head the revert commit was built on (or found restored at). */
  baseHeadSha: string;
}

interface Blob {
  sha: string;
  mode: string;
  type: string;
}

type TreeMap = Map<string, Blob>;

const TRAILER = 'Reverts';
const DEFAULT_IDENTITY = { name: 'NixFleet Deployer', email: 'nixfleet-deployer@users.noreply.github.com' };

export function revertBranchName(mergeSha: string): string {
  return `revert-${mergeSha}`;
}

async function treeOfCommit(gh: Octokit, owner: string, repo: string, commitSha: string): Promise<{ tree: string; parents: string[]; message: string }> {
  const { data } = await gh.rest.git.getCommit({ owner, repo, commit_sha: commitSha });
  return { tree: data.tree.sha, parents: data.parents.map((p) => p.sha), message: data.message };
}

async function readTree(gh: Octokit, owner: string, repo: string, treeSha: string): Promise<TreeMap> {
  const { data } = await gh.rest.git.getTree({ owner, repo, tree_sha: treeSha, recursive: '1' });
  if (data.truncated) throw new RevertUnsupportedError(`tree ${treeSha} is too large for the API (truncated listing)`);
  const map: TreeMap = new Map();
  for (const e of data.tree) {
    if (e.type === 'tree' || !e.path || !e.sha) continue;
    map.set(e.path, { sha: e.sha, mode: e.mode ?? '100644', type: e.type ?? 'blob' });
  }
  return map;
}

const same = (a: Blob | undefined, b: Blob | undefined): boolean => (a === undefined ? b === undefined : b !== undefined && a.sha === b.sha && a.mode === b.mode);

async function readHead(gh: Octokit, owner: string, repo: string, branch: string): Promise<string> {
  const { data } = await gh.rest.git.getRef({ owner, repo, ref: `heads/${branch}` });
  return data.object.sha;
}

/** The first commit (newest first, up to 100) on `branch` whose message carries `Reverts: <mergeSha>`. */
export async function findRevertCommit(gh: Octokit, owner: string, repo: string, branch: string, mergeSha: string): Promise<string | undefined> {
  const { data } = await gh.rest.repos.listCommits({ owner, repo, sha: branch, per_page: 100 });
  const trailer = new RegExp(`^${TRAILER}: ${mergeSha}$`, 'm');
  return data.find((c) => trailer.test(c.commit.message))?.sha;
}

function commitMessage(args: RevertMergeArgs, mergeSubject: string, paths: string[]): string {
  const pr = args.prNumber !== undefined ? ` (pull request #${args.prNumber})` : '';
  return [
    `Revert "${mergeSubject}"`,
    '',
    `This reverts merge ${args.mergeSha}${pr} on ${args.branch}: it restores ${paths.join(', ')} to the content before the merge. Commits that landed after the merge are kept.`,
    '',
    `Reason: ${args.reason}`,
    '',
    `${TRAILER}: ${args.mergeSha}`,
    `Requested-by: ${args.requestedBy}`,
    '',
  ].join('\n');
}

function pullRequestBody(args: RevertMergeArgs, paths: string[], fallbackReason?: string): string {
  const pr = args.prNumber !== undefined ? ` from pull request #${args.prNumber}` : '';
  return [
    `Reverts merge ${args.mergeSha}${pr} on \`${args.branch}\`.`,
    '',
    `**Why:** ${args.reason}`,
    '',
    `**What:** restores ${paths.map((p) => `\`${p}\``).join(', ')} to the content before the merge; commits that landed after the merge are kept.`,
    '',
    `Requested by ${args.requestedBy} through NixFleet Deployer.`,
    ...(fallbackReason ? ['', `A direct revert commit was refused (${fallbackReason}), so this pull request was opened instead.`] : []),
    '',
    `${TRAILER}: ${args.mergeSha}`,
  ].join('\n');
}

/** Finds the pre-merge base of the merge (see RevertMergeArgs.mergeMethod). */
async function preMergeBase(gh: Octokit, args: RevertMergeArgs, commitCount: number | undefined): Promise<{ base: string; mergeTree: string; subject: string }> {
  const { owner, repo, mergeSha } = args;
  const merge = await treeOfCommit(gh, owner, repo, mergeSha);
  const subject = merge.message.split('\n')[0] ?? mergeSha;
  if (merge.parents.length === 0) throw new RevertUnsupportedError(`${mergeSha} is a root commit`);
  let base = merge.parents[0] as string;
  if (merge.parents.length === 1 && args.mergeMethod === 'rebase' && commitCount !== undefined && commitCount > 1) {
    // Rebase merge: mergeSha is the last of `commitCount` rebased commits; walk back first parents.
    // Best effort: assumes nobody pushed between the rebased commits (GitHub writes them at once).
    for (let i = 1; i < commitCount; i++) {
      const c = await treeOfCommit(gh, owner, repo, base);
      if (c.parents.length !== 1) throw new RevertUnsupportedError(`walking back the rebase merge reached ${base} with ${c.parents.length} parents`);
      base = c.parents[0] as string;
    }
  }
  return { base, mergeTree: merge.tree, subject };
}

interface OpenPullRequest {
  number: number;
  url: string;
  headSha: string;
}

async function findOpenRevertPullRequest(gh: Octokit, args: RevertMergeArgs): Promise<OpenPullRequest | undefined> {
  const { owner, repo } = args;
  const { data } = await gh.rest.pulls.list({ owner, repo, state: 'open', head: `${owner}:${revertBranchName(args.mergeSha)}`, base: args.branch, per_page: 10 });
  const pr = data[0];
  return pr ? { number: pr.number, url: pr.html_url, headSha: pr.head.sha } : undefined;
}

/** Opens (or finds) the revert pull request for a revert commit built on the branch head. */
async function openRevertPullRequest(
  gh: Octokit,
  args: RevertMergeArgs,
  paths: string[],
  subject: string,
  makeCommit: () => Promise<string>,
  fallbackReason?: string,
): Promise<{ number: number; url: string; branch: string; reused: boolean; commitSha: string }> {
  const { owner, repo } = args;
  const branch = revertBranchName(args.mergeSha);
  const open = (): Promise<OpenPullRequest | undefined> => findOpenRevertPullRequest(gh, args);
  const existing = await open();
  if (existing) return { ...existing, branch, reused: true, commitSha: existing.headSha };

  // Reuse the branch an earlier attempt created; otherwise create it (a concurrent creation → reuse).
  let commitSha: string;
  let reused = false;
  try {
    const { data } = await gh.rest.git.getRef({ owner, repo, ref: `heads/${branch}` });
    commitSha = data.object.sha;
    reused = true;
  } catch (err) {
    if ((err as { status?: number }).status !== 404) throw err;
    commitSha = await makeCommit();
    try {
      await gh.rest.git.createRef({ owner, repo, ref: `refs/heads/${branch}`, sha: commitSha });
    } catch (e) {
      if (!isReferenceExists(e)) throw e;
      const { data } = await gh.rest.git.getRef({ owner, repo, ref: `heads/${branch}` });
      commitSha = data.object.sha;
      reused = true;
    }
  }
  try {
    const { data } = await gh.rest.pulls.create({
      owner,
      repo,
      title: `Revert "${subject}"`,
      head: branch,
      base: args.branch,
      body: pullRequestBody(args, paths, fallbackReason),
    });
    return { number: data.number, url: data.html_url, branch, reused, commitSha };
  } catch (err) {
    if (!isPullRequestExists(err)) throw err;
    const again = await open();
    if (!again) throw err;
    return { ...again, branch, reused: true, commitSha: again.headSha };
  }
}

export async function revertMerge(gh: Octokit, args: RevertMergeArgs): Promise<RevertResult> {
  const { owner, repo, branch, mergeSha, log } = args;
  const maxAttempts = args.maxAttempts ?? 5;

  let commitCount: number | undefined;
  if (args.prNumber !== undefined) {
    const { data: pr } = await gh.rest.pulls.get({ owner, repo, pull_number: args.prNumber });
    if (!pr.merged) throw new NotMergedError(`pull request #${args.prNumber} is not merged`);
    if (pr.merge_commit_sha !== mergeSha) throw new NotMergedError(`pull request #${args.prNumber} was merged as ${pr.merge_commit_sha ?? 'nothing'}, not ${mergeSha}`);
    if (pr.base.ref !== branch) throw new NotMergedError(`pull request #${args.prNumber} was merged into ${pr.base.ref}, not ${branch}`);
    commitCount = pr.commits;
  }
  if (args.mergeMethod === 'rebase' && commitCount === undefined) {
    throw new RevertUnsupportedError('reverting a rebase merge needs prNumber (for the commit count)');
  }

  // Step 1: what the merge changed.
  const { base, mergeTree, subject } = await preMergeBase(gh, args, commitCount);
  const baseCommit = await treeOfCommit(gh, owner, repo, base);
  const [before, merged] = await Promise.all([readTree(gh, owner, repo, baseCommit.tree), readTree(gh, owner, repo, mergeTree)]);
  const changedPaths = [...new Set([...before.keys(), ...merged.keys()])].filter((p) => !same(before.get(p), merged.get(p))).sort();
  log?.info({ mergeSha, base, changedPaths }, 'revert: paths changed by the merge');

  let lastRaceError: unknown;
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    // Step 2: the branch head now.
    const headSha = await readHead(gh, owner, repo, branch);
    const headCommit = await treeOfCommit(gh, owner, repo, headSha);
    const head = await readTree(gh, owner, repo, headCommit.tree);
    const toRestore: string[] = [];
    const conflicts: string[] = [];
    for (const path of changedPaths) {
      const now = head.get(path);
      if (same(now, before.get(path))) continue;
      if (same(now, merged.get(path))) toRestore.push(path);
      else conflicts.push(path);
    }
    if (conflicts.length > 0) throw new RevertConflictError(conflicts, mergeSha, headSha);
    const result = (status: RevertStatus, extra: Partial<RevertResult> = {}): RevertResult => ({
      status,
      changedPaths,
      restoredPaths: toRestore,
      fellBackToPullRequest: false,
      attempts: attempt,
      baseHeadSha: headSha,
      ...extra,
    });
    if (changedPaths.length === 0) return result('nothing-to-revert');
    if (toRestore.length === 0) {
      const revertedBy = await findRevertCommit(gh, owner, repo, branch, mergeSha);
      log?.info({ mergeSha, headSha, revertedBy }, 'revert: already reverted');
      return result('already-reverted', revertedBy ? { revertedBy } : {});
    }

    // Step 3: a tree on top of the head's tree, restoring only the merge's paths.
    let created: string | undefined;
    const makeCommit = async (): Promise<string> => {
      if (created) return created;
      const { data: tree } = await gh.rest.git.createTree({
        owner,
        repo,
        base_tree: headCommit.tree,
        tree: toRestore.map((path) => {
          const old = before.get(path);
          const now = merged.get(path) as Blob;
          return old
            ? { path, mode: old.mode as '100644', type: old.type as 'blob', sha: old.sha }
            : { path, mode: now.mode as '100644', type: now.type as 'blob', sha: null };
        }),
      });
      const identity = args.requestedAt && !args.authoredByGitHub ? { ...(args.commitIdentity ?? DEFAULT_IDENTITY), date: args.requestedAt } : undefined;
      const { data: commit } = await gh.rest.git.createCommit({
        owner,
        repo,
        message: commitMessage(args, subject, toRestore),
        tree: tree.sha,
        parents: [headSha],
        ...(identity ? { author: identity, committer: identity } : {}),
      });
      created = commit.sha;
      return commit.sha;
    };

    if (args.mode === 'pull-request') {
      const pr = await openRevertPullRequest(gh, args, toRestore, subject, makeCommit);
      log?.info({ mergeSha, pr: pr.number, reused: pr.reused }, 'revert: pull request');
      return result('pull-request-opened', { revertCommitSha: pr.commitSha, pullRequest: { number: pr.number, url: pr.url, branch: pr.branch, reused: pr.reused } });
    }

    // A retry after an earlier fallback (protected branch): the revert pull request is already open.
    const openPr = await findOpenRevertPullRequest(gh, args);
    if (openPr) {
      return result('pull-request-opened', {
        revertCommitSha: openPr.headSha,
        pullRequest: { number: openPr.number, url: openPr.url, branch: revertBranchName(mergeSha), reused: true },
        fellBackToPullRequest: true,
        fallbackReason: 'a revert pull request for this merge is already open (earlier attempt)',
      });
    }
    const commitSha = await makeCommit();
    try {
      await gh.rest.git.updateRef({ owner, repo, ref: `heads/${branch}`, sha: commitSha, force: false });
      log?.info({ mergeSha, commitSha, attempt }, 'revert: commit pushed');
      return result('reverted', { revertCommitSha: commitSha });
    } catch (err) {
      if (isNotFastForward(err)) {
        log?.warn({ mergeSha, attempt }, 'revert: branch moved meanwhile, re-reading the head');
        lastRaceError = err;
        continue;
      }
      if (isProtectedBranch(err)) {
        const reason = githubMessage(err);
        log?.warn({ mergeSha, reason }, 'revert: direct push refused by branch protection, opening a pull request');
        const pr = await openRevertPullRequest(gh, args, toRestore, subject, makeCommit, reason);
        return result('pull-request-opened', {
          revertCommitSha: pr.commitSha,
          pullRequest: { number: pr.number, url: pr.url, branch: pr.branch, reused: pr.reused },
          fellBackToPullRequest: true,
          fallbackReason: reason,
        });
      }
      throw err;
    }
  }
  throw new RevertRaceExhaustedError(maxAttempts, lastRaceError);
}
