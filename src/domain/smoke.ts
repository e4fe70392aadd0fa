import type { Generation, HostSpec, RepoRef } from './deployment';

export interface SmokeActivities {
  readHostGeneration(host: HostSpec): Promise<Generation>;
  readPullRequest(input: { repository: RepoRef; number: number }): Promise<{ number: number; headSha: string; state: string; merged: boolean }>;
}
