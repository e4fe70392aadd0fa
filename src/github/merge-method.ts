/**
 * Which merge method a deployment uses: the fleet file's `repository.mergeMethod` when it sets one,
 * else the first the repository allows (GitHub's `allow_merge_commit`, `allow_squash_merge`,
 * `allow_rebase_merge`), in the order merge, squash, rebase.
 */
import type { Octokit } from '@octokit/rest';
import type { MergeMethod, RepoRef } from './pulls';

export interface MergeSettings {
  /** undefined: GitHub did not say (the fields are only returned to callers with push access). */
  allowMergeCommit?: boolean;
  allowSquashMerge?: boolean;
  allowRebaseMerge?: boolean;
}

export const MERGE_METHODS: readonly MergeMethod[] = ['merge', 'squash', 'rebase'];

const FLAG: Record<MergeMethod, keyof MergeSettings> = { merge: 'allowMergeCommit', squash: 'allowSquashMerge', rebase: 'allowRebaseMerge' };

/** The methods the settings do not forbid (unknown counts as allowed: GitHub's answer decides then). */
export function allowedMergeMethods(settings: MergeSettings): MergeMethod[] {
  return MERGE_METHODS.filter((m) => settings[FLAG[m]] !== false);
}

export type MergeMethodChoice =
  | { ok: true; method: MergeMethod; source: 'fleet' | 'repository' }
  | { ok: false; error: string };

/**
 * Pure. `configured` (from the fleet file, named `field` in the error) wins when the repository
 * allows it; a configured method the repository forbids is refused before anything is merged.
 */
export function chooseMergeMethod(configured: MergeMethod | undefined, settings: MergeSettings, field = 'repository.mergeMethod'): MergeMethodChoice {
  const allowed = allowedMergeMethods(settings);
  if (configured !== undefined) {
    if (allowed.includes(configured)) return { ok: true, method: configured, source: 'fleet' };
    return { ok: false, error: `${field}: the repository does not allow ${configured} merges (allowed: ${allowed.join(', ') || 'none'})` };
  }
  const first = allowed[0];
  if (first === undefined) return { ok: false, error: 'the repository allows no merge method (allow_merge_commit, allow_squash_merge and allow_rebase_merge are all false)' };
  return { ok: true, method: first, source: 'repository' };
}

/** GET /repos/{owner}/{repo}: the merge settings. */
export async function getMergeSettings(gh: Octokit, args: RepoRef): Promise<MergeSettings> {
  const { data } = await gh.rest.repos.get({ owner: args.owner, repo: args.repo });
  return {
    ...(data.allow_merge_commit !== undefined ? { allowMergeCommit: data.allow_merge_commit } : {}),
    ...(data.allow_squash_merge !== undefined ? { allowSquashMerge: data.allow_squash_merge } : {}),
    ...(data.allow_rebase_merge !== undefined ? { allowRebaseMerge: data.allow_rebase_merge } : {}),
  };
}
