/**
 * Stable error classes of the GitHub adapter and the classification the activity layer uses to
 * decide whether Temporal should retry (and after how long).
 */

export interface GitHubErrorClassification {
  retryable: boolean;
  /** Delay the next attempt by this much (rate limits: retry-after / x-ratelimit-reset). */
  retryAfterMs?: number;
  /** Stable machine-readable code (see the error classes and classifyGitHubError). */
  code: string;
  message: string;
  status?: number;
}

/** Base class: every adapter error has a stable `code` and says whether a retry can help. */
export class GitHubAdapterError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A path the merge changed was edited again after the merge: a human must decide. Never retry. */
export class RevertConflictError extends GitHubAdapterError {
  constructor(
    readonly paths: string[],
    readonly mergeSha: string,
    readonly headSha: string,
  ) {
    super('revert_conflict', `cannot revert ${mergeSha}: ${paths.join(', ')} changed again after the merge (branch head ${headSha})`, false);
  }
}

/** The pull request is not merged (or was merged with another commit than the one given). */
export class NotMergedError extends GitHubAdapterError {
  constructor(message: string) {
    super('pull_request_not_merged', message, false);
  }
}

/** The pull request was merged, but with another head than the one this deployment approved. */
export class MergedHeadMismatchError extends GitHubAdapterError {
  constructor(
    readonly expectedHeadSha: string,
    readonly mergedHeadSha: string,
  ) {
    super('merged_head_mismatch', `pull request was merged at head ${mergedHeadSha}, expected ${expectedHeadSha}`, false);
  }
}

/** PUT /merge answered 409: the head moved since it was approved. Never retry blindly. */
export class MergeHeadMovedError extends GitHubAdapterError {
  constructor(message: string, cause?: unknown) {
    super('merge_head_moved', message, false, { cause });
  }
}

/** PUT /merge answered 405 (not mergeable, reviews or checks missing) or the pull request is closed. */
export class NotMergeableError extends GitHubAdapterError {
  constructor(message: string, cause?: unknown) {
    super('not_mergeable', message, false, { cause });
  }
}

/** The branch kept moving under the revert; a later retry (re-reading the head) may succeed. */
export class RevertRaceExhaustedError extends GitHubAdapterError {
  constructor(attempts: number, cause?: unknown) {
    super('revert_race_exhausted', `the branch moved during each of ${attempts} revert attempts`, true, { cause });
  }
}

/** The repository is in a state the revert cannot handle safely (truncated trees, root commit, …). */
export class RevertUnsupportedError extends GitHubAdapterError {
  constructor(message: string) {
    super('revert_unsupported', message, false);
  }
}

interface HttpLikeError {
  status?: unknown;
  message?: unknown;
  response?: { headers?: Record<string, string | number | undefined>; data?: unknown };
}

function header(err: HttpLikeError, name: string): string | undefined {
  const v = err.response?.headers?.[name];
  return v === undefined ? undefined : String(v);
}

/** The GitHub message of an Octokit RequestError (response body `message`), else the error's. */
export function githubMessage(err: unknown): string {
  const e = err as HttpLikeError;
  const data = e?.response?.data as { message?: unknown; errors?: Array<{ message?: unknown }> } | undefined;
  const parts: string[] = [];
  if (data && typeof data.message === 'string') parts.push(data.message);
  for (const x of Array.isArray(data?.errors) ? data.errors : []) if (typeof x.message === 'string') parts.push(x.message);
  if (parts.length > 0) return parts.join(': ');
  return typeof e?.message === 'string' ? e.message : String(err);
}

export function httpStatus(err: unknown): number | undefined {
  const s = (err as HttpLikeError)?.status;
  return typeof s === 'number' ? s : undefined;
}

export const isNotFastForward = (err: unknown): boolean => httpStatus(err) === 422 && /not a fast.forward/i.test(githubMessage(err));
export const isReferenceExists = (err: unknown): boolean => httpStatus(err) === 422 && /reference already exists/i.test(githubMessage(err));
export const isProtectedBranch = (err: unknown): boolean =>
  (httpStatus(err) === 422 || httpStatus(err) === 403) && /protected branch|must be made through a pull request|repository rule violations/i.test(githubMessage(err));
export const isPullRequestExists = (err: unknown): boolean => httpStatus(err) === 422 && /pull request already exists/i.test(githubMessage(err));

const DEFAULT_RATE_LIMIT_WAIT_MS = 60_000;

