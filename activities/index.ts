import { isIP } from 'node:net';
import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import type { Octokit } from '@octokit/rest';
import type { Logger } from 'pino';
import type {
  DeployActivities,
  BuildHostInput,
  CheckHealthInput,
  ConfirmHostInput,
  DescribeHostInput,
  HostPlan,
  HealthReport,
  HostStepInput,
  QuarantineInput,
  RecordAuditInput,
  SwitchHostResult,
  ResolveChangeInput,
  ResolvedChange,
  RevertMergeInput,
  RollbackHostInput,
  SwitchFailedDetails,
  SwitchHostInput,
  VerifyHostInput,
} from '../src/domain/activities';
import { confirmUnit, confirmUnitForRun, FailureType } from '../src/domain/activities';
import { gcSweepAgeSeconds } from '../src/domain/gc-roots';
import { recordedFromPin, type HostReread } from '../src/domain/wave-recovery';
import { hostStepTimeouts, hostTimeoutsOf } from '../src/domain/host-timeouts';
import type { Generation, HostSpec, RevertOutcome } from '../src/domain/deployment';
import type { SmokeActivities } from '../src/domain/smoke';
import type { RebootActivities } from '../src/domain/reboot';
import { createRebootActivities } from './reboot';
import { createNotifyActivities } from './notify';
import { createFleetSnapshotActivities, type FleetSnapshotActivities } from './fleet-snapshot';
import {
  chooseMergeMethod,
  classifyGitHubError,
  getMergeSettings,
  getPullRequest,
  isCommitOnBranch,
  mergePullRequest,
  MergeMethodNotAllowedError,
  quarantineStatus,
  revertMerge,
  WrongBranchError,
  type MergeMethod,
} from '../src/github';
import {
  AuthenticationFailedError,
  CommandTimeoutError,
  errorLines,
  ConnectionLostError,
  HostKeyMismatchError,
  HostUnreachableError,
  HostBusyError,
  CommandCancelledError,
  InvalidInputError,
  buildTarget,
  failedUnits,
  readGeneration,
  readRecordedRoot,
  listGenerations,
  rollbackTo,
  runCheckCommand,
  planSwitchCommands,
  confirmSelfRollback,
  gcRootName,
  HostSession,
  pinStorePath,
  removeSwitchMarker,
  sweepStaleRoots,
  switchMarkerName,
  switchTo,
  UnexpectedOutputError,
  unpinStorePath,
  type BuildResult,
  type HostGeneration,
  type HostTarget,
  type TimeoutOptions,
} from '../src/hosts';
import { AuditRecordRefusedError, type AuditStore } from '../src/audit/audit-store';
import { resultsFromRef, resultsHostOf, type DeploymentResults, type DeploymentResultsRef } from '../src/domain/undo';
import { MAX_PAGE_SIZE } from '../src/domain/host-pages';
import { hostsPageQuery } from '../workflows/report-messages';
import { SessionPool, type SshCredentials } from './sessions';
import type { ClosureDiff, ClosureDiffActivities, ClosureDiffInput } from '../src/domain/closure-diff';
import { diffClosures } from '../src/hosts/closure-diff';

export interface ActivityDeps {
  github: Octokit;
  /** `github` authenticates as a GitHub App: revert commits are left to GitHub to author and sign. */
  githubIsApp?: boolean;
  ssh: SshCredentials;
  logger: Logger;
  /** The worker's merge method, used when the fleet file sets none (`repository.mergeMethod` wins). */
  mergeMethod?: MergeMethod;
  hostTimeouts?: TimeoutOptions;
  /** How often long host commands heartbeat (so a crashed worker's step is retried promptly). */
  heartbeatMs?: number;
  /** The durable audit log; without one, entries stay in the workflow's own trail only. */
  audit?: AuditStore;
  /** Where notification secrets are read (default: the worker's environment). */
  notifyEnv?: Record<string, string | undefined>;
}

const target = (h: HostSpec): HostTarget => ({ name: h.name, kind: h.kind, attr: h.attr, ...(h.commands ? { commands: h.commands } : {}) });
const gen = (g: HostGeneration): Generation => ({ number: g.number, storePath: g.storePath });

/** The workflow run this activity belongs to (stable across its attempts); 'direct' outside an activity. */
function runId(): string {
  try {
    return Context.current().info.workflowExecution?.runId ?? 'direct';
  } catch {
    return 'direct';
  }
}

