/**
 * What `bash scripts/demo.sh --once` must have seen for the demo to count as working: a pure function
 * of the deployment's final status and of what the hosts and the branch actually hold, so the check
 * cannot agree with a status that lies about the hosts.
 */
import type { DeploymentStatus } from '../src/domain/deployment';

export interface DemoObservation {
  status: DeploymentStatus;
  /** Each host's profile generation now (number and store path), read from the host itself. */
  generationNow: Record<string, { number: number; storePath: string }>;
  /** Subjects of the commits on the branch after the deployment's merge commit, newest first. */
  commitsAfterMerge: string[];
}

/** The problems found (empty: the demo did what README says). */
export function checkDemo(scenario: 'failing' | 'healthy', o: DemoObservation): string[] {
  const problems: string[] = [];
  const host = (name: string) => o.status.hosts.find((h) => h.name === name);
  const reverts = o.commitsAfterMerge.filter((s) => s.startsWith('Revert '));
  if (scenario === 'healthy') {
    if (o.status.outcome !== 'succeeded') problems.push(`outcome is ${o.status.outcome ?? 'unset'}, not succeeded`);
    for (const h of o.status.hosts) {
      if (h.state !== 'switched') problems.push(`${h.name} is ${h.state}, not switched`);
      else if (h.after && o.generationNow[h.name]?.storePath !== h.after.storePath) problems.push(`${h.name} runs ${describe(o.generationNow[h.name])}, not generation ${h.after.number}`);
    }
    if (reverts.length !== 0) problems.push(`${reverts.length} revert commit(s) on the branch, expected none`);
    return problems;
  }
  if (o.status.outcome !== 'failed-rolled-back') problems.push(`outcome is ${o.status.outcome ?? 'unset'}, not failed-rolled-back`);
  if (o.status.failedHost !== 'hsb1') problems.push(`the failed host is ${o.status.failedHost ?? 'none'}, not hsb1`);
  if (host('csb0')?.state !== 'not-attempted') problems.push(`csb0 is ${host('csb0')?.state ?? 'missing'}, not not-attempted`);
  for (const name of ['gpc0', 'hsb0', 'alice', 'hsb1']) {
    const h = host(name);
    if (!h) {
      problems.push(`${name} is missing from the status`);
      continue;
    }
    if (h.state !== 'rolled-back') problems.push(`${name} is ${h.state}, not rolled-back`);
    if (!h.before) problems.push(`${name} has no recorded generation`);
    // The recorded store path is what counts: Home Manager rolls back by activating the old
    // generation's store path, which makes a new generation number pointing at it.
    else if (o.generationNow[name]?.storePath !== h.before.storePath) problems.push(`${name} runs ${describe(o.generationNow[name])}, not its recorded generation ${h.before.number}`);
  }
  if (reverts.length !== 1) problems.push(`${reverts.length} revert commits on the branch after the merge, expected exactly one`);
  return problems;
}

const describe = (g: { number: number; storePath: string } | undefined): string => (g ? `generation ${g.number} (${g.storePath})` : 'an unknown generation');
