/**
 * The contract between the deploy workflow and its activities. Types only (bundled into workflows).
 *
 * Failures cross the boundary as Temporal ApplicationFailures whose `type` is one of FailureType and
 * whose first detail, when present, is the matching `*Details` object.
 */
import type { DeploymentResults, DeploymentResultsRef } from './undo';
import type { HostReread } from './wave-recovery';
import type { NotifyBody } from './notify';
import type { AuditEntry, ChangeRef, Generation, HealthCheck, HostSpec, RepoRef, RevertOutcome, RevertPolicy } from './deployment';

export const FailureType = {
  /** The switch command ran and failed; permanent for this deployment. */
  SwitchFailed: 'SwitchFailed',
  /** Evaluation or build failed in the build-first phase: nothing changed on the host. */
  BuildFailed: 'BuildFailed',
  /** The connection dropped while a command ran: the outcome is unknown until the host is inspected. */
  ConnectionLost: 'ConnectionLost',
  /** Nothing reached the host. */
  HostUnreachable: 'HostUnreachable',
  /** Another activation (an earlier attempt's, still running) holds the host's activation lock: not started again. */
  HostBusy: 'HostBusy',
  HostKeyMismatch: 'HostKeyMismatch',
  /** The host is not on the generation the deployer expected after a step. */
  VerifyFailed: 'VerifyFailed',
  RollbackFailed: 'RollbackFailed',
  RevertConflict: 'RevertConflict',
  GitHubPermanent: 'GitHubPermanent',
  /** A GitHub error that may pass (5xx, a rate limit: retried after the delay GitHub asked for, a push that raced). */
  GitHubTransient: 'GitHubTransient',
  InvalidInput: 'InvalidInput',
  /** The audit store refused an entry (a field out of its bounds): retrying cannot help. */
  AuditRefused: 'AuditRefused',
  /** A notification's receiver answered with a refusal (4xx other than 408/429): retrying cannot help. */
  NotifyRefused: 'NotifyRefused',
  /** A notification's secret is not in the worker's environment, or its URL is not http(s). */
  NotifyMisconfigured: 'NotifyMisconfigured',
  /** Any other failure of a host step (a command failed, unexpected output, no rollback target). */
  HostError: 'HostError',
} as const;
export type FailureType = (typeof FailureType)[keyof typeof FailureType];

/**
 * The failures no retry can fix: every retry policy's `nonRetryableErrorTypes` (workflows/common.ts)
 * and the benchmark's (bench/workflows) are this list. An activity may also throw a failure marked
 * non-retryable itself (`ApplicationFailure.nonRetryable`); these types are refused a retry whatever
 * the flag says (VerifyFailed is thrown retryable by verifyHost, and must not be retried by the policy).
 */
export const NON_RETRYABLE_FAILURES: readonly FailureType[] = [
  FailureType.SwitchFailed,
  FailureType.BuildFailed,
  FailureType.HostKeyMismatch,
  FailureType.VerifyFailed,
  FailureType.RevertConflict,
  FailureType.GitHubPermanent,
  FailureType.InvalidInput,
  FailureType.AuditRefused,
  FailureType.NotifyRefused,
  FailureType.NotifyMisconfigured,
];

/** The self-rollback timer's unit for a deployment (a valid systemd unit name). */
export function confirmUnit(deploymentId: string): string {
  const name = `nixfleet-rollback-${deploymentId.replace(/[^A-Za-z0-9._-]/g, '_')}`;
  // A long id is cut with a hash of the whole, so two long ids that differ only at the end (the same
  // repository, another pull request) still get their own unit.
  return name.length <= 200 ? name : `${name.slice(0, 191)}-${fnv1a32(deploymentId)}`;
}