/** Whether an earlier attempt of this activity reached the host (see `markConnected`). */
function earlierAttemptConnected(): boolean {
  try {
    const d = Context.current().info.heartbeatDetails as { connected?: boolean } | undefined;
    return d?.connected === true;
  } catch {
    return false;
  }
}

/** Records, in the activity's heartbeat, that this attempt reached the host (a retry reads it). */
/** Writes a deployment's results; a record the store refuses is refused on every retry: fail once, for the workflow to log. */
async function appendResults(audit: AuditStore, results: DeploymentResults): Promise<void> {
  try {
    await audit.appendResults(results);
  } catch (err) {
    if (err instanceof AuditRecordRefusedError) throw ApplicationFailure.nonRetryable(err.message, FailureType.AuditRefused);
    throw err;
  }
}

const heartbeatState = new WeakMap<Context, { connected: boolean }>();
function markConnected(): void {
  try {
    const ctx = Context.current();
    heartbeatState.set(ctx, { connected: true });
    ctx.heartbeat({ connected: true });
  } catch {
    // not in an activity (direct calls in tests)
  }
}

/** The activity's cancellation (delivered with a heartbeat): long host commands are KILLed on it. */
function cancellation(): { signal?: AbortSignal } {
  try {
    return { signal: Context.current().cancellationSignal };
  } catch {
    return {};
  }
}

/**
 * The flake reference pinned at the merge commit, without `#attr` (the attribute travels in the host
 * spec). Deployments started before sent `ref#attr`; their retried activities still arrive so.
 */
function pinnedRef(flakeRef: string): string {
  const hashAt = flakeRef.lastIndexOf('#');
  return hashAt >= 0 ? flakeRef.slice(0, hashAt) : flakeRef;
}

/** A build that failed or timed out (nothing changed on the host): not retried, another build fails alike. */
function buildFailure(host: string, r: Extract<BuildResult, { outcome: 'failed' }>): ApplicationFailure {
  if (r.timedOut) return ApplicationFailure.nonRetryable(`${host}: build timed out: ${r.stderrTail}`, FailureType.BuildFailed);
  return ApplicationFailure.nonRetryable(`${host}: evaluation or build failed (exit ${r.exitCode ?? 'signal'}): ${errorLines(r.stderrTail) || '(no error output)'}`, FailureType.BuildFailed);
}

/** Host errors → Temporal failures: what may be retried and what must stop the deployment. */
function hostFailure(err: unknown, host: string): never {
  if (err instanceof ApplicationFailure) throw err;
  const raw = err instanceof Error ? err.message : String(err);
  const message = raw.startsWith(`${host}:`) ? raw : `${host}: ${raw}`;
  // Cancelled: the remote command was stopped; the workflow reads the host in its compensation.
  if (err instanceof CommandCancelledError) throw new CancelledFailure(message);
  if (err instanceof InvalidInputError) throw ApplicationFailure.nonRetryable(message, FailureType.InvalidInput);
  if (err instanceof HostKeyMismatchError || err instanceof AuthenticationFailedError) {
    throw ApplicationFailure.nonRetryable(message, FailureType.HostKeyMismatch);
  }
  if (err instanceof HostUnreachableError) {
    // Unreachable now, but an earlier attempt of this step lost its connection mid-command (it reached
    // the host and said so in its heartbeat): then nothing is known about what ran.
    if (earlierAttemptConnected()) {
      throw ApplicationFailure.retryable(`${message} (an earlier attempt of this step lost its connection mid-command: the outcome is unknown)`, FailureType.ConnectionLost);
    }
    throw ApplicationFailure.retryable(message, FailureType.HostUnreachable);
  }
  // An earlier attempt's activation still runs on the host (its lock): retried later, never run twice at once.
  if (err instanceof HostBusyError) throw ApplicationFailure.retryable(message, FailureType.HostBusy);
  // The command may or may not have run: the retry inspects the host before doing anything.
  if (err instanceof ConnectionLostError || err instanceof CommandTimeoutError) throw ApplicationFailure.retryable(message, FailureType.ConnectionLost);
  throw ApplicationFailure.nonRetryable(message, FailureType.HostError);
}

