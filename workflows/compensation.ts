import { FailureType } from '../src/domain/activities';
import { workflowInfo } from '@temporalio/workflow';
import type { Generation, HostStatus, RevertOutcome, RevertPolicy } from '../src/domain/deployment';
import { rollbackCandidates } from '../src/domain/saga';
import { failureOf, githubStep, hostStepFor, pool } from './common';
import type { DeploymentRecord } from './deployment-state';
import { hostOpsInChildren, hostOpsPerChild, INLINE_HOST_OPS } from './host-ops';

export interface RollbackResult {
  rolledBack: string[];
  failed: string[];
}

/**
 * The merge's revert (as `actor`), shared by the automatic and the manual path. A failure is kept in
 * the status (`revert.kind: 'failed'`), never thrown: the rest of the compensation still runs.
 */
export async function revertMerge(d: DeploymentRecord, mode: Exclude<RevertPolicy, 'off'>, actor: string, reason: string): Promise<RevertOutcome | undefined> {
  const s = d.status;
  if (s.mergeSha === undefined) return undefined;
  try {
    s.revert = await d.step(githubStep, 'github/revert', `revert ${s.mergeSha.slice(0, 12)} on ${d.input.repository.branch} (${mode})`).revertMerge({
      deploymentId: d.input.deploymentId,
      repository: d.input.repository,
      mergeSha: s.mergeSha,
      pullRequest: s.change.kind === 'pull-request' ? s.change.number : s.change.pullRequest,
      mode,
      reason,
      requestedBy: actor,
      requestedAt: new Date().toISOString(),
    });
    d.revertedBy = actor;
  } catch (err) {
    const f = failureOf(err);
    s.revert = { kind: 'failed', error: f.message, conflict: f.type === FailureType.RevertConflict };
    d.revertedBy = undefined;
  }
  return s.revert;
}

/**
 * Rolls the rollback candidates (or those of them named in `only`) back to their recorded generations:
 * wave by wave in reverse order, inside a wave as many at once as the wave deployed.
 */
export async function rollbackHosts(d: DeploymentRecord, only?: string[]): Promise<RollbackResult> {
  const result: RollbackResult = { rolledBack: [], failed: [] };
  const onlySet = only === undefined ? undefined : new Set(only);
  const candidates = rollbackCandidates(d.facts()).filter((h) => onlySet === undefined || onlySet.has(h.name));
  // Linear: each candidate into the waves that list it (a Set per wave, not a scan per host).
  const waves = [...d.rollout.waves].reverse();
  const byWave = waves.map(() => [] as HostStatus[]);
  const sets = waves.map((w) => new Set(w.hosts));
  for (const h of candidates) for (const [i, set] of sets.entries()) if (set.has(h.name)) byWave[i]?.push(h);
  if (d.bounded && candidates.length > INLINE_HOST_OPS) {
    await rollbackInChildren(d, waves.map((w, i) => ({ maxParallel: w.maxParallel, hosts: byWave[i] ?? [] })), result);
    return result;
  }
  for (const [i, wave] of waves.entries()) {
    const inWave = byWave[i] ?? [];
    await pool(inWave, wave.maxParallel, async (h) => {
      const to = h.before as Generation;
      d.moveHost(h, 'rolling-back');
      try {
        // Where it landed: the recorded number, or a new one when the recorded link had been collected.
        h.now = await d.step(hostStepFor('rollback', d.spec(h.name)), `${h.name}/rollback`, `roll back ${h.name} to generation ${to.number}`).rollbackHost({ deploymentId: d.input.deploymentId, host: d.spec(h.name), to });
        h.uncertain = undefined;
        d.moveHost(h, 'rolled-back');
        result.rolledBack.push(h.name);
      } catch (err) {
        h.error = `rollback to generation ${to.number} failed: ${failureOf(err).message}`;
        d.moveHost(h, 'rollback-failed');
        result.failed.push(h.name);
      }
    });
  }
  return result;
}

/**
 * Many hosts rolled back by hostOpsWorkflow children (workflows/host-ops.ts), in turn: wave by wave
 * in the order given (last wave first), each wave's hosts at its maxParallel, as inline.
 */
async function rollbackInChildren(d: DeploymentRecord, waves: Array<{ maxParallel: number; hosts: HostStatus[] }>, result: RollbackResult): Promise<void> {
  d.hostOpsRuns += 1;
  const byName = new Map(waves.flatMap((w) => w.hosts.map((h) => [h.name, h] as const)));
  d.batch(() => {
    for (const h of byName.values()) d.moveHost(h, 'rolling-back');
  });
  await hostOpsInChildren(
    `${d.input.deploymentId}-rollback-${d.hostOpsRuns}`,
    { deploymentId: d.input.deploymentId, deploymentRunId: workflowInfo().runId, op: 'rollback' },
    waves.filter((w) => w.hosts.length > 0).map((w) => ({ maxParallel: w.maxParallel, hosts: w.hosts.map((h) => ({ host: d.spec(h.name), to: h.before as Generation })) })),
    hostOpsPerChild(d.rollout.hostsPerChild),
    (results) =>
      d.batch(() => {
        for (const r of results) {
          const h = byName.get(r.name);
          if (!h) continue;
          if (r.error === undefined && r.now) {
            h.now = r.now;
            h.uncertain = undefined;
            d.moveHost(h, 'rolled-back');
            result.rolledBack.push(h.name);
          } else {
            h.error = `rollback to generation ${(h.before as Generation).number} failed: ${r.error ?? 'no result'}`;
            d.moveHost(h, 'rollback-failed');
            result.failed.push(h.name);
          }
        }
      }),
    d.byRef ? d.input.hosts : undefined,
  );
}
