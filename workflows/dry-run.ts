import type { HostPlan } from '../src/domain/activities';
import type { DeployInput, Generation } from '../src/domain/deployment';
import { fillFlakeRef } from '../src/domain/flake-ref';
import { defaultRollout } from '../src/domain/rollout';
import { pool, readStep, stepper } from './common';

export interface DeployPlan {
  deploymentId: string;
  repository: DeployInput['repository'];
  change: DeployInput['change'];
  /** The flake reference each host would build; `<merge-sha>` until the pull request is merged. */
  flakeRef: string;
  onFailure: DeployInput['onFailure'];
  failureBudget: number;
  buildFirst: boolean;
  healthChecks: number;
  held: string[];
  waves: Array<{
    name: string;
    maxParallel: number;
    bakeSeconds: number;
    hosts: Array<{ name: string; kind: string; address: string; generationNow?: Generation; error?: string; commands: string[] }>;
  }>;
}

/**
 * A dry run: the plan (waves, hosts, the commands each host would run, the generation each host is on
 * now) without touching anything: it only reads generations. Nothing is merged, built or switched.
 */
export async function dryRunWorkflow(input: DeployInput): Promise<DeployPlan> {
  const step = stepper();
  const rollout = input.rollout ?? defaultRollout(input.hosts.map((h) => h.name));
  const sha = input.change.kind === 'commit' ? input.change.sha : '<merge-sha>';
  const repo = { owner: input.repository.owner, repo: input.repository.name };
  // The host-side validator needs a real sha to describe the commands; the plan shows the placeholder.
  const describable = fillFlakeRef(input.flakeRefTemplate, { ...repo, sha: input.change.kind === 'commit' ? input.change.sha : '0'.repeat(40) });
  const plans = new Map<string, HostPlan>();
  const held = new Set(rollout.held);
  await pool(
    input.hosts.filter((h) => !held.has(h.name)),
    8,
    async (host) => {
      plans.set(host.name, await step(readStep, `${host.name}/describe`, `describe ${host.name}`).describeHost({ deploymentId: input.deploymentId, host, flakeRef: `${describable}#${host.attr}` }));
    },
  );
  const specs = new Map(input.hosts.map((h) => [h.name, h]));
  const show = (c: string): string => (input.change.kind === 'commit' ? c : c.split('0'.repeat(40)).join(sha));
  return {
    deploymentId: input.deploymentId,
    repository: input.repository,
    change: input.change,
    flakeRef: fillFlakeRef(input.flakeRefTemplate, { ...repo, sha }),
    onFailure: input.onFailure,
    failureBudget: rollout.failureBudget,
    buildFirst: rollout.buildFirst,
    healthChecks: rollout.healthChecks.length,
    held: rollout.held,
    waves: rollout.waves.map((w) => ({
      name: w.name,
      maxParallel: w.maxParallel,
      bakeSeconds: w.bakeSeconds,
      hosts: w.hosts
        .filter((n) => !held.has(n))
        .map((n) => {
          const spec = specs.get(n);
          const plan = plans.get(n);
          return {
            name: n,
            kind: spec?.kind ?? 'nixos',
            address: spec ? `${spec.user}@${spec.address}:${spec.port}` : '?',
            ...(plan?.generation ? { generationNow: plan.generation } : {}),
            ...(plan?.error ? { error: plan.error } : {}),
            commands: (plan?.commands ?? []).map(show),
          };
        }),
    })),
  };
}
