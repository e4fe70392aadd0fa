import type { HostTimeouts } from './host-timeouts';
import type { OfflinePolicy } from './offline';
import type { RebootPolicy } from './reboot';
/**
 * The deployment's vocabulary, shared by the workflow, the activities, the API and the CLI.
 * Pure types and constants only: this module is bundled into workflow code, so it must not import
 * Node built-ins or libraries.
 */
import { encodeId } from './ids';
import type { NotifyEvent, NotifyTarget } from './notify';
import type { MaintenanceWindow } from './windows';

export type HostKind = 'nixos' | 'home-manager';

/** Command templates for one host; placeholders are `{name}` and every value is shell-quoted. */
export interface CommandTemplates {
  /**
   * Replaces the whole switch, e.g. `nixos-rebuild switch --flake {flake}`. The NixOS default does what
   * nixos-rebuild does in three steps (build, `nix-env --set`, `switch-to-configuration switch`) so that
   * exit 4 (failed units) can be told from other failures; Home Manager: `home-manager switch --flake {flake}`.
   */
  switch?: string;
}

export interface HostSpec {
  name: string;
  address: string;
  port: number;
  user: string;
  kind: HostKind;
  /** Flake attribute: nixosConfigurations.<attr> or homeConfigurations.<attr>. */
  attr: string;
  commands?: CommandTemplates;
  /** The fleet's build, activation and health timeouts (absent: the defaults of src/domain/host-timeouts.ts). */
  timeouts?: HostTimeouts;
}

export type MergeMethod = 'merge' | 'squash' | 'rebase';

export interface RepoRef {
  owner: string;
  name: string;
  branch: string;
  /**
   * How the deployer merges a pull request (the fleet file's `repository.mergeMethod`). Absent: the
   * first method the repository allows (merge, squash, rebase). Travels with the repository into
   * every GitHub activity, so deployments started before it existed run unchanged.
   */
  mergeMethod?: MergeMethod;
}

export type RevertPolicy = 'off' | 'commit' | 'pull-request';

export interface FailurePolicy {
  revert: RevertPolicy;
  rollbackHosts: boolean;
}

export type ChangeRef =
  | { kind: 'pull-request'; number: number; expectedHeadSha?: string }
  | { kind: 'commit'; sha: string; pullRequest?: number };

/** One wave of the rollout: its hosts, how many switch at once, how long to watch before the next. */
export interface Wave {
  name: string;
  hosts: string[];
  maxParallel: number;
  /** Wait this long after the wave before starting the next (the canary's bake time). */
  bakeSeconds: number;
}

export type HealthCheck =
  /** `systemctl --failed` on the host lists no unit. */
  | { kind: 'systemd' }
  /** The worker fetches the URL ({host} and {address} are filled in) and expects a 2xx. */
  | { kind: 'http'; url: string; timeoutSeconds: number }
  /** A command on the host (a template without placeholders) that exits 0 when healthy. */
  | { kind: 'command'; command: string; timeoutSeconds: number };

export interface RolloutPolicy {
  waves: Wave[];
  /** Hosts that may fail before the deployment halts and compensates (0: the first failure halts). */
  failureBudget: number;
  /** Hosts held back: not deployed, not counted. */
  held: string[];
  /** Build every host's closure before the first switch (an evaluation error then touches no host). */
  buildFirst: boolean;
  /** switch-to-configuration exit 4 (a unit failed, the host runs the new generation): fatal or tolerated. */
  failedUnits: 'fatal' | 'tolerate';
  healthChecks: HealthCheck[];
  /** Checks are retried for this long after the switch before the host counts as failed. */
  healthGraceSeconds: number;
  /** Deploy a commit that was reverted before (quarantined) anyway. */
  allowQuarantined: boolean;
  /** Connectivity confirmation: the host rolls itself back unless confirmed over a new connection in time. */
  confirmTimeoutSeconds: number;
  /** A wave larger than this runs as several child workflows in turn (default 200). */
  hostsPerChild?: number;
  /** NixOS hosts: boot the new generation with a reboot (src/domain/reboot.ts); never: only show whether one is needed. Absent: neither. */
  reboot?: RebootPolicy;
  /** How long a rebooting host may take to come back (seconds). */
  rebootTimeoutSeconds?: number;
  /** A host that does not answer the probe before its build (src/domain/offline.ts). Absent: no probe; it fails at its first step. */
  offline?: OfflinePolicy;
  /** Maintenance windows (src/domain/windows.ts): the deployment and each wave start only inside one. */
  windows?: MaintenanceWindow[];
}

