import { proxyActivities } from '@temporalio/workflow';
import type { Generation, HostSpec, RepoRef } from '../src/domain/deployment';
import type { SmokeActivities } from '../src/domain/smoke';

const { readHostGeneration, readPullRequest } = proxyActivities<SmokeActivities>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 3 },
});

/** Proves the whole path: a worker on the Temporal server reaching a host over SSH and GitHub over REST. */
export async function smokeWorkflow(input: { host: HostSpec; repository: RepoRef; pullRequest: number }): Promise<{
  generation: Generation;
  pullRequest: { number: number; headSha: string; state: string; merged: boolean };
}> {
  const generation = await readHostGeneration(input.host);
  const pullRequest = await readPullRequest({ repository: input.repository, number: input.pullRequest });
  return { generation, pullRequest };
}
