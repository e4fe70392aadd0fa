import { ActivityCancellationType, CancellationScope, getExternalWorkflowHandle, isCancellation, patched, proxyActivities, sleep, workflowInfo } from '@temporalio/workflow';
import { confirmUnit, FailureType, type DeployActivities, type SwitchFailedDetails } from '../src/domain/activities';
import type { Generation, HealthCheck, HostSpec, Wave } from '../src/domain/deployment';
import { hostChange } from '../src/domain/host-change';
import type { OfflinePolicy } from '../src/domain/offline';
import type { RebootPolicy } from '../src/domain/reboot';
import { failureOf, hostStepFor, hostUpdateSignal, pool, stepper, type HostUpdate } from './common';
import type { WaveControl } from './messages';
import { WaveControls } from './wave-controls';
import { awaitReachable, detectReboot, planReboot, RebootFailed, rebootInfo, restoreByReboot, switchByReboot, type RebootPlan } from './reboot';
import { WaveLedger } from './wave-report';
import { LOCAL_READS_PATCH, localRead, ORDERED_READS_PATCH } from './host-reads';
import { foldRecords, type HostsRef } from '../src/domain/host-refs';
import { readHosts } from './hosts-by-ref';

export interface WaveInput {
  deploymentId: string;
  parentWorkflowId: string;
  wave: Wave;
  hosts: HostSpec[];
  /** Flake reference pinned at the merge commit, without `#attr`. */
  flakeRef: string;
  /** Build-first targets per host, when the rollout built first. */
  targets: Record<string, string>;
  /** Failures this wave may still absorb before the deployment halts. */
  budgetLeft: number;
  failedUnits: 'fatal' | 'tolerate';
  healthChecks: HealthCheck[];
  healthGraceSeconds: number;
  /** Connectivity confirmation (NixOS hosts on the default commands); 0: off. */
  confirmTimeoutSeconds: number;
  /** The operator controls as the wave starts (pause, halt, skipped hosts); later changes come by waveControlSignal. */
  control?: WaveControl;
  /** rollout.reboot (workflows/reboot.ts); absent: never. */
  reboot?: RebootPolicy;
  rebootTimeoutSeconds?: number;
  /** rollout.offline: a probe before the host's build; absent: none. */
  offline?: OfflinePolicy;
  /**
   * `result`: the hosts' records go back in the result only (and the `waveHosts` query while it runs);
   * absent (children of deployments started before): each record is also signalled to the parent.
   */
  report?: 'result';
  /** A retry's hosts: the generation the deployment recorded for each before its first attempt. */
  recorded?: Record<string, Generation>;
  /** The hosts by reference into the deployment's input (then `hosts` and `wave.hosts` are empty; workflows/hosts-by-ref.ts). */
  hostsRef?: HostsRef;
  /** Records folded to one per host in the result, with the order that unfolds them (bytes in the deployment's history). */
  compact?: true;
}

class ConfirmFailed extends Error {
  override name = 'ConfirmFailed';
}

export interface WaveResult {
  failures: number;
  halted: boolean;
  attempted: string[];
  /** Every host record in the order the transitions happened (workflows/wave-report.ts); folded when `order` is set. */
  records?: HostUpdate[];
  /** A compact result: the records folded to one per host, and the order that unfolds them (src/domain/host-refs.ts). */
  order?: number[];
}

/**
 * One wave of a deployment, as a child workflow (large fleets keep each execution's history small):
 * per host record → switch → verify → health checks, at most `maxParallel` hosts at once, in order.
 * Each host's change of state is recorded in order, answered by the `waveHosts` query while the wave
 * runs, and returned in the result (workflows/wave-report.ts); a child of a deployment started before
 * that also signals each one to the deployment as it happens. When failures exceed the
 * budget, no further host starts (those in flight finish).
 */
