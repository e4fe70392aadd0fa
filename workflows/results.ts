import { log, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { DeployActivities } from '../src/domain/activities';
import type { DeploymentResults } from '../src/domain/undo';
import { auditStep, failureOf } from './common';
import type { DeploymentRecord } from './deployment-state';

/** What the deployment left behind, as the audit store keeps it (src/domain/undo.ts). */
export function resultsOf(d: DeploymentRecord, closedAt: string): DeploymentResults {
  const s = d.status;
  const change = s.change;
  const pullRequest = change.kind === 'pull-request' ? change.number : change.pullRequest;
  return {
    deploymentId: d.input.deploymentId,
    runId: workflowInfo().runId,
    repository: `${d.input.repository.owner}/${d.input.repository.name}`,
    branch: d.input.repository.branch,
    closedAt,
    outcome: s.outcome ?? 'failed-not-rolled-back',
    ...(s.mergeSha ? { mergeSha: s.mergeSha } : {}),
    ownMerge: d.ownMerge,
    ...(pullRequest !== undefined ? { pullRequest } : {}),
    hosts: d.hosts.map((h) => ({ name: h.name, kind: h.kind, state: h.state, ...(h.before ? { before: h.before } : {}), ...(h.after ? { after: h.after } : {}) })),
  };
}

/**
 * Writes the deployment's results at close (retried until the store takes them, like the audit
 * entries). A store that refuses them does not fail the deployment: it is logged, and an undo later
 * says there is no record.
 */
export async function recordResults(d: DeploymentRecord): Promise<void> {
  const results = resultsOf(d, new Date().toISOString());
  await proxyActivities<DeployActivities>({ ...auditStep, activityId: 'results', summary: `results: ${results.outcome}` })
    .recordDeploymentResults(results)
    .catch((err: unknown) => log.error('deployment results not recorded: an undo will find no record', { error: failureOf(err).message }));
}
