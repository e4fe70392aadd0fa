import { patched } from '@temporalio/workflow';
import type { HostSpec } from '../src/domain/deployment';
import type { HostsRef } from '../src/domain/host-refs';
import type { OfflineGate, OfflinePolicy } from '../src/domain/offline';
import { failureOf, hostStepFor, pool, stepper } from './common';
import { readHosts } from './hosts-by-ref';
import { awaitReachable } from './reboot';

export interface BuildInput {
  deploymentId: string;
  hosts: HostSpec[];
  /** The hosts by reference into the deployment's input (then `hosts` is empty; workflows/hosts-by-ref.ts). */
  hostsRef?: HostsRef;
  flakeRef: string;
  maxParallel: number;
  /** rollout.offline: each host is probed before its build (workflows/reboot.ts awaitReachable); absent: no probe. */
  offline?: OfflinePolicy;
}

export interface BuildResult {
  targets: Record<string, string>;
  failures: Array<{ host: string; error: string }>;
  /** Hosts not built because their probe said so (rollout.offline: skip, fail, or past the wait). */
  offline?: OfflineGate[];
}

/**
 * The build-first phase, as a child workflow: every host's closure is built (on the host) before the
 * first switch, so an evaluation or build error stops the deployment with no host touched. Under
 * rollout.offline each host is probed first (skipped, waited for durably, or failed as the policy says).
 * A large fleet builds in several of these children in turn, each of at most the rollout's child size
 * (workflows/deploy.ts buildFirst, src/domain/child-chunks.ts).
 */
export async function buildWorkflow(input: BuildInput): Promise<BuildResult> {
  const step = stepper();
  const targets: Record<string, string> = {};
  const failures: BuildResult['failures'] = [];
  const offline: OfflineGate[] = [];
  const hosts = input.hostsRef ? await readHosts(input.hostsRef) : input.hosts;
  await pool(hosts, input.maxParallel, async (host) => {
    if (input.offline && patched('c-ops-build-probe')) {
      const gate = await awaitReachable({ deploymentId: input.deploymentId, host, steps: { n: 0 } }, input.offline);
      if (gate.kind !== 'deploy') {
        offline.push({ host: host.name, kind: gate.kind, reason: gate.reason });
        return;
      }
    }
    try {
      const r = await step(hostStepFor('build', host), `${host.name}/build`, `build ${host.name}'s closure`).buildHost({ deploymentId: input.deploymentId, host, flakeRef: input.flakeRef });
      targets[host.name] = r.target;
    } catch (err) {
      failures.push({ host: host.name, error: failureOf(err).message });
    }
  });
  return { targets, failures, ...(offline.length > 0 ? { offline } : {}) };
}