/** FNV-1a, 32 bits, as 8 hex digits (pure, deterministic: usable in workflow code). */
function fnv1a32(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

/**
 * The unit an attempt actually arms: the deployment's unit (confirmUnit) plus the workflow run, so
 * that a re-run of the same deployment id (another run) never meets the elapsed timer of an earlier
 * one, which systemd keeps loaded (RemainAfterElapse=yes) and refuses to load again. The switch and the
 * confirmation of one host run in the same workflow run, so both derive the same name.
 */
export function confirmUnitForRun(unit: string, runId: string): string {
  const run = runId.replace(/[^A-Za-z0-9]/g, '').slice(0, 12) || 'run';
  return `${unit.slice(0, 180)}-${run}`;
}

export interface SwitchFailedDetails {
  exitCode: number | null;
  /** The profile had moved to a new generation before the failure (activation failed). */
  profileMoved: boolean;
  after?: Generation;
  /** switch-to-configuration exit 4: the system runs the new generation with failed units. */
  failedUnits?: boolean;
  stderrTail?: string;
  /** A retry found the target switched by an earlier attempt and rolled back since: not switched again. */
  superseded?: boolean;
}

export interface ResolveChangeInput {
  deploymentId: string;
  repository: RepoRef;
  change: ChangeRef;
}
export interface ResolvedChange {
  mergeSha: string;
  pullRequest?: number;
  /** `merged-now` when this deployment merged the pull request. */
  how: 'merged-now' | 'already-merged' | 'commit';
}

export interface HostStepInput {
  deploymentId: string;
  host: HostSpec;
  /**
   * The deployment workflow's run (the root of the waves): the switch marker is named for it, so the
   * deployment's close (in the root) removes the marker a wave's switch wrote.
   */
  deploymentRunId?: string;
}
export interface SwitchHostInput extends HostStepInput {
  /** The flake reference pinned at the merge commit, without `#attr` (the attribute is `host.attr`). */
  flakeRef: string;
  before: Generation;
  /** From the build-first phase: the switch must land exactly on this store path. */
  expectedStorePath?: string;
  /** switch-to-configuration exit 4: a failure (default) or tolerated with a warning. */
  failedUnits?: 'fatal' | 'tolerate';
  /** Connectivity confirmation: the host rolls itself back to `before` unless confirmed in time. */
  confirmTimeoutSeconds?: number;
}
export interface ConfirmHostInput extends HostStepInput {
  /** confirmUnit(deploymentId); the activity arms and stops confirmUnitForRun(unit, runId). */
  unit: string;
  /** The recorded generation (what the host rolls itself back to) and the one the switch reached. */
  before?: Generation;
  switched?: Generation;
}
export interface SwitchHostResult extends Generation {
  warning?: string;
}
export interface BuildHostInput extends HostStepInput {
  /** The flake reference pinned at the merge commit, without `#attr` (the attribute is `host.attr`). */
  flakeRef: string;
}
export interface CheckHealthInput extends HostStepInput {
  checks: HealthCheck[];
}
export interface HealthReport {
  healthy: boolean;
  problems: string[];
}
export interface QuarantineInput {
  repository: RepoRef;
  mergeSha: string;
}
export interface VerifyHostInput extends HostStepInput {
  expected: Generation;
}
export interface RollbackHostInput extends HostStepInput {
  to: Generation;
}
export interface RevertMergeInput {
  deploymentId: string;
  repository: RepoRef;
  mergeSha: string;
  pullRequest?: number;
  mode: Exclude<RevertPolicy, 'off'>;
  reason: string;
  requestedBy: string;
  /** Workflow time of the request: the revert commit's date, so a retry builds the identical commit. */
  requestedAt: string;
}

export interface RecordAuditInput {
  deploymentId: string;
  /**
   * The workflow run writing the entry (deployment ids are reused once a run has closed): the entry is
   * keyed by (deploymentId, runId, seq). Absent in histories that predate it: the old key
   * (deploymentId, seq), so their retried entries still land on the ones already written.
   */
  runId?: string;
  seq: number;
  repository: string;
  entry: AuditEntry;
}

export interface DescribeHostInput extends HostStepInput {
  /** The flake reference pinned at the merge commit, without `#attr` (the attribute is `host.attr`). */
  flakeRef: string;
}
export interface HostPlan {
  generation?: Generation;
  /** Why the generation could not be read (the host is unreachable, its key changed, …). */
  error?: string;
  commands: string[];
}

export interface DeployActivities {
  resolveChange(input: ResolveChangeInput): Promise<ResolvedChange>;
  /** Reads the host's generation and pins it with a GC root for the deployment (the way back). */
  recordGeneration(input: HostStepInput): Promise<Generation>;
  /** The deployment closed: removes its GC roots on the host (recorded and target). Safe to run twice. */
  releaseHost(input: HostStepInput): Promise<void>;
  switchHost(input: SwitchHostInput): Promise<SwitchHostResult>;
  /** Builds the host's closure without switching; returns the store path (BuildFailed when it fails). */
  buildHost(input: BuildHostInput): Promise<{ target: string }>;
  checkHealth(input: CheckHealthInput): Promise<HealthReport>;
  /** Over a NEW connection: stops the host's self-rollback timer. `timer-gone`: it already rolled itself back. */
  confirmHost(input: ConfirmHostInput): Promise<'confirmed' | 'timer-gone'>;
  /** Was this commit reverted before (a revert commit on the branch, or an open revert pull request)? */
  quarantineStatus(input: QuarantineInput): Promise<{ quarantined: boolean; why?: string }>;
  verifyHost(input: VerifyHostInput): Promise<Generation>;
  rollbackHost(input: RollbackHostInput): Promise<Generation>;
  revertMerge(input: RevertMergeInput): Promise<RevertOutcome>;
  /**
   * After a wave's child ended without its result: the host's generation now and the one this
   * deployment recorded (from its GC root; absent when it never recorded the host). Changes nothing.
   */
  rereadRecorded(input: HostStepInput): Promise<HostReread>;
  /** Dry run: the host's generation now and the commands a switch would run. Changes nothing. */
  describeHost(input: DescribeHostInput): Promise<HostPlan>;
  /** Appends to the durable audit log; idempotent on (deploymentId, runId, seq), or (deploymentId, seq) without a run. */
  recordAudit(input: RecordAuditInput): Promise<void>;
  /** Writes a closed deployment's results to the durable store (what an undo reads later); idempotent on (deploymentId, runId). */
  recordDeploymentResults(input: DeploymentResults): Promise<void>;
  /** The same, with the hosts read from the deployment's `hostsPage` query (src/domain/undo.ts DeploymentResultsRef); idempotent alike. */
  recordDeploymentResultsByRef(input: DeploymentResultsRef): Promise<void>;
  /** The latest results of a deployment in the durable store; null when it has none (or no store is configured). */
  readDeploymentResults(input: { deploymentId: string }): Promise<DeploymentResults | null>;
  /** Posts one signed notification (activities/notify.ts); a receiver that already has its id is told again, harmlessly. */
  notify(input: NotifyInput): Promise<void>;
}

export interface NotifyInput {
  deploymentId: string;
  /** A target name the worker resolves (its URL and secret never in the input), or the deprecated URL form. */
  target: { name: string } | { url: string; secretEnv: string };
  targetIndex: number;
  body: NotifyBody;
}