/** GitHub errors → Temporal failures; rate limits come back after the delay GitHub asked for. */
function githubFailure(err: unknown): never {
  if (err instanceof ApplicationFailure) throw err;
  const c = classifyGitHubError(err);
  if (c.code === 'wrong_branch') throw ApplicationFailure.nonRetryable(c.message, FailureType.InvalidInput);
  if (c.code === 'revert_conflict') throw ApplicationFailure.nonRetryable(c.message, FailureType.RevertConflict);
  if (!c.retryable) throw ApplicationFailure.create({ message: `${c.code}: ${c.message}`, type: FailureType.GitHubPermanent, nonRetryable: true, details: [c] });
  throw ApplicationFailure.create({
    message: `${c.code}: ${c.message}`,
    type: FailureType.GitHubTransient,
    nonRetryable: false,
    details: [c],
    ...(c.retryAfterMs !== undefined ? { nextRetryDelay: c.retryAfterMs } : {}),
  });
}

/** Heartbeat while a long command runs, so the server notices a dead worker within heartbeatTimeout. */
async function heartbeating<T>(ms: number, fn: () => Promise<T>): Promise<T> {
  let ctx: Context | undefined;
  try {
    ctx = Context.current();
  } catch {
    ctx = undefined;
  }
  // Periodic heartbeats carry what markConnected recorded, so a retry still sees it.
  const timer = ctx ? setInterval(() => ctx && ctx.heartbeat(heartbeatState.get(ctx) ?? ctx.info.heartbeatDetails), ms) : undefined;
  try {
    return await fn();
  } finally {
    if (timer) clearInterval(timer);
  }
}

export type Activities = DeployActivities & SmokeActivities & ClosureDiffActivities & RebootActivities & FleetSnapshotActivities;

