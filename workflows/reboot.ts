/**
 * Durable reboots and offline hosts, as workflow helpers of the per-host flow (workflows/wave.ts).
 * The rules are pure (src/domain/reboot.ts, src/domain/offline.ts); here they are orchestrated. Every
 * wait is the workflow's own timer between short probe activities, so a worker that dies mid-wait
 * changes nothing: another worker replays the history and goes on probing until the deadline.
 *
 * A reboot (rollout.reboot: always, or when-needed and the kernel, initrd or modules change):
 *   build the target (unless built first) → read the boot state (boot id, what booted) →
 *   `switch-to-configuration boot` of the target → `systemctl reboot` (guarded by the boot id) →
 *   probe until the host answers with a new boot id, within rollout.rebootTimeout →
 *   /run/booted-system and /run/current-system must be the target (rebootVerdict).
 *   Otherwise: the recorded generation becomes the boot default again, the host reboots again and
 *   must come back on it; the host fails with what happened (RebootFailed).
 */
import { proxyActivities, sleep } from '@temporalio/workflow';
import type { ActivityOptions } from '@temporalio/workflow';
import type { DeployActivities } from '../src/domain/activities';
import type { Generation, HostSpec, HostStatus } from '../src/domain/deployment';
import { offlineDecision, type OfflinePolicy } from '../src/domain/offline';
import { nextProbeDelayMs, rebootVerdict, shouldReboot, DEFAULT_REBOOT_TIMEOUT_SECONDS, type BootObservation, type NeedsReboot, type RebootActivities, type RebootPolicy, type RebootVerdict } from '../src/domain/reboot';
import { failureOf, hostStepFor } from './common';

/** The host did not come back on the new generation; `restored`: it is back on the recorded one. */
export class RebootFailed extends Error {
  override name = 'RebootFailed';
  constructor(
    message: string,
    readonly restored: boolean,
  ) {
    super(message);
  }
}

export interface HostFlow {
  deploymentId: string;
  host: HostSpec;
  /** This host's step counter (its activity ids), kept by the caller: no module state in workflow code. */
  steps: { n: number };
}

/** Activity stubs named for the host and the step (`reboot-3-hsb0/probe`); a probe is tried once. */
function acts(f: HostFlow, what: string, options: ActivityOptions): RebootActivities & DeployActivities {
  f.steps.n += 1;
  return proxyActivities<RebootActivities & DeployActivities>({ ...options, activityId: `reboot-${f.steps.n}-${f.host.name}/${what}`, summary: `${what} ${f.host.name}` });
}
const PROBE: ActivityOptions = { startToCloseTimeout: '1 minute', retry: { maximumAttempts: 1 } };

// ---- offline hosts ----

/** Probes the host before its build; waits for it (durable timers) as rollout.offline says. */
export async function awaitReachable(f: HostFlow, policy: OfflinePolicy): Promise<{ kind: 'deploy' } | { kind: 'skip' | 'fail'; reason: string }> {
  const started = Date.now();
  for (let attempt = 0; ; attempt++) {
    const probe = await acts(f, 'probe', PROBE)
      .probeHost({ deploymentId: f.deploymentId, host: f.host })
      .catch((err: unknown) => ({ reachable: false, error: failureOf(err).message }));
    const d = offlineDecision(policy, probe, Date.now() - started, attempt);
    if (d.kind !== 'wait') return d;
    await sleep(d.delayMs);
  }
}

// ---- reboots ----

export interface RebootPlan {
  reboot: boolean;
  target: string;
  bootId: string;
  need: NeedsReboot;
}

/** Whether this host's switch goes through a reboot: its target, what booted, the policy. */
export async function planReboot(f: HostFlow, policy: RebootPolicy, flakeRef: string, builtTarget: string | undefined): Promise<RebootPlan | undefined> {
  if (!shouldReboot(policy, f.host.kind, undefined) || f.host.commands?.switch !== undefined) return undefined;
  const target = builtTarget ?? (await acts(f, 'build', hostStepFor('build', f.host)).buildHost({ deploymentId: f.deploymentId, host: f.host, flakeRef })).target;
  const st = await acts(f, 'boot-state', hostStepFor('read', f.host)).readBootState({ deploymentId: f.deploymentId, host: f.host, target });
  return { reboot: shouldReboot(policy, f.host.kind, st.need), target, bootId: st.bootId, need: st.need };
}

/** What the host row shows about a reboot (`differs`: which parts changed). */
export function rebootInfo(need: NeedsReboot, rebooted?: boolean): NonNullable<HostStatus['reboot']> {
  return { needed: need.needed, ...(need.needed ? { differs: need.differs } : {}), ...(rebooted !== undefined ? { rebooted } : {}) };
}

