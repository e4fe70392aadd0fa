import { proxyActivities } from '@temporalio/workflow';
import type { HostPlan } from '../src/domain/activities';
import { flakeRefOnBranch, type ClosureDiff, type ClosureDiffActivities } from '../src/domain/closure-diff';
import type { DeployInput, Generation, HostSpec } from '../src/domain/deployment';
import { inputHosts } from '../src/domain/host-refs';
import { fillFlakeRef } from '../src/domain/flake-ref';
import { defaultRollout } from '../src/domain/rollout';
import { failureOf, githubStep, hostStepFor, pool, readStep, stepper } from './common';

export interface DryRunOptions {
  /**
   * Also say what each host would change: build its target (into the store only: no profile moves)
   * and diff its closure against the generation it runs (`nix store diff-closures` on the host).
   */
  closureDiff?: boolean;
}

export interface DeployPlan {
  deploymentId: string;
  repository: DeployInput['repository'];
  change: DeployInput['change'];
  /** The flake reference each host would build; `<merge-sha>` until the pull request is merged. */
  flakeRef: string;
  onFailure: DeployInput['onFailure'];
  /** With closureDiff: the commit the closures were built from (a pull request's head until it is merged). */
  diffedAt?: { sha: string; source: 'commit' | 'pull-request-head' };
  failureBudget: number;
  buildFirst: boolean;
  healthChecks: number;
  held: string[];
  waves: Array<{
    name: string;
    maxParallel: number;
    bakeSeconds: number;
    hosts: Array<{ name: string; kind: string; address: string; generationNow?: Generation; error?: string; commands: string[]; closureDiff?: ClosureDiff; closureDiffError?: string }>;
  }>;
}

/**
 * What changed (or will change) on one host of a deployment: the closure difference between two of
 * its store paths (the recorded generation and the switched one or the build's target). A read.
 */
export async function hostChangesWorkflow(input: { deploymentId: string; host: HostSpec; from: string; to: string }): Promise<ClosureDiff> {
  return proxyActivities<ClosureDiffActivities>({ ...readStep, activityId: `diff-${input.host.name}`, summary: `closure diff ${input.host.name}` }).diffStorePaths(input);
}

/**
 * A dry run: the plan (waves, hosts, the commands each host would run, the generation each host is on
 * now) without touching anything: it only reads generations. Nothing is merged, built or switched.
 * With `closureDiff`, each host also builds its target into its store (no profile moves, no
 * activation) so the plan can say what would change on it: a pull request is built at its head commit.
 */
export async function dryRunWorkflow(started: DeployInput, opts: DryRunOptions = {}): Promise<DeployPlan> {
  const input: DeployInput = { ...started, hosts: inputHosts(started) };
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
      plans.set(host.name, await step(readStep, `${host.name}/describe`, `describe ${host.name}`).describeHost({ deploymentId: input.deploymentId, host, flakeRef: describable }));
    },
  );
  const diffs = new Map<string, { diff?: ClosureDiff; error?: string }>();
  let diffedAt: DeployPlan['diffedAt'];
  if (opts.closureDiff) {
    const change = input.change;
    let at: NonNullable<DeployPlan['diffedAt']>;
    let template = fillFlakeRef(input.flakeRefTemplate, repo);
    if (change.kind === 'commit') at = { sha: change.sha, source: 'commit' };
    else {
      // Not merged yet: the pull request's head, fetched from its own branch.
      const head = await proxyActivities<ClosureDiffActivities>({ ...githubStep, activityId: 'pr-head', summary: `read pull request #${change.number}` }).pullRequestHead({ repository: input.repository, number: change.number });
      at = { sha: head.sha, source: 'pull-request-head' };
      template = flakeRefOnBranch(template, head.ref);
    }
    diffedAt = at;
    const pinned = fillFlakeRef(template, { ...repo, sha: at.sha });
    await pool(
      input.hosts.filter((h) => !held.has(h.name) && plans.get(h.name)?.generation),
      8,
      async (host) => {
        const from = plans.get(host.name)?.generation as Generation;
        try {
          const diff = await proxyActivities<ClosureDiffActivities>({ ...hostStepFor('build', host), activityId: `diff-${host.name}`, summary: `closure diff ${host.name}` }).closureDiff({
            deploymentId: input.deploymentId,
            host,
            flakeRef: pinned,
            from,
          });
          diffs.set(host.name, { diff });
        } catch (err) {
          diffs.set(host.name, { error: failureOf(err).message });
        }
      },
    );
  }
  const specs = new Map(input.hosts.map((h) => [h.name, h]));
  const show = (c: string): string => (input.change.kind === 'commit' ? c : c.split('0'.repeat(40)).join(sha));
  return {
    deploymentId: input.deploymentId,
    repository: input.repository,
    change: input.change,
    flakeRef: fillFlakeRef(input.flakeRefTemplate, { ...repo, sha }),
    onFailure: input.onFailure,
    ...(diffedAt ? { diffedAt } : {}),
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
            ...(diffs.get(n)?.diff ? { closureDiff: diffs.get(n)?.diff } : {}),
            ...(diffs.get(n)?.error ? { closureDiffError: diffs.get(n)?.error } : {}),
          };
        }),
    })),
  };
}