/** The activities over their dependencies, and `close` for the SSH connections they keep open. */
export function createActivities(deps: ActivityDeps): { activities: Activities; close(): Promise<void>; openSshConnections(): number } {
  const pool = new SessionPool(deps.ssh);
  const hb = deps.heartbeatMs ?? 5_000;
  /**
   * The limits of a host's remote commands: the fleet's timeouts (on the host spec) through the same
   * derivation the workflow proxies the step with, so the activity's limit always fires first. A spec
   * without timeouts (a deployment started before they existed) gets the worker's hostTimeouts, then
   * the defaults.
   */
  const limits = (host: HostSpec): TimeoutOptions =>
    host.timeouts ? hostStepTimeouts('switch', host.timeouts).remote : { ...hostStepTimeouts('switch').remote, ...deps.hostTimeouts };
  const log = (input: { deploymentId?: string; host?: HostSpec }, step: string) =>
    deps.logger.child({ deploymentId: input.deploymentId, host: input.host?.name, step });

  const activities: Omit<Activities, keyof RebootActivities | keyof FleetSnapshotActivities> = {
    async resolveChange({ repository, change, deploymentId }: ResolveChangeInput): Promise<ResolvedChange> {
      const l = log({ deploymentId }, 'merge');
      const repo = { owner: repository.owner, repo: repository.name };
      try {
        if (change.kind === 'commit') {
          await deps.github.rest.git.getCommit({ ...repo, commit_sha: change.sha });
          if (!(await isCommitOnBranch(deps.github, { ...repo, branch: repository.branch, sha: change.sha }))) {
            throw new WrongBranchError('change.commit', `commit ${change.sha} is not on ${repository.branch} (the fleet's repository.branch)`);
          }
          return { mergeSha: change.sha, ...(change.pullRequest ? { pullRequest: change.pullRequest } : {}), how: 'commit' };
        }
        // With or without an approved head (--head), the pull request must target the fleet's branch:
        // merging it elsewhere deploys nothing of the fleet's and leaves a merge nobody can revert here.
        const pr = await getPullRequest(deps.github, { ...repo, number: change.number });
        if (pr.baseRef !== repository.branch) {
          throw new WrongBranchError('change.pullRequest', `pull request #${change.number} targets ${pr.baseRef}, not ${repository.branch} (the fleet's repository.branch)`);
        }
        if (!change.expectedHeadSha && pr.merged && pr.mergeCommitSha) return { mergeSha: pr.mergeCommitSha, pullRequest: change.number, how: 'already-merged' };
        const expectedHeadSha = change.expectedHeadSha ?? pr.headSha;
        // Merged already (a retry, or by a human): mergePullRequest checks the head; no method needed.
        let method: MergeMethod = 'merge';
        if (!pr.merged) {
          const configured = repository.mergeMethod ?? deps.mergeMethod;
          const field = repository.mergeMethod ? 'repository.mergeMethod' : "the worker's mergeMethod";
          const choice = chooseMergeMethod(configured, await getMergeSettings(deps.github, repo), field);
          if (!choice.ok) throw new MergeMethodNotAllowedError(`pull request #${change.number}: ${choice.error}`);
          method = choice.method;
        }
        const merged = await mergePullRequest(deps.github, {
          ...repo,
          number: change.number,
          expectedHeadSha,
          method,
          // A rebase merge writes the pull request's own commits (GitHub takes no title for it).
          ...(method === 'merge' ? { commitTitle: `Merge pull request #${change.number} (deployed by NixFleet: ${deploymentId})` } : {}),
          ...(method === 'squash' ? { commitTitle: `${pr.title} (#${change.number}) (deployed by NixFleet: ${deploymentId})` } : {}),
          log: l,
        });
        l.info({ mergeSha: merged.mergeSha, alreadyMerged: merged.alreadyMerged }, 'merged');
        return { mergeSha: merged.mergeSha, pullRequest: change.number, how: merged.alreadyMerged ? 'already-merged' : 'merged-now' };
      } catch (err) {
        githubFailure(err);
      }
    },

    async recordGeneration(input: HostStepInput): Promise<Generation> {
      try {
        const g = await heartbeating(hb, () => pool.use(input.host, async (s) => {
          const read = await readGeneration(s, input.host.kind, limits(input.host));
          // Pin the way back: garbage collection (nix.gc, nix-collect-garbage -d) must not delete it.
          await pinStorePath(s, input.host.kind, read.profile, gcRootName(input.deploymentId, 'recorded'), read.storePath, limits(input.host));
          // Housekeeping: roots and markers of deployments whose close never reached this host. A host
          // that refuses the sweep (an older allowlist) is still recorded; a lost connection retries.
          try {
            const swept = await sweepStaleRoots(s, input.host.kind, read.profile, input.deploymentId, gcSweepAgeSeconds(), limits(input.host));
            if (swept.length > 0) log(input, 'record').info({ swept }, 'swept GC roots and switch markers of deployments gone for longer than the bound');
          } catch (err) {
            if (!(err instanceof UnexpectedOutputError)) throw err;
            log(input, 'record').warn({ err: err.message }, 'could not sweep stale GC roots');
          }
          return read;
        }));
        log(input, 'record').info({ generation: g.number, storePath: g.storePath }, 'recorded generation (pinned with a GC root)');
        return gen(g);
      } catch (err) {
        hostFailure(err, input.host.name);
      }
    },

    async releaseHost(input: HostStepInput): Promise<void> {
      try {
        await heartbeating(hb, () => pool.use(input.host, async (s) => {
          const g = await readGeneration(s, input.host.kind, limits(input.host));
          for (const role of ['recorded', 'target'] as const) await unpinStorePath(s, input.host.kind, g.profile, gcRootName(input.deploymentId, role), limits(input.host));
          await removeSwitchMarker(s, input.host.kind, g.profile, switchMarkerName(input.deploymentId, input.deploymentRunId ?? runId()), limits(input.host));
        }));
        log(input, 'release').info('GC roots of the deployment removed');
      } catch (err) {
        hostFailure(err, input.host.name);
      }
    },

    async switchHost(input: SwitchHostInput): Promise<SwitchHostResult> {
      const l = log(input, 'switch');
      const flakeRef = pinnedRef(input.flakeRef);
      try {
        const r = await heartbeating(hb, () =>
          pool.use(input.host, async (s) => {
            markConnected();
            const res = await switchTo(s, target(input.host), {
              flakeRef,
              attr: input.host.attr,
              ...(input.expectedStorePath ? { expectedStorePath: input.expectedStorePath } : {}),
              // Only an attempt of this deployment run that reached the profile step (its marker is on the
              // host) can have switched it; a session that opened, or a build that lost its connection,
              // proves nothing. A new deployment of a target the host was once rolled back from (no
              // marker) is a deliberate switch.
              recorded: input.before,
              marker: switchMarkerName(input.deploymentId, input.deploymentRunId ?? runId()),
              ...cancellation(),
              ...(input.confirmTimeoutSeconds
                ? { confirm: { unit: confirmUnitForRun(confirmUnit(input.deploymentId), runId()), timeoutSeconds: input.confirmTimeoutSeconds, rollbackTo: input.before } }
                : {}),
              ...limits(input.host),
            });
            // Pin the target too (a retry or a re-deployment finds it built, whatever GC ran).
            if (res.target !== null) await pinStorePath(s, input.host.kind, res.before.profile, gcRootName(input.deploymentId, 'target'), res.target, limits(input.host));
            return res;
          }),
        );
        // A retry after an attempt that reached the profile step (its marker): if it finds the host
        // already on the target, the earlier activation may have ended with failed units (exit 4) that
        // nobody received. The host still lists them: treat that as the exit 4 it was. A host that was
        // on the target before this deployment (no marker) is not judged by units that failed before it.
        if (r.outcome === 'already-on-target' && input.host.kind === 'nixos' && r.earlierSwitchReached) {
          const units = await pool.use(input.host, (s) => failedUnits(s, limits(input.host)));
          if (units.length > 0) {
            const profileMoved = r.after.number !== input.before.number || r.after.storePath !== input.before.storePath;
            if (input.failedUnits === 'tolerate') {
              return { ...gen(r.after), warning: `units failed to start (found on a retry, tolerated by policy): ${units.join(', ')}` };
            }
            const details: SwitchFailedDetails = { exitCode: 4, profileMoved, after: gen(r.after), failedUnits: true, stderrTail: `failed units: ${units.join(', ')}` };
            l.warn({ units }, 'retried switch found the host on the target with failed units');
            throw ApplicationFailure.create({
              message: `${input.host.name}: activation reported failed units (exit 4, found on a retry: ${units.join(', ')}); the host runs the new generation`,
              type: FailureType.SwitchFailed,
              nonRetryable: true,
              details: [details],
            });
          }
        }
        if (r.outcome === 'failed' && r.failedUnits && input.failedUnits === 'tolerate' && r.target !== null && r.after.storePath === r.target) {
          l.warn({ generation: r.after.number }, 'switched with failed units (tolerated by policy)');
          return { ...gen(r.after), warning: `switch-to-configuration exit 4: units failed to start (tolerated by policy): ${r.stderrTail.slice(-300)}` };
        }
        if (r.outcome === 'failed') {
          const profileMoved = r.after.number !== input.before.number || r.after.storePath !== input.before.storePath;
          const details: SwitchFailedDetails = {
            exitCode: r.exitCode,
            profileMoved,
            after: gen(r.after),
            failedUnits: r.failedUnits,
            stderrTail: r.stderrTail.slice(-1000),
            ...(r.phase === 'superseded' ? { superseded: true } : {}),
          };
          const what =
            r.phase === 'superseded'
              ? `not switched again: ${r.stderrTail}`
              : r.phase === 'build'
              ? 'build failed, nothing changed'
              : r.phase === 'build-timeout'
                ? 'build timed out, nothing changed'
              : r.failedUnits
                ? 'activation reported failed units (exit 4); the host runs the new generation'
                : r.phase === 'verify'
                  ? 'the switch reported success but the host is not on the new generation'
                  : `${r.phase} failed (exit ${r.exitCode ?? 'signal'})${profileMoved ? '; the profile had already moved' : ''}`;
          // The host's own words (nix's or the activation's last error lines) travel with the failure
          // into the status, the CLI, the dashboard and the audit log.
          const cause = r.phase === 'superseded' ? '' : errorLines(r.stderrTail);
          l.warn({ phase: r.phase, exitCode: r.exitCode, profileMoved, cause }, 'switch failed');
          throw ApplicationFailure.create({ message: `${input.host.name}: ${what}${cause ? `: ${cause}` : ''}`, type: FailureType.SwitchFailed, nonRetryable: true, details: [details] });
        }
        l.info({ outcome: r.outcome, generation: r.after.number, storePath: r.after.storePath, ms: r.durationMs }, 'switched');
        return gen(r.after);
      } catch (err) {
        hostFailure(err, input.host.name);
      }
    },

    async buildHost(input: BuildHostInput): Promise<{ target: string }> {
      const l = log(input, 'build');
      const flakeRef = pinnedRef(input.flakeRef);
      try {
        const r = await heartbeating(hb, () => pool.use(input.host, (s) => buildTarget(s, target(input.host), { flakeRef, attr: input.host.attr, ...limits(input.host), ...cancellation() })));
        if (r.outcome === 'failed') {
          l.warn({ exitCode: r.exitCode, timedOut: r.timedOut }, 'build failed');
          throw buildFailure(input.host.name, r);
        }
        l.info({ target: r.target, ms: r.durationMs }, 'built');
        return { target: r.target };
      } catch (err) {
        hostFailure(err, input.host.name);
      }
    },

    async checkHealth(input: CheckHealthInput): Promise<HealthReport> {
      const problems: string[] = [];
      // One round of checks stays within the fleet's health timeout: each check gets at most what is left.
      const deadline = Date.now() + hostTimeoutsOf(input.host.timeouts).healthSeconds * 1000;
      const within = (seconds: number): number => Math.max(1_000, Math.min(seconds * 1000, deadline - Date.now()));
      try {
        for (const check of input.checks) {
          if (Date.now() >= deadline) {
            problems.push(`health checks did not finish within the fleet's health timeout (${hostTimeoutsOf(input.host.timeouts).healthSeconds}s)`);
            break;
          }
          if (check.kind === 'systemd') {
            const units = await pool.use(input.host, (s) => failedUnits(s, limits(input.host)));
            if (units.length > 0) problems.push(`failed units: ${units.join(', ')}`);
          } else if (check.kind === 'command') {
            const r = await pool.use(input.host, (s) => runCheckCommand(s, check.command, within(check.timeoutSeconds)));
            if (!r.healthy) problems.push(`check command exited ${r.exitCode ?? 'on a signal'}: ${r.output.trim().slice(-300)}`);
          } else {
            const url = check.url.replace(/\{host\}/g, input.host.name).replace(/\{address\}/g, isIP(input.host.address) === 6 ? `[${input.host.address}]` : input.host.address);
            try {
              const res = await fetch(url, { signal: AbortSignal.timeout(within(check.timeoutSeconds)), redirect: 'manual' });
              await res.arrayBuffer().catch(() => undefined);
              if (res.status < 200 || res.status > 299) problems.push(`GET ${url} answered ${res.status}`);
            } catch (err) {
              problems.push(`GET ${url} failed: ${(err as Error).message}`);
            }
          }
        }
      } catch (err) {
        hostFailure(err, input.host.name);
      }
      return { healthy: problems.length === 0, problems };
    },

    async confirmHost(input: ConfirmHostInput): Promise<'confirmed' | 'timer-gone'> {
      // A NEW connection, never the pooled one: the point is to prove the host still accepts them.
      let session: HostSession | undefined;
      try {
        session = await HostSession.connect({
          address: input.host.address,
          port: input.host.port,
          user: input.host.user,
          privateKey: deps.ssh.privateKey,
          knownHosts: deps.ssh.knownHosts,
          label: input.host.name,
          readyTimeoutMs: deps.ssh.readyTimeoutMs ?? 10_000,
          keepaliveIntervalMs: 0,
        });
        if (!input.before || !input.switched) {
          throw ApplicationFailure.nonRetryable(`${input.host.name}: confirmHost needs the recorded (before) and switched generations`, FailureType.InvalidInput);
        }
        const unit = confirmUnitForRun(input.unit, runId());
        const r = await confirmSelfRollback(session, unit, { before: input.before, switched: input.switched, ...limits(input.host) });
        log(input, 'confirm').info({ result: r, unit }, 'connectivity confirmation');
        return r;
      } catch (err) {
        // Neither generation active yet (the timer fired and the rollback runs): read the host again.
        if (err instanceof UnexpectedOutputError) throw ApplicationFailure.retryable(err.message, FailureType.VerifyFailed);
        hostFailure(err, input.host.name);
      } finally {
        await session?.close().catch(() => undefined);
      }
    },

    async quarantineStatus({ repository, mergeSha }: QuarantineInput): Promise<{ quarantined: boolean; why?: string }> {
      try {
        const q = await quarantineStatus(deps.github, { owner: repository.owner, repo: repository.name, branch: repository.branch, mergeSha });
        if (!q.quarantined) return { quarantined: false };
        return {
          quarantined: true,
          why: q.revertCommit
            ? `commit ${mergeSha} was reverted on ${repository.branch} by ${q.revertCommit}`
            : `a revert pull request for ${mergeSha} is open: ${q.revertPullRequest?.url ?? ''}`,
        };
      } catch (err) {
        githubFailure(err);
      }
    },

    async verifyHost(input: VerifyHostInput): Promise<Generation> {
      try {
        const g = await heartbeating(hb, () => pool.use(input.host, (s) => readGeneration(s, input.host.kind, limits(input.host))));
        if (g.number !== input.expected.number || g.storePath !== input.expected.storePath || g.currentSystem !== input.expected.storePath) {
          throw ApplicationFailure.nonRetryable(
            `${input.host.name}: expected generation ${input.expected.number} (${input.expected.storePath}) active, found generation ${g.number} (${g.storePath}), active ${g.currentSystem ?? 'nothing'}`,
            FailureType.VerifyFailed,
          );
        }
        return gen(g);
      } catch (err) {
        hostFailure(err, input.host.name);
      }
    },

    async rollbackHost(input: RollbackHostInput): Promise<Generation> {
      const l = log(input, 'rollback');
      try {
        const r = await heartbeating(hb, () =>
          pool.use(input.host, (s) => {
            markConnected();
            return rollbackTo(s, target(input.host), input.to, limits(input.host));
          }),
        );
        if (r.outcome === 'failed') {
          const msg = r.failedUnits
            ? `${input.host.name}: back on generation ${r.after.number}, but units failed to start (exit 4)`
            : `${input.host.name}: rollback ${r.phase} failed (exit ${r.exitCode ?? 'signal'}); host on generation ${r.after.number}`;
          l.error({ phase: r.phase, exitCode: r.exitCode }, 'rollback failed');
          throw ApplicationFailure.nonRetryable(`${msg}: ${errorLines(r.stderrTail) || '(no error output)'}`, FailureType.RollbackFailed);
        }
        l.info({ outcome: r.outcome, generation: r.after.number }, 'rolled back');
        return gen(r.after);
      } catch (err) {
        hostFailure(err, input.host.name);
      }
    },

    async revertMerge(input: RevertMergeInput): Promise<RevertOutcome> {
      const l = log({ deploymentId: input.deploymentId }, 'revert');
      try {
        const r = await revertMerge(deps.github, {
          owner: input.repository.owner,
          repo: input.repository.name,
          branch: input.repository.branch,
          mergeSha: input.mergeSha,
          // How it was merged is read from the branch (a human may have merged it another way).
          ...(input.pullRequest ? { prNumber: input.pullRequest } : {}),
          mode: input.mode,
          reason: input.reason,
          requestedBy: input.requestedBy,
          requestedAt: input.requestedAt,
          ...(deps.githubIsApp ? { authoredByGitHub: true } : {}),
          log: l,
        });
        l.info({ status: r.status, commit: r.revertCommitSha, pr: r.pullRequest?.url }, 'revert done');
        if (r.pullRequest) {
          return {
            kind: 'pull-request',
            url: r.pullRequest.url,
            number: r.pullRequest.number,
            fellBackFromProtectedBranch: r.fellBackToPullRequest,
            ...(r.fallbackReason ? { reason: r.fallbackReason } : {}),
          };
        }
        const sha = r.revertCommitSha ?? r.revertedBy ?? r.baseHeadSha;
        return { kind: 'commit', commitSha: sha, alreadyReverted: r.status !== 'reverted' };
      } catch (err) {
        githubFailure(err);
      }
    },

    async rereadRecorded(input: HostStepInput): Promise<HostReread> {
      try {
        return await heartbeating(hb, () => pool.use(input.host, async (s) => {
          const g = await readGeneration(s, input.host.kind, limits(input.host));
          const current = gen(g);
          const pinned = await readRecordedRoot(s, input.host.kind, g.profile, input.deploymentId, limits(input.host));
          if (pinned === undefined) return { current };
          const gens = pinned === g.storePath ? [] : await listGenerations(s, g.profile, limits(input.host));
          return { current, recorded: recordedFromPin(pinned, current, gens) };
        }));
      } catch (err) {
        hostFailure(err, input.host.name);
      }
    },

    async describeHost(input: DescribeHostInput): Promise<HostPlan> {
      const flakeRef = pinnedRef(input.flakeRef);
      let commands: string[];
      try {
        commands = planSwitchCommands(target(input.host), flakeRef);
      } catch (err) {
        hostFailure(err, input.host.name);
      }
      try {
        const g = await heartbeating(hb, () => pool.use(input.host, (s) => readGeneration(s, input.host.kind, limits(input.host))));
        // With the profile the host reported, the commands are exactly what a switch would send.
        return { generation: gen(g), commands: planSwitchCommands(target(input.host), flakeRef, g.profile) };
      } catch (err) {
        return { error: err instanceof Error ? err.message : String(err), commands };
      }
    },

    async recordAudit({ deploymentId, runId, seq, repository, entry }: RecordAuditInput): Promise<void> {
      if (!deps.audit) {
        log({ deploymentId }, 'audit').debug({ runId, seq, entry }, 'no audit store configured');
        return;
      }
      try {
        // Without a run (a history from before runs were keyed): the old key, (deploymentId, seq).
        await deps.audit.append({ ...entry, deploymentId, ...(runId !== undefined ? { runId } : {}), seq, repository });
      } catch (err) {
        // A record the store refuses is refused again on every retry: fail once, for the workflow to report.
        if (err instanceof AuditRecordRefusedError) throw ApplicationFailure.nonRetryable(err.message, FailureType.AuditRefused);
        throw err;
      }
    },

    async recordDeploymentResults(input: DeploymentResults): Promise<void> {
      if (!deps.audit) {
        log({ deploymentId: input.deploymentId }, 'audit').warn({ runId: input.runId }, 'no audit store configured: the deployment results are not kept (no undo later)');
        return;
      }
      await appendResults(deps.audit, input);
    },

    async recordDeploymentResultsByRef(input: DeploymentResultsRef): Promise<void> {
      if (!deps.audit) {
        log({ deploymentId: input.deploymentId }, 'audit').warn({ runId: input.runId }, 'no audit store configured: the deployment results are not kept (no undo later)');
        return;
      }
      // The closed deployment's final state, a page at a time (its own query: the deployment waits on this activity, so the state holds still).
      const ctx = Context.current();
      const handle = ctx.client.workflow.getHandle(input.hostsFrom.workflowId, input.runId);
      const hosts: ReturnType<typeof resultsHostOf>[] = [];
      for (let page = 1, pages = 1; page <= pages; page++) {
        ctx.heartbeat({ page });
        const p = await handle.query(hostsPageQuery, { page, pageSize: MAX_PAGE_SIZE });
        pages = p.pages;
        hosts.push(...p.hosts.map(resultsHostOf));
      }
      let results: DeploymentResults;
      try {
        results = resultsFromRef(input, hosts);
      } catch (err) {
        // Never written; not retried either (the state holds still, a second read gives the same): the deployment logs it and closes.
        throw ApplicationFailure.nonRetryable((err as Error).message, FailureType.InvalidInput);
      }
      await appendResults(deps.audit, results);
    },

    async readDeploymentResults({ deploymentId }: { deploymentId: string }): Promise<DeploymentResults | null> {
      if (!deps.audit) return null;
      return (await deps.audit.results(deploymentId)).at(-1) ?? null;
    },

    /** What the switch would change: builds the target (no profile change), diffs the closures on the host. */
    async closureDiff(input: ClosureDiffInput): Promise<ClosureDiff> {
      const flakeRef = pinnedRef(input.flakeRef);
      try {
        return await heartbeating(hb, () =>
          pool.use(input.host, async (s) => {
            const built = await buildTarget(s, target(input.host), { flakeRef, attr: input.host.attr, ...deps.hostTimeouts, ...cancellation() });
            if (built.outcome === 'failed') throw buildFailure(input.host.name, built);
            return diffClosures(s, input.from.storePath, built.target, cancellation());
          }),
        );
      } catch (err) {
        if (err instanceof ApplicationFailure) throw err;
        hostFailure(err, input.host.name);
      }
    },

    async diffStorePaths(input) {
      try {
        return await pool.use(input.host, (s) => diffClosures(s, input.from, input.to, cancellation()));
      } catch (err) {
        hostFailure(err, input.host.name);
      }
    },

    async pullRequestHead({ repository, number }) {
      try {
        const pr = await getPullRequest(deps.github, { owner: repository.owner, repo: repository.name, number });
        return { sha: pr.headSha, ref: pr.headRef };
      } catch (err) {
        githubFailure(err);
      }
    },

    async readHostGeneration(host: HostSpec): Promise<Generation> {
      try {
        return gen(await pool.use(host, (s) => readGeneration(s, host.kind, limits(host))));
      } catch (err) {
        hostFailure(err, host.name);
      }
    },

    async readPullRequest({ repository, number }) {
      try {
        const pr = await getPullRequest(deps.github, { owner: repository.owner, repo: repository.name, number });
        return { number: pr.number, headSha: pr.headSha, state: pr.state, merged: pr.merged };
      } catch (err) {
        githubFailure(err);
      }
    },

    ...createNotifyActivities({ logger: deps.logger, ...(deps.notifyEnv ? { env: deps.notifyEnv } : {}) }),
  };
  const all: Activities = {
    ...activities,
    ...createRebootActivities({ pool, ssh: deps.ssh, limits, hostFailure, heartbeating: (fn) => heartbeating(hb, fn), cancellation, earlierAttemptConnected, markConnected }),
    ...createFleetSnapshotActivities(),
  };
  return { activities: all, close: () => pool.closeAll(), openSshConnections: () => pool.openConnections };
}
