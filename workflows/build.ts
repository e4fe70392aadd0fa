import type { HostSpec } from '../src/domain/deployment';
import { failureOf, hostStepFor, pool, stepper } from './common';

export interface BuildInput {
  deploymentId: string;
  hosts: HostSpec[];
  flakeRef: string;
  maxParallel: number;
}

export interface BuildResult {
  targets: Record<string, string>;
  failures: Array<{ host: string; error: string }>;
}

/**
 * The build-first phase, as a child workflow: every host's closure is built (on the host) before the
 * first switch, so an evaluation or build error stops the deployment with no host touched.
 */
export async function buildWorkflow(input: BuildInput): Promise<BuildResult> {
  const step = stepper();
  const targets: Record<string, string> = {};
  const failures: BuildResult['failures'] = [];
  await pool(input.hosts, input.maxParallel, async (host) => {
    try {
      const r = await step(hostStepFor('build', host), `${host.name}/build`, `build ${host.name}'s closure`).buildHost({ deploymentId: input.deploymentId, host, flakeRef: input.flakeRef });
      targets[host.name] = r.target;
    } catch (err) {
      failures.push({ host: host.name, error: failureOf(err).message });
    }
  });
  return { targets, failures };
}