export interface DeployInput {
  deploymentId: string;
  repository: RepoRef;
  change: ChangeRef;
  hosts: HostSpec[];
  /** The timeouts every host shares, hoisted out of the hosts (src/domain/host-refs.ts inputHosts fills them back). */
  hostTimeouts?: HostTimeouts;
  /** Flake reference at a pinned commit, e.g. `github:{owner}/{repo}/{sha}`. */
  flakeRefTemplate: string;
  onFailure: FailurePolicy;
  /** How long a failed deployment stays open for a manual rollback. */
  manualWindowSeconds: number;
  requestedBy: string;
  /** Write the Nixfleet* search attributes (the server must have them registered). */
  searchAttributes: boolean;
  /** Waves, budget, checks. Absent: one wave of every host in order, one at a time, as before. */
  rollout?: RolloutPolicy;
  /** Webhooks told of the deployment's events (src/domain/notify.ts). */
  notify?: NotifyTarget[];
}

export interface Generation {
  number: number;
  storePath: string;
}

export const HOST_STATES = ['pending', 'switching', 'switched', 'failed', 'not-attempted', 'held', 'rolling-back', 'rolled-back', 'rollback-failed'] as const;
export type HostState = (typeof HOST_STATES)[number];

export interface HostStatus {
  name: string;
  kind: HostKind;
  state: HostState;
  before?: Generation;
  after?: Generation;
  /**
   * Where the rollback landed: the recorded store path, on the recorded generation's number or, when
   * that link had been collected, on a new one (`42 → 43 → 44`). Set by the rollback only.
   */
  now?: Generation;
  /** Why the switch or the rollback failed. */
  error?: string;
  /** Set when a failed switch had already moved the profile (activation failed). */
  profileMoved?: boolean;
  /** Set when the deployer cannot know what the host is running (connection lost, unreachable). */
  uncertain?: string;
  /** The rollout wave the host belongs to. */
  wave?: string;
  /** What the build-first phase built for this host (the switch must land exactly there). */
  target?: string;
  /** Something the operator should know that did not fail the host (tolerated failed units). */
  warning?: string;
  /**
   * The new generation's kernel, initrd or kernel modules differ from what booted (/run/booted-system):
   * it takes full effect only after a reboot. `rebooted`: the deployment rebooted it and it came back on it.
   */
  reboot?: { needed: boolean; differs?: string[]; rebooted?: boolean };
  /** The host did not answer the probe before its build (rollout.offline): skipped, or waited for. */
  offline?: string;
}

export type Phase =
  | 'starting'
  | 'awaiting-window'
  | 'merging'
  | 'building'
  | 'deploying'
  | 'baking'
  | 'succeeded'
  | 'compensating'
  | 'awaiting-operator'
  | 'rolling-back'
  | 'closed';

export type RevertOutcome =
  | { kind: 'commit'; commitSha: string; alreadyReverted: boolean }
  | { kind: 'pull-request'; url: string; number: number; fellBackFromProtectedBranch: boolean; reason?: string }
  | { kind: 'failed'; error: string; conflict: boolean };

export type ManualAction = 'revert' | 'revert-and-rollback' | 'dismiss';

export interface RollbackRequest {
  action: ManualAction;
  /** Who asked: an identity the caller authenticated, never free text from a form. */
  requestedBy: string;
  /** Revert mode for a manual revert; defaults to the deployment's policy, or `commit` when that is off. */
  revertMode?: Exclude<RevertPolicy, 'off'>;
  reason?: string;
}

export interface AuditEntry {
  at: string;
  actor: string;
  /** `invalid-request`: a manual request whose action is none of the manual actions (refused). */
  action: 'deploy' | 'merge' | 'auto-compensate' | ManualAction | 'invalid-request' | 'undo' | 'pause' | 'resume' | 'abort' | 'skip' | 'retry-failed' | 'promote' | 'start-now' | 'notify';
  /** What was reverted (commit sha or pull request URL), when anything was. */
  reverted?: string;
  hosts: string[];
  outcome: string;
}

