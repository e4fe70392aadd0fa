/**
 * The rollout a deployment follows when its fleet file names none (pure; bundled into workflow code):
 * one wave of every host in order, one at a time, no budget, nothing held, no checks. The fleet file's
 * rollout (src/schemas/fleet.schema.ts `rolloutOf`) starts from these defaults too.
 */
import type { RolloutPolicy } from './deployment';

export function defaultRollout(hostNames: readonly string[]): RolloutPolicy {
  return {
    waves: [{ name: 'all', hosts: [...hostNames], maxParallel: 1, bakeSeconds: 0 }],
    failureBudget: 0,
    held: [],
    buildFirst: false,
    failedUnits: 'fatal',
    healthChecks: [],
    healthGraceSeconds: 0,
    allowQuarantined: false,
    confirmTimeoutSeconds: 0,
  };
}
