import {
  CancellationScope,
  ParentClosePolicy,
  executeChild,
  isCancellation,
  log,
  patched,
  proxySinks,
  startChild,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { DeployInput, DeploymentStatus, HostSpec, Wave } from '../src/domain/deployment';
import { fillFlakeRef } from '../src/domain/flake-ref';
import { defaultRollout } from '../src/domain/rollout';
import { failedHostOf, failureText, outcomeOf, rollbackCandidates, rollbackSummary, type DeployFailure } from '../src/domain/saga';
import { buildWorkflow, type BuildResult } from './build';
import { applyOfflineGates, offlineSkipped } from './build-offline';
import { failureOf, githubStep, hostStepFor } from './common';
import { autoCompensate, TOGETHER_PATCH } from './auto-compensation';
import { rollbackHosts } from './compensation';
import { DeploymentRecord } from './deployment-state';
import { fleetLockId, fleetLockWorkflow, legacyFleetLockId } from './fleet-lock';
import { Controls } from './controls';
import { awaitOperator, registerHandlers } from './operator';
import { recordResults } from './results';
import type { DeployerSinks } from './sinks';
import { watchForNotifications } from './notify';
import { waveWorkflow } from './wave';
import { applyChildRecords, CHILD_RECORDS_PATCH, recoverSlice, registerPageQueries } from './wave-report';
import { keepToWindow, registerWindowHandlers } from './windows';
import { compactResult, HOSTS_BY_REF_PATCH, hostsRef, waveChildHosts } from './hosts-by-ref';
import { chunkChildId, chunksOf, DEFAULT_HOSTS_PER_CHILD, hostsPerChildOf } from '../src/domain/child-chunks';
import { inputHosts, unfoldRecords } from '../src/domain/host-refs';

/** Hosts one wave child deploys at most (the rule is src/domain/child-chunks.ts). */
export { DEFAULT_HOSTS_PER_CHILD };
/** Deployments started with it build first in children of the waves' child size (buildFirst). */
export const CHUNKED_BUILD_PATCH = 'h-build-chunked-build';

const AUTOMATIC = 'nixfleet (automatic)';
const { deployments: deploymentSink } = proxySinks<DeployerSinks>();

/**
 * One deployment of a merged flake.lock update, as the runbook says it: hold the fleet, merge (guarded
 * by the head sha), build first if asked, deploy wave by wave (per host record → switch → verify in a
 * child workflow), and on a failure over the budget compensate (the merge's revert, every changed host
 * back to its recorded generation, in reverse order) where cancellation cannot interrupt it; then wait
 * for an operator. The rules (what to undo, which actions apply, the outcome) are in src/domain/saga.ts.
 */
export async function deployWorkflow(started: DeployInput): Promise<DeploymentStatus> {
  // The fleet's shared timeouts back on every host (hoisted out of the input for its size; older inputs carry them per host).
  const input: DeployInput = { ...started, hosts: inputHosts(started) };
  const rollout = input.rollout ?? defaultRollout(input.hosts.map((h) => h.name));
  const d = new DeploymentRecord(input, rollout);
  const { status } = d;
  // Waves report in their results, not by a signal per host (workflows/wave-report.ts); deployments
  // started before keep the hostUpdate signal and its handler.
  d.bounded = patched(CHILD_RECORDS_PATCH);
  // Children take their hosts by reference and give back compact results (workflows/hosts-by-ref.ts).
  d.byRef = d.bounded && patched(HOSTS_BY_REF_PATCH);
  const queue = registerHandlers(d);
  const controls = new Controls(d, queue);
  registerPageQueries(d);
  registerWindowHandlers(d);
  watchForNotifications(d);

  if (input.searchAttributes) upsertSearchAttributes({ NixfleetRepository: [`${input.repository.owner}/${input.repository.name}`] });
  d.audit({ actor: input.requestedBy, action: 'deploy', hosts: input.hosts.map((h) => h.name), outcome: 'requested' });

  // --- 1. hold the fleet: the server refuses a second holder of the lock ---------------------------
  const held = await holdFleet(d);
  if (held !== undefined) return refuse(d, held);
  // Outside the maintenance windows: wait for the next one (or an operator's start-now) before the merge.
  await waitForWindowOrClose(d, 'the deployment');

  // --- 2. merge ------------------------------------------------------------------------------------
  d.setPhase('merging');
  let how: 'merged-now' | 'already-merged' | 'commit';
  try {
    const resolved = await d.step(githubStep, 'github/merge', 'merge the flake.lock update').resolveChange({ deploymentId: input.deploymentId, repository: input.repository, change: input.change });
    status.mergeSha = resolved.mergeSha;
    how = resolved.how;
    // A pull request's merge is this deployment's (a retried merge finds its own merge "already merged");
    // a commit deploy's commit is not: it is never reverted unless an operator asks (issue 12, bug 2).
    d.ownMerge = resolved.how !== 'commit' || !patched('commit-deploy-not-reverted');
    if (resolved.how !== 'commit') d.audit({ actor: input.requestedBy, action: 'merge', reverted: undefined, hosts: [], outcome: `${resolved.how} as ${resolved.mergeSha}` });
  } catch (err) {
    if (isCancellation(err)) throw err;
    // Nothing was deployed: a merge that fails leaves nothing to undo.
    status.failure = `merge failed: ${failureOf(err).message}`;
    d.notAttempted();
    status.outcome = 'failed-not-rolled-back';
    if (patched('audit-merge-failure')) d.audit({ actor: input.requestedBy, action: 'merge', hosts: [], outcome: status.failure });
    d.setPhase('closed');
    await d.flush();
    return status;
  }
  const mergeSha = status.mergeSha as string;

  // --- 3. quarantine: a commit reverted once is not deployed again without an override -------------
  if (how !== 'merged-now') {
    const q = await d.step(githubStep, 'github/quarantine', `is ${mergeSha.slice(0, 12)} quarantined?`).quarantineStatus({ repository: input.repository, mergeSha });
    if (q.quarantined && !rollout.allowQuarantined) {
      // Nothing of ours to revert: do not let the compensation revert it a second time.
      status.mergeSha = undefined;
      return refuse(d, `quarantined: ${q.why ?? 'reverted before'}; deploy it again only with an explicit override (rollout.allowQuarantined)`);
    }
  }

  // --- 4. build first, then the waves; the first failure over the budget stops the rollout ----------
  const flakeRef = fillFlakeRef(input.flakeRefTemplate, { owner: input.repository.owner, repo: input.repository.name, sha: mergeSha });
  let failure: DeployFailure | undefined;
  let cancelled: unknown;
  const tally = { failures: 0 };
  try {
    failure = (await buildFirst(d, flakeRef, controls)) ?? controls.abortFailure() ?? (await deployWaves(d, flakeRef, tally, controls));
  } catch (err) {
    if (!isCancellation(err)) throw err;
    cancelled = err;
    const current = d.hosts.find((h) => h.state === 'switching');
    if (current) {
      current.uncertain = 'deployment cancelled while this host was being switched';
      d.moveHost(current, 'failed');
    }
    failure = { kind: 'cancelled', ...(current ? { host: current.name } : {}) };
  }

  if (failure === undefined) {
    status.outcome = tally.failures > 0 ? 'succeeded-with-failures' : 'succeeded';
    // Failures within the budget that are still off their recorded generation (their rollback failed,
    // or the policy does not roll back) keep the deployment open for an operator (issue 12, bug 7).
    if (tally.failures > 0 && patched('within-budget-awaits-operator')) {
      d.scope = 'failed-hosts';
      const left = rollbackCandidates(d.facts());
      if (left.length > 0) {
        status.failure = `within the failure budget, but not back on their recorded generation: ${left.map((h) => `${h.name} (${h.state})`).join(', ')}`;
        return awaitOperatorAndClose(d, queue);
      }
    }
    d.setPhase('succeeded');
    // What an undo reads days later (issue 17); histories from before it replay without the write.
    if (patched('g-undo-results')) await recordResults(d);
    await d.flush();
    deploymentSink.closed(status.outcome);
    return compactResult(d.byRef, status);
  }
  for (const w of status.waves ?? []) if (w.state === 'pending') w.state = 'not-started';
  d.notAttempted();
  status.failedHost = failedHostOf(failure);
  status.failure = failureText(failure);

  // --- 5. compensate, immune to cancellation -----------------------------------------------------
  d.setPhase('compensating');
  await CancellationScope.nonCancellable(async () => {
    // The revert beside the host rollbacks (workflows/auto-compensation.ts); before, the revert first.
    await autoCompensate(d, input.onFailure, AUTOMATIC, status.failure as string, patched(TOGETHER_PATCH));
  });
  status.outcome = outcomeOf(d.facts());
  if (cancelled) {
    d.setPhase('closed');
    await d.flush();
    throw cancelled;
  }

  // --- 6. open for the operator -------------------------------------------------------------------
  return awaitOperatorAndClose(d, queue);
}

/** The deployment's own window wait, before anything is done; cancelled there, it closes as it is (nothing to undo). */
async function waitForWindowOrClose(d: DeploymentRecord, what: string): Promise<void> {
  try {
    await keepToWindow(d, what);
  } catch (err) {
    if (!isCancellation(err)) throw err;
    await CancellationScope.nonCancellable(async () => {
      d.notAttempted();
      d.status.outcome = 'refused';
      d.status.failure = 'cancelled while waiting for a maintenance window';
      d.audit({ actor: AUTOMATIC, action: 'deploy', hosts: [], outcome: 'cancelled while waiting for a maintenance window: nothing was done' });
      d.setPhase('closed');
      await d.flush();
    });
    throw err;
  }
}

async function awaitOperatorAndClose(d: DeploymentRecord, queue: ReturnType<typeof registerHandlers>): Promise<DeploymentStatus> {
  await awaitOperator(d, queue);
  d.setPhase('closed');
  if (patched('g-undo-results')) await recordResults(d);
  await d.flush();
  log.info('deployment closed', { workflowId: workflowInfo().workflowId, outcome: d.status.outcome });
  deploymentSink.closed(d.status.outcome ?? 'unknown');
  return compactResult(d.byRef, d.status);
}

/** Starts the fleet lock; the reason for a refusal when another deployment holds it. */
async function holdFleet(d: DeploymentRecord): Promise<string | undefined> {
  const repo = d.input.repository;
  // Escaped ids since issue 12 (bug 8); deployments started before keep the lock id they took.
  const lockId = patched('escaped-fleet-lock-id') ? fleetLockId(repo) : legacyFleetLockId(repo);
  try {
    await startChild(fleetLockWorkflow, { workflowId: lockId, args: [{ deploymentId: d.input.deploymentId }], parentClosePolicy: ParentClosePolicy.TERMINATE });
    return undefined;
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return `another deployment holds ${repo.owner}/${repo.name}@${repo.branch} (lock ${lockId}); wait for it or dismiss it`;
    throw err;
  }
}

async function refuse(d: DeploymentRecord, why: string): Promise<DeploymentStatus> {
  d.status.failure = why;
  d.notAttempted();
  d.status.outcome = 'refused';
  d.audit({ actor: AUTOMATIC, action: 'deploy', hosts: [], outcome: `refused: ${why}` });
  d.setPhase('closed');
  await d.flush();
  deploymentSink.closed('refused');
  return d.status;
}

/**
 * The build-first phase (when the rollout asks for it): an evaluation or build error touches no host.
 * Deployments started with `patched(CHUNKED_BUILD_PATCH)` build in children of at most the rollout's
 * child size (src/domain/child-chunks.ts, the rule the wave children follow), in turn, with the hosts
 * by reference where the waves take them so; the first chunk with a failure (or an abort) stops the
 * phase, and the hosts of later chunks are not built. Deployments started before build every host in
 * one child, as before.
 */
async function buildFirst(d: DeploymentRecord, flakeRef: string, controls: Controls): Promise<DeployFailure | undefined> {
  const active = d.input.hosts.filter((h) => !d.rollout.held.includes(h.name));
  if (!d.rollout.buildFirst || active.length === 0) return undefined;
  d.setPhase('building');
  const base = {
    deploymentId: d.input.deploymentId,
    flakeRef,
    maxParallel: Math.max(1, ...d.rollout.waves.map((w) => w.maxParallel)),
    // The reachability probe comes before the build (issue 15); deployments started before build without it.
    ...(d.rollout.offline && patched('c-ops-build-probe') ? { offline: d.rollout.offline } : {}),
  };
  // Deployments started before the chunked build: every host in one child, copied into its input.
  const chunked = patched(CHUNKED_BUILD_PATCH);
  d.targets = {};
  for (const [k, chunk] of (chunked ? chunksOf(active, hostsPerChildOf(d.rollout.hostsPerChild)) : [active]).entries()) {
    const stop = chunked ? controls.abortFailure() : undefined;
    if (stop) return stop;
    let built: BuildResult;
    try {
      built = await executeChild(buildWorkflow, {
        workflowId: chunkChildId(`${d.input.deploymentId}-build`, k),
        args: [{ ...base, ...(chunked && d.byRef ? { hosts: [], hostsRef: hostsRef(d.input.hosts, chunk.map((h) => h.name)) } : { hosts: chunk }) }],
      });
    } catch (err) {
      // A build child that fails or is terminated switched nothing: the deployment still compensates (its merge).
      if (isCancellation(err) && CancellationScope.current().consideredCancelled) throw err;
      const error = `the build workflow ended without its result: ${failureOf(err).message}`;
      return { kind: 'build', hosts: chunk.map((h) => ({ host: h.name, error })) };
    }
    const failures = applyBuilt(d, built);
    if (failures.length > 0) return { kind: 'build', hosts: failures };
  }
  return undefined;
}

/** One build child's result on the deployment's record: its targets, its failures and offline hosts; returns the failures. */
function applyBuilt(d: DeploymentRecord, built: BuildResult): Array<{ host: string; error: string }> {
  Object.assign(d.targets, built.targets);
  const failures = [...built.failures, ...applyOfflineGates(d, built.offline)];
  for (const f of failures) {
    const h = d.host(f.host);
    if (h) h.error = `build failed: ${f.error}`;
  }
  // The chunk's hosts only (linear over the phase, not hosts × chunks).
  for (const [name, target] of Object.entries(built.targets)) {
    const h = d.host(name);
    if (h?.state === 'pending' && target) h.target = target;
  }
  return failures;
}

/** The waves in order (canary first); failures within the budget are rolled back at once (policy). */
async function deployWaves(d: DeploymentRecord, flakeRef: string, tally: { failures: number }, controls: Controls): Promise<DeployFailure | undefined> {
  const { rollout, input } = d;
  for (const [i, wave] of rollout.waves.entries()) {
    const waveStatus = d.status.waves?.[i];
    const held = new Set(rollout.held);
    const waveHosts = wave.hosts.filter((n) => !held.has(n) && !controls.skipped.includes(n) && !offlineSkipped(d, n)).map((n) => d.spec(n));
    // A wave that would start after its window closed waits for the next one.
    await keepToWindow(d, `wave ${wave.name}`);
    if (waveStatus) waveStatus.state = 'running';
    d.setPhase('deploying');
    // A large wave runs as several children in turn, each within Temporal's history limits.
    const perChild = hostsPerChildOf(rollout.hostsPerChild);
    let failures = 0;
    let halted = false;
    for (let k = 0; k * perChild < waveHosts.length && !halted; k++) {
      // Operator controls: wait while paused, stop on an abort; a host skipped meanwhile is left out.
      // (No await unless paused: deployments without controls issue their commands as before.)
      const stop = controls.waiting ? await controls.untilResumed() : controls.abortFailure();
      if (stop) {
        if (waveStatus) waveStatus.state = 'halted';
        return stop;
      }
      const slice = waveHosts.slice(k * perChild, (k + 1) * perChild).filter((h) => !controls.skipped.includes(h.name));
      const childId = chunkChildId(`${input.deploymentId}-wave-${i + 1}`, k);
      // The service merges the running child's hosts (its waveHosts query) into the status it serves.
      if (d.bounded) d.status.liveChild = childId;
      try {
        const part = await executeChild(waveWorkflow, {
          workflowId: childId,
          args: [
            {
              deploymentId: input.deploymentId,
              parentWorkflowId: workflowInfo().workflowId,
              ...waveChildHosts(d.byRef, input.hosts, wave, slice),
              flakeRef,
              targets: d.bounded ? targetsOf(d.targets, slice) : d.targets,
              budgetLeft: rollout.failureBudget - tally.failures - failures,
              failedUnits: rollout.failedUnits,
              healthChecks: rollout.healthChecks,
              healthGraceSeconds: rollout.healthGraceSeconds,
              confirmTimeoutSeconds: rollout.confirmTimeoutSeconds,
              ...controls.childStarting(childId),
              ...(rollout.reboot ? { reboot: rollout.reboot, ...(rollout.rebootTimeoutSeconds ? { rebootTimeoutSeconds: rollout.rebootTimeoutSeconds } : {}) } : {}),
              ...(rollout.offline ? { offline: rollout.offline } : {}),
              ...(d.bounded ? { report: 'result' as const } : {}),
            },
          ],
        });
        if (d.bounded) {
          applyChildRecords(d, part.order && part.records ? unfoldRecords(part.records, part.order) : part.records);
          controls.reconcileSkips();
        }
        failures += part.failures;
        halted = part.halted;
      } catch (err) {
        // The deployment's own cancellation goes on up; a child that failed or was terminated does not
        // skip the compensation (issue 12, bug 5).
        const cancelled = isCancellation(err) && CancellationScope.current().consideredCancelled;
        if (d.bounded) {
          // Its records went with it: the hosts say which moved, and the recorded generation (their pin).
          delete d.status.liveChild;
          const error = cancelled ? 'deployment cancelled' : failureOf(err).message;
          const first = await recoverSlice(d, slice, wave.maxParallel, error);
          if (cancelled) throw err;
          if (waveStatus) waveStatus.state = 'halted';
          return { kind: 'wave-failed', wave: wave.name, error, ...(first ? { host: first.name } : {}) };
        }
        if (cancelled) throw err;
        if (waveStatus) waveStatus.state = 'halted';
        return waveFailed(d, wave, slice, flakeRef, failureOf(err).message);
      } finally {
        if (d.bounded) delete d.status.liveChild;
      }
    }
    tally.failures += failures;
    const aborted = controls.abortFailure();
    if (aborted) {
      if (waveStatus) waveStatus.state = 'halted';
      return aborted;
    }
    const failedHere = waveHosts.filter((h) => d.host(h.name)?.state === 'failed').map((h) => h.name);
    if (halted) {
      if (waveStatus) waveStatus.state = 'halted';
      return { kind: 'halted', failed: failedHere, failures: tally.failures, budget: rollout.failureBudget, ...(failedHere[0] ? { error: d.host(failedHere[0])?.error } : {}) };
    }
    if (waveStatus) waveStatus.state = 'done';
    if (failedHere.length > 0 && input.onFailure.rollbackHosts) {
      await CancellationScope.nonCancellable(async () => {
        const r = await rollbackHosts(d, failedHere);
        d.audit({ actor: AUTOMATIC, action: 'auto-compensate', hosts: r.rolledBack, outcome: `within the failure budget (${tally.failures}/${rollout.failureBudget}); ${rollbackSummary(r)}` });
      });
    }
    if (i < rollout.waves.length - 1 && wave.bakeSeconds > 0) {
      if (waveStatus) waveStatus.state = 'baking';
      d.setPhase('baking');
      await controls.bake(wave.bakeSeconds * 1000);
      if (waveStatus) waveStatus.state = 'done';
    }
  }
  return undefined;
}

/** The build-first targets of a slice's hosts only (a child's input carries no other host's). */
function targetsOf(targets: Record<string, string>, slice: HostSpec[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of slice) {
    const t = targets[h.name];
    if (t !== undefined) out[h.name] = t;
  }
  return out;
}

/**
 * A wave's child ended without its result (deployments started before its records came in its
 * result; see recoverSlice in workflows/wave-report.ts for the others): the hosts it had started switching are failed with an
 * unknown outcome (so the compensation rolls them back to their recorded generation, a no-op where
 * nothing changed) and re-read, so the status says where they are. Hosts it never started stay pending.
 */
async function waveFailed(d: DeploymentRecord, wave: Wave, slice: HostSpec[], flakeRef: string, error: string): Promise<DeployFailure> {
  const unknown = slice.map((s) => d.host(s.name)).filter((h) => h?.state === 'switching');
  await CancellationScope.nonCancellable(() =>
    Promise.all(
      unknown.map(async (h) => {
        if (!h) return;
        h.uncertain = `the wave's workflow ended while this host was being switched (${error})`;
        const plan = await d
          .step(hostStepFor('read', d.spec(h.name)), `${h.name}/reread`, `read ${h.name}'s generation after its wave failed`)
          .describeHost({ deploymentId: d.input.deploymentId, host: d.spec(h.name), flakeRef })
          .catch((err: unknown) => ({ generation: undefined, error: failureOf(err).message }));
        if (plan.generation && h.before && (plan.generation.number !== h.before.number || plan.generation.storePath !== h.before.storePath)) {
          h.after = plan.generation;
          h.profileMoved = true;
        }
        h.error = plan.generation ? `wave workflow failed: ${error}` : `wave workflow failed: ${error}; the host could not be read: ${plan.error ?? 'unknown'}`;
        d.moveHost(h, 'failed');
      }),
    ),
  );
  return { kind: 'wave-failed', wave: wave.name, error, ...(unknown[0] ? { host: unknown[0].name } : {}) };
}