export async function waveWorkflow(input: WaveInput): Promise<WaveResult> {
  const step = stepper();
  const parent = getExternalWorkflowHandle(input.parentWorkflowId);
  const ledger = new WaveLedger();
  const byResult = input.report === 'result';
  // Record and verify as local activities (workflows/host-reads.ts) only in children started between
  // b-speed-local-reads and ORDERED_READS_PATCH: concurrent local activities resolve in completion order
  // when first run and in sequence order on replay, so a wave of parallel hosts replayed on another
  // worker scheduled its next commands in another order (a nondeterminism error that wedged a
  // 5,000-host wave shared by three workers). New children run them as ordinary activities again.
  const localReads = !patched(ORDERED_READS_PATCH) && patched(LOCAL_READS_PATCH);
  const tell = async (u: HostUpdate): Promise<void> => {
    // The parent knows each host's wave: a record in the result leaves it out (bytes per host).
    if (byResult) {
      const { wave: _wave, ...rest } = u;
      ledger.add(rest);
      return;
    }
    ledger.add(u);
    await parent.signal(hostUpdateSignal, u);
  };
  let failures = 0;
  const attempted: string[] = [];
  const halted = (): boolean => failures > input.budgetLeft;

  const deployHost = async (host: HostSpec): Promise<void> => {
    attempted.push(host.name);
    const flow = { deploymentId: input.deploymentId, host, steps: { n: 0 } };
    if (input.offline && patched('e-reboot-offline')) {
      const gate = await awaitReachable(flow, input.offline);
      if (gate.kind !== 'deploy') {
        if (gate.kind === 'fail') failures += 1;
        await tell({ name: host.name, wave: input.wave.name, offline: gate.reason, ...(gate.kind === 'fail' ? { state: 'failed', error: gate.reason, profileMoved: false } : { state: 'not-attempted' }) });
        return;
      }
    }
    // Two signals per healthy host (switching with the recorded generation, then switched): the
    // deployment's own history grows by little per host.
    let before: Generation | undefined;
    let afterGen: Generation | undefined;
    let warning: string | undefined;
    let plan: RebootPlan | undefined;
    try {
      // A retry keeps the generation the deployment recorded first (the host may have moved since): a
      // second record would make the failed generation the way back.
      const recorded = input.recorded?.[host.name];
      before =
        recorded && patched('retry-keeps-recorded')
          ? recorded
          : await (localReads ? localRead(host, `record ${host.name}'s generation`) : step(hostStepFor('read', host), `${host.name}/record`, `record ${host.name}'s generation`)).recordGeneration({ deploymentId: input.deploymentId, host });
      await tell({ name: host.name, state: 'switching', wave: input.wave.name, before });
      const expectedStorePath = input.targets[host.name];
      if (input.reboot && patched('e-reboot')) plan = await planReboot(flow, input.reboot, input.flakeRef, expectedStorePath);
      const confirm = !plan?.reboot && input.confirmTimeoutSeconds > 0 && host.kind === 'nixos' && host.commands?.switch === undefined;
      // On a cancel, wait until the switch activity has stopped its remote work (it learns of the cancel
      // through its heartbeats) before this host counts as failed: the compensation then never reads a
      // host that a still-running switch may move after it. (Deployments started before: as before.)
      const switchOptions = patched('switch-waits-for-cancellation')
        ? { ...hostStepFor('switch', host), cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED }
        : hostStepFor('switch', host);
      const after = plan?.reboot ? await switchByReboot(flow, before, plan, input.rebootTimeoutSeconds) : await step(switchOptions, `${host.name}/switch`, `switch ${host.name}`).switchHost({
        deploymentId: input.deploymentId,
        deploymentRunId: workflowInfo().root?.runId ?? workflowInfo().runId,
        host,
        flakeRef: input.flakeRef,
        before,
        failedUnits: input.failedUnits,
        ...(expectedStorePath ? { expectedStorePath } : {}),
        ...(confirm ? { confirmTimeoutSeconds: input.confirmTimeoutSeconds } : {}),
      });
      const generation = { number: after.number, storePath: after.storePath };
      afterGen = generation;
      warning = after.warning;
      if (confirm) {
        // Prove the host still takes NEW connections before its self-rollback timer fires.
        const confirmed = await proxyActivities<DeployActivities>({
          activityId: `${host.name}/confirm`,
          summary: `confirm ${host.name} is reachable over a new connection`,
          scheduleToCloseTimeout: Math.max(1, input.confirmTimeoutSeconds - 1) * 1000,
          startToCloseTimeout: Math.max(1, Math.floor(input.confirmTimeoutSeconds / 2)) * 1000,
          retry: { initialInterval: '200 milliseconds', backoffCoefficient: 1.5, maximumInterval: '2 seconds', nonRetryableErrorTypes: [FailureType.HostKeyMismatch, FailureType.InvalidInput] },
        })
          .confirmHost({ deploymentId: input.deploymentId, host, unit: confirmUnit(input.deploymentId), before, switched: generation })
          .catch((err: unknown) => {
            throw new ConfirmFailed(`could not reach ${host.name} over a new connection within ${input.confirmTimeoutSeconds}s of its activation (${failureOf(err).message}); it rolls itself back to generation ${before?.number}`);
          });
        if (confirmed === 'timer-gone') {
          throw new ConfirmFailed(`${host.name} had already rolled itself back to generation ${before.number} (its confirmation timer fired first)`);
        }
      }
      const verifySummary = `verify ${host.name} runs generation ${after.number}`;
      await (localReads ? localRead(host, verifySummary) : step(hostStepFor('read', host), `${host.name}/verify`, verifySummary)).verifyHost({ deploymentId: input.deploymentId, host, expected: generation });
      // Whether the new generation needs a reboot to take full effect (kernel, initrd, modules), for the host row.
      // Read whenever the host can say (issue 15): also without rollout.reboot (waves started before: only with it).
      const need = plan ? plan.need : (input.reboot && patched('e-reboot-detect')) || patched('c-ops-reboot-detect') ? await detectReboot(flow, generation.storePath) : undefined;
      const reboot = need ? rebootInfo(need, plan ? plan.reboot : undefined) : undefined;
      if (input.healthChecks.length > 0) {
        // Retry the checks through the grace period; the host fails when they still fail after it: the
        // last check is one that started once the grace period was over, however long a check takes.
        // (Deployments started before that rule stop at the first check that ends after it.)
        const finalCheckAfterGrace = patched('health-final-check-after-grace');
        const deadline = Date.now() + input.healthGraceSeconds * 1000;
        let problems: string[] = [];
        for (;;) {
          const startedAt = Date.now();
          const report = await step(hostStepFor('health', host), `${host.name}/health`, `health checks on ${host.name}`).checkHealth({ deploymentId: input.deploymentId, host, checks: input.healthChecks });
          problems = report.problems;
          if (report.healthy || (finalCheckAfterGrace ? startedAt : Date.now()) >= deadline) break;
          await sleep(Math.min(5_000, Math.max(500, deadline - Date.now())));
        }
        if (problems.length > 0) {
          failures += 1;
          // Rebooted onto it: the way back is the recorded generation as the boot default and a reboot.
          const back = plan?.reboot && before ? await restoreByReboot(flow, before, undefined, input.rebootTimeoutSeconds) : undefined;
          await tell({
            name: host.name,
            state: 'failed',
            profileMoved: true,
            after: generation,
            ...(warning ? { warning } : {}),
            error: `health check failed after ${input.healthGraceSeconds}s: ${problems.join('; ')}${back ? `; ${back.message}` : ''}`,
            ...(reboot ? { reboot } : {}),
          });
          return;
        }
      }
      await tell({ name: host.name, state: 'switched', after: generation, ...(warning ? { warning } : {}), ...(reboot ? { reboot } : {}) });
    } catch (err) {
      if (isCancellation(err)) {
        // Every in-flight host is reported, not only the first: the signal is sent outside the cancelled
        // scope (inside it, it would be cancelled before it is sent). The compensation reads the host.
        const update: HostUpdate = { name: host.name, state: 'failed', uncertain: 'deployment cancelled while this host was being switched', ...(afterGen ? { after: afterGen, profileMoved: true } : {}) };
        if (patched('wave-cancel-reports-every-host')) await CancellationScope.nonCancellable(() => tell(update));
        else await tell(update);
        throw err;
      }
      failures += 1;
      const f = failureOf(err);
      const update: HostUpdate = { name: host.name, state: 'failed', wave: input.wave.name, error: f.message, ...(afterGen ? { after: afterGen } : {}) };
      if (err instanceof RebootFailed) {
        // The profile moved (boot default); restored: back on the recorded generation, else unknown until read.
        update.profileMoved = true;
        update.reboot = { needed: true, rebooted: false };
        if (!err.restored) update.uncertain = err.message;
      } else if (err instanceof ConfirmFailed) {
        // The host was switched and is (or will be) rolling itself back; the compensation checks it.
        update.profileMoved = true;
        update.uncertain = err.message;
      } else if (f.type === FailureType.SwitchFailed) {
        const d = f.details as SwitchFailedDetails | undefined;
        update.profileMoved = d?.profileMoved ?? false;
        if (d?.after) update.after = d.after;
        if (d?.superseded) update.warning = 'switched by an earlier attempt and rolled back since: not switched again';
      } else if (f.type === FailureType.ConnectionLost || f.type === FailureType.HostUnreachable || f.type === FailureType.VerifyFailed) {
        update.uncertain = `${f.type}: ${f.message}`;
      }
      // Whether the host changed follows from the host, not from the error's class (hostChange).
      const change = hostChange({ before, after: afterGen, failureType: f.type, switchProfileMoved: update.profileMoved });
      if (change.kind === 'moved') update.profileMoved = true;
      else if (change.kind === 'uncertain' && before !== undefined) update.uncertain ??= `${f.type}: ${f.message}`;
      if (before === undefined) update.uncertain ??= 'the generation could not be recorded';
      await tell(update);
    }
  };

  // Operator controls (pause, abort, skip) reach the pool here; children started before them run as they did.
  const hosts = input.hostsRef ? await readHosts(input.hostsRef) : input.hosts;
  if (patched('d-controls-wave')) {
    const controls = new WaveControls(input.control);
    await pool(hosts, input.wave.maxParallel, (h) => controls.run(h.name, halted, () => deployHost(h)), () => halted() || controls.halted);
  } else {
    await pool(hosts, input.wave.maxParallel, deployHost, halted);
  }
  const folded = input.compact && byResult ? foldRecords(ledger.records) : undefined;
  if (folded) return { failures, halted: halted(), attempted, records: folded.records, order: folded.order };
  return { failures, halted: halted(), attempted, ...(byResult ? { records: ledger.records } : {}) };
}
