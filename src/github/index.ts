export { createGitHub, installationTokenSource } from './client';
export type { AdapterLogger, CreateGitHubOptions, GitHubAppAuth } from './client';
export { getPullRequest, isCommitOnBranch, mergePullRequest } from './pulls';
export { allowedMergeMethods, chooseMergeMethod, getMergeSettings, MERGE_METHODS } from './merge-method';
export type { MergeMethodChoice, MergeSettings } from './merge-method';
export type { MergeMethod, MergeResult, PullRequestSummary, RepoRef } from './pulls';
export { findRevertCommit, revertBranchName, revertMerge } from './revert';
export { quarantineStatus } from './quarantine';
export type { QuarantineStatus } from './quarantine';
export type { MergedChange, RevertMergeArgs, RevertMode, RevertResult, RevertStatus } from './revert';
export {
  classifyGitHubError,
  GitHubAdapterError,
  githubMessage,
  MergedHeadMismatchError,
  MergeHeadMovedError,
  MergeMethodNotAllowedError,
  NotMergeableError,
  NotMergedError,
  RevertConflictError,
  RevertRaceExhaustedError,
  RevertUnsupportedError,
  WrongBranchError,
} from './errors';
export type { GitHubErrorClassification } from './errors';