export interface RollbackPreview {
  /** Hosts a rollback would touch, in the order it would touch them. */
  hosts: Array<{ name: string; from?: Generation; to: Generation; state: HostState }>;
  revert: { needed: boolean; mergeSha?: string; alreadyDone?: RevertOutcome };
  allowed: ManualAction[];
  /** Present when `hosts` was cut to a limit (limitPreview in src/domain/saga.ts): how many hosts a rollback would touch in all. */
  hostCount?: number;
}

export interface DeploymentStatus {
  deploymentId: string;
  phase: Phase;
  repository: RepoRef;
  change: ChangeRef;
  mergeSha?: string;
  hosts: HostStatus[];
  failedHost?: string;
  failure?: string;
  /** Waves in order, with their state. */
  waves?: Array<{ name: string; hosts: string[]; state: 'pending' | 'running' | 'baking' | 'done' | 'halted' | 'not-started' }>;
  revert?: RevertOutcome;
  audit: AuditEntry[];
  /** Audit entries the durable store refused (each failed once, non-retryable): they are only in `audit`. */
  auditFailures?: Array<{ seq: number; action: AuditEntry['action']; type: string; error: string }>;
  /** Refused requests past the trail's refusal limits (REFUSAL_AUDIT_LIMITS): answered and logged, not recorded. */
  refusalsNotRecorded?: number;
  outcome?: DeploymentOutcome;
  /**
   * The sequence number of the latest host or phase transition (the live feed's cursor): this status is
   * the state as of it. Absent on deployments started before transitions were numbered.
   */
  progressCursor?: number;
  /** The operator controls' state (pause, skips, abort, retries): absent until the first control is accepted. */
  controls?: { paused: boolean; pausedBy?: string; abortedBy?: string; skipped: string[]; retries: number };
  /**
   * The wave child running now (its workflow id), whose hosts are not in `hosts` until it completes:
   * the service merges its `waveHosts` query in (src/service/deployments.ts). Absent on deployments
   * whose waves signal each host (started before issue 13).
   */
  liveChild?: string;
  /** Set while the deployment waits for a maintenance window (workflows/windows.ts); the last wait stays, with how it ended. */
  window?: WindowWait;
  /** Notifications sent and not delivered, newest last (at most 50). Webhooks are shown by origin only. */
  notifications?: Array<{ event: NotifyEvent; target: string; delivered: boolean; error?: string; at: string }>;
}

export interface WindowWait {
  /** `the deployment` (before the merge) or `wave <name>`. */
  for: string;
  waiting: boolean;
  since: string;
  /** When the next window opens (the wait's end unless an operator starts it now). */
  opensAt: string;
  closesAt: string;
  windows: string;
  /** How the wait ended: `window opened`, or `started now by <actor>`. */
  ended?: string;
  /** An operator's start-now for the rest of the deployment: no further wave waits. */
  ignoreWindows?: boolean;
}

export type DeploymentOutcome =
  | 'succeeded'
  /** Finished within the failure budget: some hosts failed (and were rolled back per policy). */
  | 'succeeded-with-failures'
  /** Refused before touching anything: another deployment holds the fleet, or the commit is quarantined. */
  | 'refused'
  | 'failed-rolled-back'
  | 'failed-rollback-incomplete'
  /** The revert was attempted and failed (e.g. a conflict): the merge is still on the branch. */
  | 'failed-revert-failed'
  | 'failed-not-rolled-back'
  | 'failed-dismissed';

export const TASK_QUEUE = 'nixfleet-deploy';

export const DEFAULT_FLAKE_REF_TEMPLATE = 'github:{owner}/{repo}/{sha}';

/**
 * `deploy-<owner>.<repo>.pr<n>` or `deploy-<owner>.<repo>.<sha12>`, each part escaped (src/domain/ids.ts)
 * so that two repositories never share an id: `deploy-acme.nixos-fleet.pr42`.
 */
export function deploymentWorkflowId(repo: RepoRef, change: ChangeRef): string {
  const tail = change.kind === 'pull-request' ? `pr${change.number}` : change.sha.slice(0, 12);
  return encodeId('deploy-', [repo.owner, repo.name, tail]);
}

/** The fleet lock's workflow id: `fleet-lock-<owner>.<repo>.<branch>`, each part escaped (`release/1` → `release_2f1`). */
export function fleetLockWorkflowId(repo: RepoRef): string {
  return encodeId('fleet-lock-', [repo.owner, repo.name, repo.branch]);
}