/** Probes (durable timers between) until the host answers from a boot other than `bootId`, or the deadline. */
async function waitForBoot(f: HostFlow, bootId: string, expected: string, timeoutSeconds: number): Promise<{ verdict: RebootVerdict | { kind: 'never-came-back'; error: string }; seen?: BootObservation }> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  let last: BootObservation | undefined;
  let lastError = 'no answer';
  for (let attempt = 0; ; attempt++) {
    const p = await acts(f, 'probe', PROBE)
      .probeBoot({ deploymentId: f.deploymentId, host: f.host, target: expected })
      .catch((err: unknown) => ({ reachable: false as const, error: failureOf(err).message }));
    if (p.reachable) {
      last = { bootId: p.bootId, bootedSystem: p.bootedSystem, currentSystem: p.currentSystem };
      const v = rebootVerdict(bootId, last, expected);
      // The same boot id: the reboot has not happened yet (systemctl reboot returns before the host goes down).
      if (v.kind !== 'not-rebooted') return { verdict: v, seen: last };
    } else lastError = p.error;
    const delay = nextProbeDelayMs(attempt, deadline - Date.now());
    if (delay === null) break;
    await sleep(delay);
  }
  if (last && last.bootId === bootId) return { verdict: { kind: 'not-rebooted' }, seen: last };
  return { verdict: { kind: 'never-came-back', error: lastError } };
}

/** `switch-to-configuration boot` of the target, a reboot, the wait, the check; on failure, back to the recorded generation. */
export async function switchByReboot(f: HostFlow, before: Generation, plan: RebootPlan, timeoutSeconds = DEFAULT_REBOOT_TIMEOUT_SECONDS): Promise<Generation & { warning?: string }> {
  const { host, deploymentId } = f;
  const after = await acts(f, 'boot', hostStepFor('rollback', host)).bootHost({ deploymentId, host, target: plan.target });
  await acts(f, 'reboot', hostStepFor('read', host)).rebootHost({ deploymentId, host, bootId: plan.bootId });
  const { verdict, seen } = await waitForBoot(f, plan.bootId, plan.target, timeoutSeconds);
  if (verdict.kind === 'booted-expected') return after;
  const what =
    verdict.kind === 'never-came-back'
      ? `did not come back within ${timeoutSeconds}s of its reboot (${verdict.error})`
      : verdict.kind === 'not-rebooted'
        ? `did not reboot within ${timeoutSeconds}s (same boot id)`
        : `booted ${verdict.booted ?? 'nothing'} (active: ${verdict.current ?? 'nothing'}), not generation ${after.number} (${plan.target})`;
  if (verdict.kind === 'never-came-back' || !seen) {
    throw new RebootFailed(`${host.name} ${what}; its boot default is generation ${after.number}: it was not set back (the host did not answer)`, false);
  }
  const back = await restoreByReboot(f, before, seen.bootId, timeoutSeconds);
  throw new RebootFailed(`${host.name} ${what}; ${back.message}`, back.restored);
}

/** The recorded generation becomes the boot default again and the host reboots onto it (after a failed reboot or failed checks). */
export async function restoreByReboot(f: HostFlow, before: Generation, bootId: string | undefined, timeoutSeconds = DEFAULT_REBOOT_TIMEOUT_SECONDS): Promise<{ restored: boolean; message: string }> {
  const { host, deploymentId } = f;
  try {
    await acts(f, 'boot-recorded', hostStepFor('rollback', host)).bootRecordedHost({ deploymentId, host, recorded: before });
    const id = bootId ?? (await acts(f, 'boot-state', hostStepFor('read', host)).readBootState({ deploymentId, host, target: before.storePath })).bootId;
    await acts(f, 'reboot', hostStepFor('read', host)).rebootHost({ deploymentId, host, bootId: id });
    const { verdict } = await waitForBoot(f, id, before.storePath, timeoutSeconds);
    if (verdict.kind === 'booted-expected') return { restored: true, message: `set back to generation ${before.number} as the boot default and rebooted onto it` };
    return { restored: false, message: `set back to generation ${before.number} as the boot default, but its reboot onto it failed too (${verdict.kind})` };
  } catch (err) {
    return { restored: false, message: `setting generation ${before.number} back as the boot default failed: ${failureOf(err).message}` };
  }
}

/** After a plain switch: does the new generation need a reboot to take effect (kernel, initrd, modules)? Best effort. */
export async function detectReboot(f: HostFlow, target: string): Promise<NeedsReboot | undefined> {
  if (f.host.kind !== 'nixos' || f.host.commands?.switch !== undefined) return undefined;
  return acts(f, 'boot-state', { ...PROBE, startToCloseTimeout: '30 seconds' })
    .readBootState({ deploymentId: f.deploymentId, host: f.host, target })
    .then(
      (st) => st.need,
      () => undefined,
    );
}
