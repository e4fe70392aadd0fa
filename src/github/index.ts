export { createGitHub, installationTokenSource } from './client';
export type { AdapterLogger, CreateGitHubOptions, GitHubAppAuth } from './client';
export { getPullRequest, mergePullRequest } from './pulls';
export type { MergeMethod, MergeResult, PullRequestSummary, RepoRef } from './pulls';
export { findRevertCommit, revertBranchName, revertMerge } from './revert';
export { quarantineStatus } from './quarantine';
export type { QuarantineStatus } from './quarantine';
export type { RevertMergeArgs, RevertMode, RevertResult, RevertStatus } from './revert';
export {
  classifyGitHubError,
  GitHubAdapterError,
  githubMessage,
  MergedHeadMismatchError,
  MergeHeadMovedError,
  NotMergeableError,
  NotMergedError,
  RevertConflictError,
  RevertRaceExhaustedError,
  RevertUnsupportedError,
} from './errors';
export type { GitHubErrorClassification } from './errors';
