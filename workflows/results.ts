import { log, patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { DeployActivities } from '../src/domain/activities';
import { resultsHostOf, type DeploymentResults, type DeploymentResultsRef } from '../src/domain/undo';
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
    hosts: d.hosts.map(resultsHostOf),
  };
}

/**
 * Writes the deployment's results at close (retried until the store takes them, like the audit
 * entries). A store that refuses them does not fail the deployment: it is logged, and an undo later
 * says there is no record.
 */
export async function recordResults(d: DeploymentRecord): Promise<void> {
  const results = resultsOf(d, new Date().toISOString());
  const act = proxyActivities<DeployActivities>({ ...auditStep, activityId: 'results', summary: `results: ${results.outcome}` });
  // The hosts by reference: the activity reads them from this deployment's hostsPage query (issue 13, bytes: ~280 B per host out of the history).
  const write = patched('results-by-ref') ? act.recordDeploymentResultsByRef(byRef(results)) : act.recordDeploymentResults(results);
  await write.catch((err: unknown) => log.error('deployment results not recorded: an undo will find no record', { error: failureOf(err).message }));
}

function byRef(results: DeploymentResults): DeploymentResultsRef {
  const { hosts, ...rest } = results;
  return { ...rest, hostsFrom: { workflowId: workflowInfo().workflowId, count: hosts.length, ...(hosts.length > 0 ? { first: hosts[0]?.name, last: hosts[hosts.length - 1]?.name } : {}) } };
}
