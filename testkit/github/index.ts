export { startGitHubStandin } from './server';
export type { CommitSummary, Fault, FileChanges, GitHubStandin, RequestLogEntry, StandinOptions } from './server';
export { DEFAULT_EXCEPTIONS, OpenApiValidator } from './openapi';
export type { ValidationException, ValidationFailure } from './openapi';