/** How long GitHub asks us to wait: `retry-after` seconds, else `x-ratelimit-reset` (epoch seconds). */
function rateLimitWaitMs(err: HttpLikeError, now: number): number | undefined {
  const retryAfter = header(err, 'retry-after');
  if (retryAfter !== undefined && /^\d+$/.test(retryAfter.trim())) return Number(retryAfter) * 1000;
  const reset = header(err, 'x-ratelimit-reset');
  if (reset !== undefined && /^\d+$/.test(reset.trim())) return Math.max(0, Number(reset) * 1000 - now);
  return undefined;
}

/**
 * Classifies any error thrown by the adapter or by Octokit:
 * - adapter errors: their own `code`/`retryable`;
 * - no HTTP status (network) and 5xx: retryable (`network`, `server_error`);
 * - 429, and 403 carrying retry-after / x-ratelimit-remaining: 0 / a rate-limit message: retryable
 *   after retry-after or x-ratelimit-reset (`rate_limited`, `secondary_rate_limited`);
 * - 422 "Update is not a fast forward": retryable (`not_fast_forward`), a retry re-reads the head;
 * - everything else permanent: 400 `bad_request`, 401 `unauthorized`, 403 `forbidden`,
 *   404 `not_found`, 405 `not_mergeable`, 409 `merge_head_moved`, 422 `protected_branch` /
 *   `reference_exists` / `pull_request_exists` / `validation_failed`, other 4xx `client_error`.
 */
export function classifyGitHubError(err: unknown, now: number = Date.now()): GitHubErrorClassification {
  if (err instanceof GitHubAdapterError) {
    const status = httpStatus(err.cause);
    return { retryable: err.retryable, code: err.code, message: err.message, ...(status !== undefined ? { status } : {}) };
  }
  const e = err as HttpLikeError;
  const status = httpStatus(err);
  const message = githubMessage(err);
  // Octokit turns fetch failures (ECONNREFUSED, resets, timeouts) into status 500 without a response.
  if (status === undefined || status === 0 || (status === 500 && e?.response === undefined)) return { retryable: true, code: 'network', message };
  const base = { message, status };
  if (status >= 500) {
    const wait = header(e, 'retry-after') !== undefined ? rateLimitWaitMs(e, now) : undefined;
    return { ...base, retryable: true, code: 'server_error', ...(wait !== undefined ? { retryAfterMs: wait } : {}) };
  }
  if (status === 429 || (status === 403 && (header(e, 'retry-after') !== undefined || header(e, 'x-ratelimit-remaining') === '0' || /rate limit/i.test(message)))) {
    const secondary = /secondary rate limit/i.test(message);
    return { ...base, retryable: true, code: secondary ? 'secondary_rate_limited' : 'rate_limited', retryAfterMs: rateLimitWaitMs(e, now) ?? DEFAULT_RATE_LIMIT_WAIT_MS };
  }
  if (isProtectedBranch(err)) return { ...base, retryable: false, code: 'protected_branch' };
  switch (status) {
    case 400:
      return { ...base, retryable: false, code: 'bad_request' };
    case 401:
      return { ...base, retryable: false, code: 'unauthorized' };
    case 403:
      return { ...base, retryable: false, code: 'forbidden' };
    case 404:
      return { ...base, retryable: false, code: 'not_found' };
    case 405:
      return { ...base, retryable: false, code: 'not_mergeable' };
    case 409:
      return { ...base, retryable: false, code: 'merge_head_moved' };
    case 422:
      if (isNotFastForward(err)) return { ...base, retryable: true, code: 'not_fast_forward' };
      if (isReferenceExists(err)) return { ...base, retryable: false, code: 'reference_exists' };
      if (isPullRequestExists(err)) return { ...base, retryable: false, code: 'pull_request_exists' };
      return { ...base, retryable: false, code: 'validation_failed' };
    default:
      return { ...base, retryable: false, code: 'client_error' };
  }
}

/**
 * The change does not belong to the fleet's branch: a pull request into another base, or a commit
 * that is not on the branch. `field` names the input at fault (e.g. `change.pullRequest`). Never retry.
 */
export class WrongBranchError extends GitHubAdapterError {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super('wrong_branch', `${field}: ${message}`, false);
  }
}

/** The merge method (from `field`, or the repository's settings) is one the repository does not allow. */
export class MergeMethodNotAllowedError extends GitHubAdapterError {
  constructor(message: string, cause?: unknown) {
    super('merge_method_not_allowed', message, false, { cause });
  }
}
