/**
 * Reverting a merged flake.lock update on GitHub with the Git Data API (there is no REST revert
 * endpoint). Follows the procedure in notes/domain.md, "Reverting the merge on GitHub":
 *
 * 1. what the pull request put on the branch, found from the branch itself (whoever merged it, however):
 *    a merge commit whose second parent is the pull request's head → its first parent is the base;
 *    one parent → the pull request's own commits are compared with the first-parent chain below the
 *    merge sha: all of them there (author, date, message) → a rebase merge, the base is below the
 *    last; none → a squash commit, the base is its parent; some → RevertUnsupportedError (a human
 *    must look). The paths whose blobs differ between that base and the merge sha are what to undo,
 *    all in one revert commit;
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
import { isCommitOnBranch } from './pulls';
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
   * How the deployer merged it (a hint, kept for callers): with prNumber, how the pull request was
   * actually merged is read from the branch (see step 1), so a pull request a human merged by rebase
   * is reverted whole. Without prNumber, `rebase` is refused (the commit count is unknown).
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

/** What the merge put on the branch: `commits` (oldest first) on top of `base`. */
export interface MergedChange {
  how: 'merge-commit' | 'squash' | 'rebase' | 'commit';
  base: string;
  commits: string[];
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
  /** What the pull request (or commit) put on the branch, as found there. */
  merged?: MergedChange;
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

function commitMessage(args: RevertMergeArgs, mergeSubject: string, paths: string[], merged: MergedChange): string {
  const pr = args.prNumber !== undefined ? ` (pull request #${args.prNumber})` : '';
  const several = merged.commits.length > 1 ? ` The pull request was rebased onto ${args.branch} as ${merged.commits.length} commits (${merged.commits.join(', ')}): all of them are reverted.` : '';
  return [
    `Revert "${mergeSubject}"`,
    '',
    `This reverts merge ${args.mergeSha}${pr} on ${args.branch}: it restores ${paths.join(', ')} to the content before the merge.${several} Commits that landed after the merge are kept.`,
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

interface PullCommit {
  sha: string;
  message: string;
  /** How many parents (a merge commit has two or more). */
  parents: number;
  author: { name?: string; email?: string; date?: string } | null;
}

/** The pull request's own commits, oldest first (GitHub lists at most 250). */
async function pullRequestCommits(gh: Octokit, owner: string, repo: string, number: number, count: number): Promise<PullCommit[]> {
  const out: PullCommit[] = [];
  for (let page = 1; out.length < count && page <= 3; page++) {
    const { data } = await gh.rest.pulls.listCommits({ owner, repo, pull_number: number, per_page: 100, page });
    out.push(...data.map((c) => ({ sha: c.sha, message: c.commit.message, parents: c.parents.length, author: c.commit.author })));
    if (data.length < 100) break;
  }
  return out;
}

/** A commit on the branch is the rebased copy of a pull request commit: same sha, or same author, date and message. */
async function isCopyOf(gh: Octokit, owner: string, repo: string, sha: string, original: PullCommit): Promise<{ same: boolean; parents: string[] }> {
  const { data } = await gh.rest.git.getCommit({ owner, repo, commit_sha: sha });
  const parents = data.parents.map((p) => p.sha);
  if (sha === original.sha) return { same: true, parents };
  const a = original.author;
  const same = a !== null && data.author.name === a.name && data.author.email === a.email && Date.parse(data.author.date) === Date.parse(a.date ?? '') && data.message.trim() === original.message.trim();
  return { same, parents };
}

/**
 * What the merge put on the branch (step 1), read from the branch. Throws RevertUnsupportedError
 * when it cannot be told: better a loud failure for a human than a partial revert reported done.
 */
async function findMergedChange(gh: Octokit, args: RevertMergeArgs, pr: { number: number; commits: number; headSha: string } | undefined): Promise<{ merged: MergedChange; mergeTree: string; subject: string }> {
  const { owner, repo, mergeSha, branch } = args;
  const merge = await treeOfCommit(gh, owner, repo, mergeSha);
  const subject = merge.message.split('\n')[0] ?? mergeSha;
  if (merge.parents.length === 0) throw new RevertUnsupportedError(`${mergeSha} is a root commit`);
  // The merge must still be in the branch's history: otherwise what is there is not what it put there.
  if (!(await isCommitOnBranch(gh, { owner, repo, branch, sha: mergeSha }))) {
    throw new RevertUnsupportedError(`${mergeSha}${pr ? ` (pull request #${pr.number})` : ''} is no longer on ${branch} (its history was rewritten?): cannot tell what to revert; revert by hand`);
  }
  const first = merge.parents[0] as string;
  const done = (how: MergedChange['how'], base: string, commits: string[]) => ({ merged: { how, base, commits }, mergeTree: merge.tree, subject });
  if (!pr) {
    if (args.mergeMethod === 'rebase') throw new RevertUnsupportedError('reverting a rebase merge needs prNumber (for the commit count)');
    return done('commit', first, [mergeSha]);
  }
  if (merge.parents.length > 1) {
    if (merge.parents.length === 2 && merge.parents[1] === pr.headSha) return done('merge-commit', first, [mergeSha]);
    throw new RevertUnsupportedError(`merge ${mergeSha} of pull request #${pr.number} has parents ${merge.parents.join(', ')}, none of them the pull request's head ${pr.headSha} after the first: cannot tell what it put on ${branch}`);
  }
  if (pr.commits > 250) throw new RevertUnsupportedError(`pull request #${pr.number} has ${pr.commits} commits (GitHub lists at most 250): cannot tell how it was merged`);
  const listed = await pullRequestCommits(gh, owner, repo, pr.number, pr.commits);
  if (listed.length !== pr.commits) throw new RevertUnsupportedError(`pull request #${pr.number} lists ${listed.length} commits, not ${pr.commits}`);
  // A rebase merge drops the pull request's merge commits (main merged into it): only the others are copied.
  const own = listed.filter((c) => c.parents === 1);
  if (own.length === 0) return done('squash', first, [mergeSha]);
  // Walk down the first parents from the merge sha, matching the pull request's commits newest first.
  const walked: string[] = [];
  let at = mergeSha;
  let below = first;
  for (let i = own.length - 1; i >= 0; i--) {
    const c = await isCopyOf(gh, owner, repo, at, own[i] as PullCommit);
    if (!c.same) break;
    walked.unshift(at);
    if (c.parents.length !== 1) throw new RevertUnsupportedError(`commit ${at} of pull request #${pr.number} on ${branch} has ${c.parents.length} parents: cannot tell what the pull request put there`);
    below = c.parents[0] as string;
    at = below;
  }
  if (walked.length === own.length) return done('rebase', below, walked);
  if (walked.length === 0) return done('squash', first, [mergeSha]);
  throw new RevertUnsupportedError(
    `pull request #${pr.number} has ${own.length} commits${own.length !== listed.length ? ' besides its merge commits' : ''}, but only the last ${walked.length} are found on ${branch} below ${mergeSha}: cannot tell what it put there; revert by hand`,
  );
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

  let pull: { number: number; commits: number; headSha: string } | undefined;
  if (args.prNumber !== undefined) {
    const { data: pr } = await gh.rest.pulls.get({ owner, repo, pull_number: args.prNumber });
    if (!pr.merged) throw new NotMergedError(`pull request #${args.prNumber} is not merged`);
    if (pr.merge_commit_sha !== mergeSha) throw new NotMergedError(`pull request #${args.prNumber} was merged as ${pr.merge_commit_sha ?? 'nothing'}, not ${mergeSha}`);
    if (pr.base.ref !== branch) throw new NotMergedError(`pull request #${args.prNumber} was merged into ${pr.base.ref}, not ${branch}`);
    pull = { number: pr.number, commits: pr.commits, headSha: pr.head.sha };
  }

  // Step 1: what the merge put on the branch, and the paths that changed.
  const { merged: mergedChange, mergeTree, subject } = await findMergedChange(gh, args, pull);
  const base = mergedChange.base;
  const baseCommit = await treeOfCommit(gh, owner, repo, base);
  const [before, merged] = await Promise.all([readTree(gh, owner, repo, baseCommit.tree), readTree(gh, owner, repo, mergeTree)]);
  const changedPaths = [...new Set([...before.keys(), ...merged.keys()])].filter((p) => !same(before.get(p), merged.get(p))).sort();
  log?.info({ mergeSha, base, how: mergedChange.how, commits: mergedChange.commits.length, changedPaths }, 'revert: paths changed by the merge');

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
      merged: mergedChange,
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
        message: commitMessage(args, subject, toRestore, mergedChange),
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
