/**
 * The host operations of a deployment: read the current generation, switch to a flake, roll back to
 * a recorded generation. Pure functions of a HostSession (no Temporal imports), each safe to run
 * twice: activities run at least once.
 *
 * Idempotent switch (a retry after a crash must not switch twice):
 *   1. build first: `nix build --no-link --json <ref>#<toplevel|activationPackage>` gives the target
 *      store path T (a cache hit if the previous attempt built it; works on Nix 2.8, which has no
 *      --print-out-paths);
 *   2. read the host: profile generation P and what is activated C (/run/current-system, or HM's
 *      gcroots/current-home);
 *   3. P = T and C = T: already on the target, nothing runs (`already-on-target`);
 *      P = T and C ≠ T: the profile moved but activation never completed (the previous attempt died
 *      mid-activation): only the activation runs, no new generation;
 *      otherwise: the switch runs.
 *   NixOS default switch = what nixos-rebuild does, step by step, so the activation's own exit code
 *   is seen (nixos-rebuild turns 4 into 1): `nix-env -p /nix/var/nix/profiles/system --set T`, then
 *   `T/bin/switch-to-configuration switch`. A `switch` template (e.g. `nixos-rebuild switch --flake
 *   {flake}`) replaces both; the outcome is then classified by re-reading the profile.
 *   Home Manager default: `home-manager switch --flake {flake}`.
 *
 * Rollback is always to a RECORDED generation (number + store path), never relative:
 *   NixOS: `nix-env -p /nix/var/nix/profiles/system --switch-generation N` (only if not already N),
 *   then `/nix/var/nix/profiles/system-N-link/bin/switch-to-configuration switch` (only if the
 *   profile moved or /run/current-system differs). A link that points elsewhere is
 *   RollbackTargetMissingError; a link garbage-collected away (the store path is pinned at record
 *   time: pinStorePath) makes the recorded store path a new generation (`nix-env -p P --set S`), then
 *   `S/bin/switch-to-configuration switch`. A host already running the recorded generation still gets
 *   `S/bin/switch-to-configuration boot`: the boot default is part of "rolled back". Run twice, the
 *   second run moves nothing.
 *   Home Manager: `<recorded storePath>/activate`, only when the current HM generation or the
 *   activated one differs from the recorded store path (HM then creates a NEW generation pointing at
 *   the old store path; the recorded number is not reused, the store path is what is restored).
 */
import { createHash } from 'node:crypto';
import type { CommandTemplates, Generation, HostKind } from '../domain/deployment';
import { ACTIVATION_LOCK, CommandCancelledError, CommandTimeoutError, HostBusyError, InvalidInputError, LOCK_BUSY_EXIT, RollbackTargetMissingError, TargetMismatchError, UnexpectedOutputError } from './errors';
import type { ExecResult, HostSession } from './session';
import {
  nixAttrComponent,
  renderTemplate,
  shellQuote,
  validateAbsolutePath,
  validateFlakeAttr,
  validateFlakeRef,
  validateGeneration,
  validateStorePath,
  validateTemplate,
} from './shell';

export const NIXOS_SYSTEM_PROFILE = '/nix/var/nix/profiles/system';

/**
 * Command templates for one host: only `switch` (the fleet file's `commands.switch`, see
 * CommandTemplates) can be set. Every other command is the product's own (DEFAULTS below), which the
 * host's allowlist admits exactly.
 */
export type HostCommandTemplates = CommandTemplates;

export interface HostTarget {
  /** For messages. */
  name: string;
  kind: HostKind;
  /** Flake attribute (nixosConfigurations.<attr> / homeConfigurations.<attr>); default `name`. */
  attr?: string;
  commands?: HostCommandTemplates;
}

const DEFAULTS = {
  build: 'nix build --no-link --json {installable}',
  setProfile: 'nix-env -p {profile} --set {storePath}',
  activate: '{storePath}/bin/switch-to-configuration switch',
  hmSwitch: 'home-manager switch --flake {flake}',
  switchGeneration: 'nix-env -p {profile} --switch-generation {generation}',
  activateGeneration: '{genLink}/bin/switch-to-configuration switch',
  bootGeneration: '{storePath}/bin/switch-to-configuration boot',
  setGeneration: 'nix-env -p {profile} --set {storePath}',
  hmActivate: '{storePath}/activate',
} as const;

const PLACEHOLDERS = {
  switch: ['flake', 'flakeRef', 'attr', 'storePath'],
  build: ['installable'],
  setProfile: ['profile', 'storePath'],
  activate: ['storePath', 'profile'],
  switchGeneration: ['profile', 'generation'],
  activateGeneration: ['genLink', 'storePath', 'generation'],
  bootGeneration: ['storePath', 'genLink', 'generation'],
  setGeneration: ['profile', 'storePath'],
  hmActivate: ['storePath'],
} as const;

/** One of the product's own commands with its values quoted (checked like a template's placeholders). */
function command(name: Exclude<keyof typeof DEFAULTS, 'hmSwitch'>, values: Record<string, string | number>): string {
  return renderTemplate(DEFAULTS[name], values, PLACEHOLDERS[name], `commands.${name}`);
}

/** Validates a host's templates up front (errors name the field). */
export function validateHostCommands(commands: HostCommandTemplates | undefined, field = 'commands'): void {
  if (!commands) return;
  for (const [k, v] of Object.entries(commands)) {
    if (v === undefined) continue;
    if (k !== 'switch') throw new InvalidInputError(`${field}.${k}`, 'unknown command template (only commands.switch can be set)');
    validateTemplate(v, PLACEHOLDERS.switch, `${field}.${k}`);
  }
}

export interface HostGeneration extends Generation {
  /** What is activated: /run/current-system (NixOS) or HM's gcroots/current-home; null if absent. */
  currentSystem: string | null;
  /** The profile read (system profile or the HM profile found on the host). */
  profile: string;
}

export interface TimeoutOptions {
  /** Reads (default 30 s). */
  readTimeoutMs?: number;
  /** Build / evaluation (default 30 min). */
  buildTimeoutMs?: number;
  /** Profile moves and activation (default 10 min). */
  activateTimeoutMs?: number;
  /** Cancellation of builds, profile moves and activations: the remote command is sent KILL (CommandCancelledError). */
  signal?: AbortSignal;
}

function timeouts(o: TimeoutOptions = {}): Required<Omit<TimeoutOptions, 'signal'>> & { signal?: AbortSignal } {
  return {
    ...(o.signal ? { signal: o.signal } : {}),
    readTimeoutMs: o.readTimeoutMs ?? 30_000,
    buildTimeoutMs: o.buildTimeoutMs ?? 30 * 60_000,
    activateTimeoutMs: o.activateTimeoutMs ?? 10 * 60_000,
  };
}

function tail(s: string, n = 2000): string {
  return s.length > n ? s.slice(-n) : s;
}

const GEN_LINK = { nixos: /^(?:.*\/)?system-(\d+)-link$/, 'home-manager': /^(?:.*\/)?home-manager-(\d+)-link$/ } as const;

const READ_NIXOS = (profile: string) =>
  `set -e; p=${shellQuote(profile)}; l=$(readlink "$p"); s=$(readlink -f "$p"); c=$(readlink -f /run/current-system || true); printf '%s\\n%s\\n%s\\n%s\\n' "$p" "$l" "$s" "$c"`;

// HM's profile: ${XDG_STATE_HOME:-~/.local/state}/nix/profiles/home-manager when that directory
// exists, else the older per-user profile (as home-manager itself decides).
const READ_HM = `set -e; st=\${XDG_STATE_HOME:-$HOME/.local/state}; if [ -d "$st/nix/profiles" ]; then p=$st/nix/profiles/home-manager; else p=/nix/var/nix/profiles/per-user/$USER/home-manager; fi; l=$(readlink "$p"); s=$(readlink -f "$p"); c=$(readlink -f "$st/home-manager/gcroots/current-home" || true); printf '%s\\n%s\\n%s\\n%s\\n' "$p" "$l" "$s" "$c"`;

/** The host's current generation (number + store path) and what is activated. */
export async function readGeneration(session: HostSession, kind: HostKind, opts: TimeoutOptions & { profile?: string } = {}): Promise<HostGeneration> {
  const profile = kind === 'nixos' ? validateAbsolutePath(opts.profile ?? NIXOS_SYSTEM_PROFILE, 'profile') : undefined;
  const cmd = kind === 'nixos' ? READ_NIXOS(profile as string) : READ_HM;
  const r = await session.run(cmd, { timeoutMs: timeouts(opts).readTimeoutMs });
  const [p, link, storePath, current] = r.stdout.split('\n');
  const m = GEN_LINK[kind].exec(link ?? '');
  if (!p || !m?.[1]) throw new UnexpectedOutputError(session.label, `${kind} profile link`, r.stdout);
  try {
    validateStorePath(storePath, 'profile target');
    if (current) validateStorePath(current, 'current system');
  } catch {
    throw new UnexpectedOutputError(session.label, `${kind} profile target`, r.stdout);
  }
  return { number: Number(m[1]), storePath: storePath as string, currentSystem: current ? current : null, profile: p };
}

/**
 * build: evaluation/build failed (nothing moved). build-timeout: the build outlived the fleet's build
 * timeout and was stopped (nothing moved). set-profile: `nix-env --set` failed.
 * activation: activation failed after the profile moved. before-profile-move: a whole-switch command
 * failed without moving the profile (e.g. HM's checkLinkTargets). verify: the command succeeded but the
 * host is not on the target. (switch-command is internal and never returned.)
 */
export type SwitchPhase = 'build' | 'build-timeout' | 'set-profile' | 'activation' | 'before-profile-move' | 'switch-command' | 'verify' | 'superseded';

export type SwitchResult =
  | {
      outcome: 'switched';
      target: string;
      before: HostGeneration;
      after: HostGeneration;
      /** The profile was already on the target but activation had not completed: only activation ran. */
      resumedActivation: boolean;
      durationMs: number;
    }
  | {
      outcome: 'already-on-target';
      target: string;
      before: HostGeneration;
      after: HostGeneration;
      /** An earlier attempt of this deployment reached the profile step on this host (its marker exists). */
      earlierSwitchReached: boolean;
      durationMs: number;
    }
  | {
      outcome: 'failed';
      phase: SwitchPhase;
      /** The profile moved to a new generation before the failure (NixOS: the system is on it). */
      profileMoved: boolean;
      /** switch-to-configuration exit 4: the system runs the new generation with failed units. */
      failedUnits: boolean;
      exitCode: number | null;
      target: string | null;
      before: HostGeneration;
      after: HostGeneration;
      stderrTail: string;
      durationMs: number;
    };

export interface SwitchOptions extends TimeoutOptions {
  /** The flake reference WITHOUT `#attr`, pinned to a revision (`git+https://…?rev=SHA`). */
  flakeRef: string;
  /** Overrides host.attr. */
  attr?: string;
  /** When given, refuse (TargetMismatchError) if the flake builds anything else. */
  expectedStorePath?: string;
  /**
   * The generation the deployer recorded before its first attempt. A retry that finds the target in
   * the host's generations, newer than this, but not current (the host was rolled back meanwhile, by
   * itself or by someone) does not switch again: it reports phase `superseded`.
   */
  recorded?: Generation;
  /**
   * The name of this deployment attempt's switch marker (switchMarkerName). With it, the switch writes
   * the marker on the host right before its profile step (or whole-switch command), and a later
   * attempt keys the `recorded` (superseded) check on the marker having been written: a host a retry
   * finds with the target in its generations was switched by THIS deployment only if an earlier
   * attempt reached that step. Without it, `recorded` alone enables the check.
   */
  marker?: string;
  /**
   * Connectivity confirmation (NixOS, default commands only): activation runs detached from the SSH
   * session (`systemd-run --wait`), and right after it the host arms a timer (`systemd-run
   * --on-active`) that rolls it back to `rollbackTo` unless `confirmSelfRollback(unit)` stops it over a
   * new connection within `timeoutSeconds`.
   */
  confirm?: { unit: string; timeoutSeconds: number; rollbackTo: Generation };
}

const UNIT = /^[A-Za-z0-9][A-Za-z0-9@._-]{0,200}$/;

/**
 * Where a Home Manager profile's activations take their lock: beside the profile, in a directory its
 * user owns (/run is root's). Activations of one profile never run at once.
 */
export function hmActivationLock(profile: string): string {
  const p = validateAbsolutePath(profile, 'profile');
  return `${p.slice(0, p.lastIndexOf('/'))}/nixfleet-activation.lock`;
}

/** The activation lock of a host's profile: the host-wide one for NixOS, the profile's own for Home Manager. */
export function activationLock(kind: HostKind, profile: string): string {
  return kind === 'nixos' ? ACTIVATION_LOCK : hmActivationLock(profile);
}

/** Where a NixOS host's builds hold their lock (a descriptor held, not taken: builds may overlap). */
export const BUILD_LOCK = '/run/nixfleet-build.lock';

/**
 * The file a host's builds hold open while they run: the host-wide one for NixOS, beside the Home
 * Manager profile (a directory its user owns) for Home Manager. sshd does not signal a forced-command
 * session, so a cancelled or timed-out build is stopped by it (stopBuild), like an activation.
 */
export function buildLock(kind: HostKind, profile: string): string {
  if (kind === 'nixos') return BUILD_LOCK;
  const p = validateAbsolutePath(profile, 'profile');
  return `${p.slice(0, p.lastIndexOf('/'))}/nixfleet-build.lock`;
}

const lockRedirect = (lock: string): string => (lock === ACTIVATION_LOCK || lock === BUILD_LOCK ? lock : shellQuote(lock));

/**
 * An activation under the host's activation lock (`flock -n`, as newer switch-to-configuration
 * versions also take one): two activations never run at once on a host, and a retry while an earlier
 * attempt's activation still runs is not started (HostBusyError). Used for every activation on the
 * default commands, NixOS and Home Manager; custom templates run as given (their author owns their
 * locking).
 */
function locked(command: string, lock: string = ACTIVATION_LOCK): string {
  // The activation is exec'd with the lock's descriptor: it holds the lock itself and stays the
  // session's process (a KILL on timeout or cancel reaches it, its exit status is its own).
  return `{ flock -n 9 || exit ${LOCK_BUSY_EXIT}; exec ${command}; } 9>${lockRedirect(lock)}`;
}

/** A build holding the host's build lock open (exec'd: the build is the session's process and holds it). */
function holding(command: string, lock: string): string {
  return `{ exec ${command}; } 9>${lockRedirect(lock)}`;
}

/** The command that KILLs whatever holds an activation (or build) lock (the running activation, in a unit or not). */
export function stopActivationCommand(lock: string = ACTIVATION_LOCK): string {
  return `fuser -k -KILL ${lockRedirect(lock)}`;
}
/** The command that KILLs whatever holds the host's (NixOS) activation lock. */
export const STOP_ACTIVATION = stopActivationCommand();

/**
 * Stops a running (locked) activation on the host; nothing if none runs. Safe to run twice. Every
 * process holding the lock's descriptor is killed: the activation and, for a confirmed activation, the
 * transient unit's shell, which the SSH session does not own.
 */
export async function stopActivation(session: HostSession, opts: TimeoutOptions & { lock?: string } = {}): Promise<void> {
  const cmd = stopActivationCommand(opts.lock);
  const r = await session.exec(cmd, { timeoutMs: timeouts(opts).readTimeoutMs });
  // fuser: 0 killed, 1 nothing held the lock.
  if (r.code !== 0 && r.code !== 1) throw new UnexpectedOutputError(session.label, cmd, r.stderr || r.stdout);
}

/** Stops a running build on the host by its lock (buildLock); nothing if none runs. Safe to run twice. */
export async function stopBuild(session: HostSession, lock: string, opts: TimeoutOptions = {}): Promise<void> {
  await stopActivation(session, { ...opts, lock });
}

/**
 * The product's build of an installable, holding the host's build lock. A cancelled build is stopped
 * on the host (CommandCancelledError goes on); a build that outlives the fleet's build timeout is
 * stopped and reported as timed out (not retried: another attempt would take as long).
 */
async function runBuild(session: HostSession, installable: string, lock: string, t: ReturnType<typeof timeouts>): Promise<ExecResult | { timedOut: true; stderr: string }> {
  try {
    return await session.exec(holding(command('build', { installable }), lock), { timeoutMs: t.buildTimeoutMs, ...(t.signal ? { signal: t.signal } : {}) });
  } catch (err) {
    if (!(err instanceof CommandCancelledError || err instanceof CommandTimeoutError)) throw err;
    await stopBuild(session, lock, t).catch(() => undefined);
    if (err instanceof CommandCancelledError) throw err;
    return { timedOut: true, stderr: `the build did not finish within the fleet's build timeout (${Math.round(t.buildTimeoutMs / 1000)} s, timeouts.build) and was stopped` };
  }
}

/** exec of an activation command; exit LOCK_BUSY_EXIT of a locked one: HostBusyError. `lock`: the lock it takes, if any. */
async function execActivation(session: HostSession, command: string, lock: string | undefined, timeoutMs: number, signal?: AbortSignal) {
  let r;
  try {
    r = await session.exec(command, { timeoutMs, ...(signal ? { signal } : {}) });
  } catch (err) {
    // sshd refuses to signal a forced-command session (the allowlist), so the channel's KILL may never
    // arrive (and never reaches a transient unit): stop the activation by its lock, over the same session.
    if (lock !== undefined && (err instanceof CommandCancelledError || err instanceof CommandTimeoutError)) await stopActivation(session, { lock }).catch(() => undefined);
    throw err;
  }
  if (lock !== undefined && r.code === LOCK_BUSY_EXIT) throw new HostBusyError(session.label, command, lock);
  return r;
}

/**
 * The activation command wrapped for connectivity confirmation (see SwitchOptions.confirm).
 *
 * On NixOS a transient unit has the manager's environment: no Nix and no coreutils on PATH (nixpkgs
 * #261691), so everything inside a unit is called by absolute path, from the RECORDED generation's
 * toplevel S (`S/sw/bin/…`, `S/bin/switch-to-configuration`): S is not touched by the switch (a bad
 * switch cannot break it) and is pinned with a GC root at record time. The timer's command rolls the
 * profile back to generation N when its link still points at S, else (the link was garbage-collected)
 * makes S a new generation, then activates S with `switch`, which also makes it the boot default.
 */
/** The transient unit a confirmed activation runs as. */
export function confirmActivationUnit(unit: string): string {
  return `${unit}-activate`;
}

/**
 * A confirmed activation's unit still running (an earlier attempt's, whose SSH session is gone):
 * systemd would refuse to load the name again, so the attempt is HostBusy, as under the lock.
 */
async function confirmUnitRunning(session: HostSession, unit: string, readTimeoutMs: number): Promise<boolean> {
  const r = await session.exec(`systemctl is-active ${shellQuote(`${confirmActivationUnit(unit)}.service`)}`, { timeoutMs: readTimeoutMs });
  return r.code === 0;
}

export function confirmedActivation(activate: string, profile: string, confirm: NonNullable<SwitchOptions['confirm']>): string {
  if (!UNIT.test(confirm.unit)) throw new InvalidInputError('confirm.unit', 'a systemd unit name');
  const seconds = Math.round(confirm.timeoutSeconds);
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > 3600) throw new InvalidInputError('confirm.timeoutSeconds', 'whole seconds between 1 and 3600');
  const n = validateGeneration(confirm.rollbackTo.number, 'confirm.rollbackTo.number');
  const sp = shellQuote(validateStorePath(confirm.rollbackTo.storePath, 'confirm.rollbackTo.storePath'));
  const p = shellQuote(profile);
  const link = shellQuote(`${profile}-${n}-link`);
  // The self-rollback waits for the activation lock (an activation still running finishes or is
  // stopped first); the activation unit takes it without waiting (held: exit 75, HostBusy), and holds
  // it while it activates and arms the timer. flock from the recorded system's path, like the rest.
  const rollback = `{ ${sp}/sw/bin/flock 9; if [ "$(${sp}/sw/bin/readlink ${link})" = ${sp} ]; then ${sp}/sw/bin/nix-env -p ${p} --switch-generation ${shellQuote(String(n))}; else ${sp}/sw/bin/nix-env -p ${p} --set ${sp}; fi && ${sp}/bin/switch-to-configuration switch; } 9>${ACTIVATION_LOCK}`;
  const arm = `${sp}/sw/bin/systemd-run --unit=${shellQuote(confirm.unit)} --on-active=${seconds} --collect --quiet -- /bin/sh -c ${shellQuote(rollback)}`;
  // Exit 0 or 4: the host runs the new generation, so it must be able to return by itself.
  const script = `{ ${sp}/sw/bin/flock -n 9 || exit ${LOCK_BUSY_EXIT}; ${activate}; rc=$?; if [ "$rc" -eq 0 ] || [ "$rc" -eq 4 ]; then ${arm} || exit 97; fi; exit "$rc"; } 9>${ACTIVATION_LOCK}`;
  return `systemd-run --unit=${shellQuote(confirmActivationUnit(confirm.unit))} --collect --wait --pipe --quiet -- /bin/sh -c ${shellQuote(script)}`;
}

export interface ConfirmOptions extends TimeoutOptions {
  /** The generation recorded before the switch (what the timer rolls back to). */
  before: Generation;
  /** The generation the switch reached. */
  switched: Generation;
}

/**
 * Confirms over a (new) connection that the host is reachable: stops its self-rollback timer, then
 * tells from what the host did whether it was in time. An elapsed timer stays loaded on systemd
 * (RemainAfterElapse=yes), so `systemctl stop` succeeding says nothing; and a retry after a lost reply
 * finds the timer gone (exit 5) although the first stop confirmed. So: stop (exit 0 or 5), then
 *   the rollback service still running: the timer fired, the host is rolling back (retryable error);
 *   profile and /run/current-system on the switched generation: 'confirmed';
 *   on the recorded generation's store path: 'timer-gone' (it fired: the host rolled itself back);
 *   anything else: an UnexpectedOutputError (retryable; the host is read again).
 * Safe to run any number of times.
 */
export async function confirmSelfRollback(session: HostSession, unit: string, opts: ConfirmOptions): Promise<'confirmed' | 'timer-gone'> {
  if (!UNIT.test(unit)) throw new InvalidInputError('unit', 'a systemd unit name');
  const before = { number: validateGeneration(opts.before?.number, 'before.number'), storePath: validateStorePath(opts.before?.storePath, 'before.storePath') };
  const switched = { number: validateGeneration(opts.switched?.number, 'switched.number'), storePath: validateStorePath(opts.switched?.storePath, 'switched.storePath') };
  const t = timeouts(opts);
  const stop = await session.exec(`systemctl stop ${shellQuote(`${unit}.timer`)}`, { timeoutMs: t.readTimeoutMs });
  // 5: "Unit … not loaded": stopped by an earlier confirmation, or never armed.
  if (stop.code !== 0 && stop.code !== 5) throw new UnexpectedOutputError(session.label, `systemctl stop ${unit}.timer`, stop.stderr || stop.stdout);
  const running = await session.exec(`systemctl is-active ${shellQuote(`${unit}.service`)}`, { timeoutMs: t.readTimeoutMs });
  if (running.code === 0) throw new UnexpectedOutputError(session.label, `state: the self-rollback ${unit}.service is running (the timer fired)`, running.stdout);
  const g = await readGeneration(session, 'nixos', t);
  if (g.storePath === switched.storePath && g.currentSystem === switched.storePath && g.number === switched.number) return 'confirmed';
  if (g.storePath === before.storePath && g.currentSystem === before.storePath) return 'timer-gone';
  throw new UnexpectedOutputError(
    session.label,
    `state after the confirmation: neither the switched generation ${switched.number} nor the recorded ${before.number} is active`,
    `generation ${g.number} ${g.storePath}, active ${g.currentSystem ?? 'nothing'}`,
  );
}

/** Where the deployer's GC roots live on a host: NixOS's gcroots, or beside Home Manager's profile. */
export function gcRootDir(kind: HostKind, profile: string): string {
  const p = validateAbsolutePath(profile, 'profile');
  return kind === 'nixos' ? '/nix/var/nix/gcroots/nixfleet' : `${p.slice(0, p.lastIndexOf('/'))}/nixfleet-gcroots`;
}

const ROOT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,159}$/;

/**
 * The part every GC root and switch marker name of a deployment starts with (then `-`): the id with
 * unsafe characters replaced. An id that does not fit in 140 characters keeps its first 123 and a
 * digest of the whole id, so two long ids with the same start do not share (and unpin) each other's roots.
 */
export function deploymentRootBase(deploymentId: string): string {
  const safe = deploymentId.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[^A-Za-z0-9]+/, '');
  if (safe.length === 0) return 'deployment';
  if (safe.length <= 140) return safe;
  return `${safe.slice(0, 123)}-${createHash('sha256').update(deploymentId).digest('hex').slice(0, 16)}`;
}

/** A GC root's file name for a deployment and a role (recorded | target). */
export function gcRootName(deploymentId: string, role: 'recorded' | 'target'): string {
  return `${deploymentRootBase(deploymentId)}-${role}`;
}

/**
 * The command that sweeps the deployer's GC roots and switch markers on a host: every entry of its own
 * directory (and of `switches/` in it) older than `olderThanSeconds` by the host's clock (the link's
 * own mtime: find does not follow links) whose name is not the current deployment's (`<base>-*`).
 * Prints what it removed. Directories are never removed; nothing outside the deployer's directory is
 * looked at.
 */
export function sweepCommand(kind: HostKind, profile: string, currentDeploymentId: string, olderThanSeconds: number): string {
  if (!Number.isInteger(olderThanSeconds) || olderThanSeconds < 3600) throw new InvalidInputError('olderThanSeconds', 'whole seconds, at least an hour');
  const minutes = Math.ceil(olderThanSeconds / 60);
  const keep = deploymentRootBase(currentDeploymentId);
  if (!ROOT_NAME.test(keep)) throw new InvalidInputError('deploymentId', 'a GC root name base');
  return `find ${shellQuote(gcRootDir(kind, profile))} -mindepth 1 -maxdepth 2 ! -type d -mmin +${minutes} ! -name ${shellQuote(`${keep}-*`)} -print -delete`;
}

/**
 * Sweeps GC roots and switch markers of other deployments older than `olderThanSeconds` (see
 * gcSweepAgeSeconds for why that is safe): a close that never reached the host leaves them behind,
 * and they would pin store paths forever. Returns the paths removed. Safe to run twice.
 */
export async function sweepStaleRoots(session: HostSession, kind: HostKind, profile: string, currentDeploymentId: string, olderThanSeconds: number, opts: TimeoutOptions = {}): Promise<string[]> {
  const cmd = sweepCommand(kind, profile, currentDeploymentId, olderThanSeconds);
  const r = await session.exec(cmd, { timeoutMs: timeouts(opts).readTimeoutMs });
  if (r.code !== 0) throw new UnexpectedOutputError(session.label, `sweep of ${gcRootDir(kind, profile)}`, r.stderr || r.stdout);
  return r.stdout.split('\n').filter((l) => l.length > 0);
}

/**
 * Pins a store path with a GC root on the host (`nix-store --add-root ROOT -r STOREPATH`: a direct
 * root under /nix/var/nix/gcroots on NixOS, an indirect one beside Home Manager's profile), so that
 * `nix-collect-garbage -d` or `nix.gc` cannot delete the way back. Safe to run twice.
 */
export async function pinStorePath(session: HostSession, kind: HostKind, profile: string, name: string, storePath: string, opts: TimeoutOptions = {}): Promise<string> {
  if (!ROOT_NAME.test(name)) throw new InvalidInputError('name', 'a GC root name ([A-Za-z0-9._-], at most 160)');
  const sp = validateStorePath(storePath, 'storePath');
  const root = `${gcRootDir(kind, profile)}/${name}`;
  const r = await session.exec(`nix-store --add-root ${shellQuote(root)} -r ${shellQuote(sp)}`, { timeoutMs: timeouts(opts).readTimeoutMs });
  if (r.code !== 0) throw new UnexpectedOutputError(session.label, `nix-store --add-root ${root}`, r.stderr || r.stdout);
  return root;
}

/** Removes a GC root made by pinStorePath (nothing if it is gone). Safe to run twice. */
export async function unpinStorePath(session: HostSession, kind: HostKind, profile: string, name: string, opts: TimeoutOptions = {}): Promise<void> {
  if (!ROOT_NAME.test(name)) throw new InvalidInputError('name', 'a GC root name ([A-Za-z0-9._-], at most 160)');
  const root = `${gcRootDir(kind, profile)}/${name}`;
  const r = await session.exec(`rm -f ${shellQuote(root)}`, { timeoutMs: timeouts(opts).readTimeoutMs });
  if (r.code !== 0) throw new UnexpectedOutputError(session.label, `rm -f ${root}`, r.stderr || r.stdout);
}

/** Where switch markers live on a host: beside the deployer's GC roots (a deployer-owned directory). */
export function switchMarkerDir(kind: HostKind, profile: string): string {
  return `${gcRootDir(kind, profile)}/switches`;
}

/** A switch marker's file name for a deployment and one run (attempt) of it. */
export function switchMarkerName(deploymentId: string, runId: string): string {
  const run = runId.replace(/[^A-Za-z0-9]/g, '').slice(0, 12) || 'run';
  return `${deploymentRootBase(deploymentId)}-${run}`;
}

function markerPath(kind: HostKind, profile: string, name: string): string {
  if (!ROOT_NAME.test(name)) throw new InvalidInputError('marker', 'a switch marker name ([A-Za-z0-9._-], at most 160)');
  return `${switchMarkerDir(kind, profile)}/${name}`;
}

/** Whether the switch marker exists on the host (an earlier attempt reached the profile step). */
export async function switchMarkerExists(session: HostSession, kind: HostKind, profile: string, name: string, opts: TimeoutOptions = {}): Promise<boolean> {
  const m = markerPath(kind, profile, name);
  const r = await session.exec(`test -e ${shellQuote(m)}`, { timeoutMs: timeouts(opts).readTimeoutMs });
  if (r.code === 0) return true;
  if (r.code === 1) return false;
  throw new UnexpectedOutputError(session.label, `test -e ${m}`, r.stderr || r.stdout);
}

/** Writes the switch marker (the switch calls it right before its profile step). Safe to run twice. */
export async function writeSwitchMarker(session: HostSession, kind: HostKind, profile: string, name: string, opts: TimeoutOptions = {}): Promise<void> {
  const m = markerPath(kind, profile, name);
  const r = await session.exec(`mkdir -p ${shellQuote(switchMarkerDir(kind, profile))} && touch ${shellQuote(m)}`, { timeoutMs: timeouts(opts).readTimeoutMs });
  if (r.code !== 0) throw new UnexpectedOutputError(session.label, `touch ${m}`, r.stderr || r.stdout);
}

/** Removes a switch marker (nothing if it is gone). Safe to run twice. */
export async function removeSwitchMarker(session: HostSession, kind: HostKind, profile: string, name: string, opts: TimeoutOptions = {}): Promise<void> {
  const m = markerPath(kind, profile, name);
  const r = await session.exec(`rm -f ${shellQuote(m)}`, { timeoutMs: timeouts(opts).readTimeoutMs });
  if (r.code !== 0) throw new UnexpectedOutputError(session.label, `rm -f ${m}`, r.stderr || r.stdout);
}

/** Records the host's generation for a deployment: reads it and pins its store path (GC root). */
export async function pinRecorded(session: HostSession, kind: HostKind, deploymentId: string, recorded: Generation, opts: TimeoutOptions = {}): Promise<string> {
  const g = await readGeneration(session, kind, opts);
  return pinStorePath(session, kind, g.profile, gcRootName(deploymentId, 'recorded'), recorded.storePath, opts);
}

/**
 * The store path a deployment's recorded-generation GC root points at (`readlink R`), or undefined
 * when the host has no such root (the deployment never recorded this host, or released it). Read-only.
 */
export async function readRecordedRoot(session: HostSession, kind: HostKind, profile: string, deploymentId: string, opts: TimeoutOptions = {}): Promise<string | undefined> {
  const root = `${gcRootDir(kind, profile)}/${gcRootName(deploymentId, 'recorded')}`;
  const r = await session.exec(`readlink ${shellQuote(root)}`, { timeoutMs: timeouts(opts).readTimeoutMs });
  if (r.code !== 0) return undefined;
  const target = r.stdout.trim();
  try {
    return validateStorePath(target, 'recorded GC root');
  } catch {
    throw new UnexpectedOutputError(session.label, `readlink ${root}`, r.stdout);
  }
}

/** Every generation of the profile: number and store path, ascending (numeric order). */
export async function listGenerations(session: HostSession, profile: string, opts: TimeoutOptions = {}): Promise<Generation[]> {
  const p = validateAbsolutePath(profile, 'profile');
  const r = await session.exec(`for l in ${shellQuote(p)}-*-link; do [ -L "$l" ] && printf '%s %s\\n' "$l" "$(readlink -f "$l")"; done; true`, {
    timeoutMs: timeouts(opts).readTimeoutMs,
  });
  const out: Generation[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /-(\d+)-link (\/nix\/store\/\S+)$/.exec(line.trim());
    if (m?.[1] && m[2]) out.push({ number: Number(m[1]), storePath: m[2] });
  }
  return out.sort((a, b) => a.number - b.number);
}

function installableFor(kind: HostKind, flakeRef: string, attr: string): string {
  return kind === 'nixos'
    ? `${flakeRef}#nixosConfigurations.${nixAttrComponent(attr)}.config.system.build.toplevel`
    : `${flakeRef}#homeConfigurations.${nixAttrComponent(attr)}.activationPackage`;
}

function parseBuildJson(label: string, stdout: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    throw new UnexpectedOutputError(label, 'nix build --json output', stdout);
  }
  const out = Array.isArray(parsed) ? (parsed[0] as { outputs?: { out?: unknown } } | undefined)?.outputs?.out : undefined;
  try {
    return validateStorePath(out, 'build output');
  } catch {
    throw new UnexpectedOutputError(label, 'nix build --json output', stdout);
  }
}

function moved(before: Generation, after: Generation): boolean {
  return before.number !== after.number || before.storePath !== after.storePath;
}

/** Switches the host to `<flakeRef>#<attr>`; safe to run again after a crash or a lost connection. */
export async function switchTo(session: HostSession, host: HostTarget, opts: SwitchOptions): Promise<SwitchResult> {
  const t0 = Date.now();
  const t = timeouts(opts);
  const flakeRef = validateFlakeRef(opts.flakeRef, 'flakeRef');
  const attr = validateFlakeAttr(opts.attr ?? host.attr ?? host.name, 'attr');
  if (opts.expectedStorePath !== undefined) validateStorePath(opts.expectedStorePath, 'expectedStorePath');
  validateHostCommands(host.commands);
  const cmds = host.commands ?? {};
  const kind = host.kind;

  const before = await readGeneration(session, kind, t);
  // Evidence that an earlier attempt of this deployment reached the profile step on this host (not
  // merely a session: a connection lost during the build changed nothing).
  const earlierSwitchReached = opts.marker !== undefined ? await switchMarkerExists(session, kind, before.profile, opts.marker, t) : opts.recorded !== undefined;
  const mark = async (): Promise<void> => {
    if (opts.marker !== undefined) await writeSwitchMarker(session, kind, before.profile, opts.marker, t);
  };
  const failed = async (phase: SwitchPhase, exitCode: number | null, stderr: string, target: string | null): Promise<SwitchResult> => {
    const after = await readGeneration(session, kind, t);
    return {
      outcome: 'failed',
      phase,
      profileMoved: moved(before, after),
      failedUnits: kind === 'nixos' && exitCode === 4,
      exitCode,
      target,
      before,
      after,
      stderrTail: tail(stderr),
      durationMs: Date.now() - t0,
    };
  };

  // 1. Build: learn the target store path (fails before anything moves).
  const installable = installableFor(kind, flakeRef, attr);
  const build = await runBuild(session, installable, buildLock(kind, before.profile), t);
  if ('timedOut' in build) return failed('build-timeout', null, build.stderr, null);
  if (build.code !== 0) return failed('build', build.code, build.stderr, null);
  const target = parseBuildJson(session.label, build.stdout);
  if (opts.expectedStorePath !== undefined && opts.expectedStorePath !== target) {
    throw new TargetMismatchError(session.label, opts.expectedStorePath, target);
  }

  // 2. Already there? (NixOS, default commands: then make sure it is also the boot default, which a
  // host activated with `test` does not have: `switch-to-configuration boot` rewrites the boot menu.)
  if (before.storePath === target && before.currentSystem === target) {
    if (kind === 'nixos' && cmds.switch === undefined) {
      const boot = await execActivation(session, locked(command('bootGeneration', { storePath: target, genLink: target, generation: before.number })), ACTIVATION_LOCK, t.activateTimeoutMs, t.signal);
      if (boot.code !== 0) return failed('activation', boot.code, boot.stderr, target);
    }
    return { outcome: 'already-on-target', target, before, after: before, earlierSwitchReached, durationMs: Date.now() - t0 };
  }
  // 2b. Switched by an earlier attempt and rolled back since (by the host itself, or by someone): never again.
  if (opts.recorded !== undefined && earlierSwitchReached && before.storePath !== target) {
    const recorded = opts.recorded;
    const earlier = (await listGenerations(session, before.profile, t)).find((g) => g.storePath === target && g.number > recorded.number);
    if (earlier) {
      return {
        outcome: 'failed',
        phase: 'superseded',
        profileMoved: false,
        failedUnits: false,
        exitCode: null,
        target,
        before,
        after: before,
        stderrTail: `an earlier attempt switched to generation ${earlier.number} (${target}); the host is now on generation ${before.number}${before.number === recorded.number && before.storePath === recorded.storePath ? ', its recorded generation: it was rolled back (by itself, if connectivity confirmation was on)' : ''}`,
        durationMs: Date.now() - t0,
      };
    }
  }
  const resumedActivation = before.storePath === target;

  // 3. Switch. First the marker: from here on, the profile may move.
  await mark();
  let phase: SwitchPhase;
  let r;
  const lockOf = activationLock(kind, before.profile);
  if (resumedActivation) {
    // The profile already points at the target; a previous attempt died before activation finished
    // (or its activation still runs: then the lock, or its unit, says so and nothing starts).
    phase = 'activation';
    const cmd = kind === 'nixos' ? command('activate', { storePath: target, profile: before.profile }) : command('hmActivate', { storePath: target });
    if (kind === 'nixos' && opts.confirm) {
      // Confirmed as the first attempt would have been: the host can still return by itself.
      if (await confirmUnitRunning(session, opts.confirm.unit, t.readTimeoutMs)) throw new HostBusyError(session.label, confirmActivationUnit(opts.confirm.unit), lockOf);
      r = await execActivation(session, confirmedActivation(cmd, before.profile, opts.confirm), lockOf, t.activateTimeoutMs, t.signal);
    } else {
      r = await execActivation(session, locked(cmd, lockOf), lockOf, t.activateTimeoutMs, t.signal);
    }
  } else if (cmds.switch !== undefined || kind === 'home-manager') {
    phase = 'switch-command';
    const cmd = renderTemplate(cmds.switch ?? DEFAULTS.hmSwitch, { flake: `${flakeRef}#${attr}`, flakeRef, attr, storePath: target }, PLACEHOLDERS.switch, 'commands.switch');
    // Home Manager's own switch (the default) runs under the profile's lock; a template as given.
    const lock = cmds.switch === undefined ? lockOf : undefined;
    r = await execActivation(session, lock ? locked(cmd, lock) : cmd, lock, t.buildTimeoutMs + t.activateTimeoutMs, t.signal);
  } else {
    const set = await session.exec(command('setProfile', { profile: before.profile, storePath: target }), { timeoutMs: t.activateTimeoutMs, signal: t.signal });
    if (set.code !== 0) return failed('set-profile', set.code, set.stderr, target);
    phase = 'activation';
    const activate = command('activate', { storePath: target, profile: before.profile });
    // A confirmed activation takes the lock inside its transient unit (confirmedActivation).
    r = await execActivation(session, opts.confirm ? confirmedActivation(activate, before.profile, opts.confirm) : locked(activate), lockOf, t.activateTimeoutMs, t.signal);
  }
  if (r.code !== 0) {
    const res = await failed(phase, r.code, r.stderr, target);
    // With a whole-switch command, tell "failed before the profile moved" from "activation failed".
    if (res.outcome === 'failed' && phase === 'switch-command') res.phase = res.profileMoved ? 'activation' : 'before-profile-move';
    return res;
  }

  // 4. Verify.
  const after = await readGeneration(session, kind, t);
  if (after.storePath !== target || after.currentSystem !== target) {
    return { outcome: 'failed', phase: 'verify', profileMoved: moved(before, after), failedUnits: false, exitCode: 0, target, before, after, stderrTail: tail(r.stderr), durationMs: Date.now() - t0 };
  }
  return { outcome: 'switched', target, before, after, resumedActivation, durationMs: Date.now() - t0 };
}

export type RollbackResult =
  | { outcome: 'rolled-back'; before: HostGeneration; after: HostGeneration; durationMs: number }
  | { outcome: 'already-at-recorded'; before: HostGeneration; after: HostGeneration; durationMs: number }
  | {
      outcome: 'failed';
      /** boot-default: on the recorded generation, but `switch-to-configuration boot` failed. */
      phase: 'switch-generation' | 'activation' | 'boot-default' | 'verify';
      exitCode: number | null;
      /** NixOS exit 4 during the rollback's activation: on the recorded generation, with failed units. */
      failedUnits: boolean;
      before: HostGeneration;
      after: HostGeneration;
      stderrTail: string;
      durationMs: number;
    };

/** Brings the host back to a recorded generation (number + store path). Running it twice is harmless. */
export async function rollbackTo(session: HostSession, host: HostTarget, recorded: Generation, opts: TimeoutOptions = {}): Promise<RollbackResult> {
  const t0 = Date.now();
  const t = timeouts(opts);
  const number = validateGeneration(recorded?.number, 'recorded.number');
  const storePath = validateStorePath(recorded?.storePath, 'recorded.storePath');
  validateHostCommands(host.commands);
  const kind = host.kind;
  const before = await readGeneration(session, kind, t);

  const failed = async (phase: 'switch-generation' | 'activation' | 'boot-default' | 'verify', exitCode: number | null, stderr: string): Promise<RollbackResult> => ({
    outcome: 'failed',
    phase,
    exitCode,
    failedUnits: kind === 'nixos' && exitCode === 4,
    before,
    after: await readGeneration(session, kind, t),
    stderrTail: tail(stderr),
    durationMs: Date.now() - t0,
  });

  if (kind === 'home-manager') {
    if (before.storePath === storePath && before.currentSystem === storePath) {
      return { outcome: 'already-at-recorded', before, after: before, durationMs: Date.now() - t0 };
    }
    const check = await session.exec(`test -x ${shellQuote(storePath)}/activate`, { timeoutMs: t.readTimeoutMs });
    if (check.code !== 0) throw new RollbackTargetMissingError(session.label, `${storePath}/activate is not on the host (garbage-collected?)`);
    const hmLock = hmActivationLock(before.profile);
    const r = await execActivation(session, locked(command('hmActivate', { storePath }), hmLock), hmLock, t.activateTimeoutMs, t.signal);
    if (r.code !== 0) return failed('activation', r.code, r.stderr);
    const after = await readGeneration(session, kind, t);
    if (after.storePath !== storePath || after.currentSystem !== storePath) return failed('verify', 0, r.stderr);
    return { outcome: 'rolled-back', before, after, durationMs: Date.now() - t0 };
  }

  // NixOS. The recorded generation's link, if it still exists, must point at the recorded store path
  // (else the record does not describe this host: refuse). If garbage collection removed the link,
  // the recorded store path (pinned at record time) becomes a new generation (`nix-env --set`).
  const genLink = `${before.profile}-${number}-link`;
  validateAbsolutePath(genLink, 'genLink');
  const link = await session.exec(`readlink ${shellQuote(genLink)}`, { timeoutMs: t.readTimeoutMs });
  const linkTarget = link.stdout.trim();
  const linkGone = link.code !== 0;
  if (!linkGone && linkTarget !== storePath) {
    throw new RollbackTargetMissingError(session.label, `generation ${number} now points to ${linkTarget}, not the recorded ${storePath}`);
  }
  if (linkGone) {
    const present = await session.exec(`test -x ${shellQuote(storePath)}/bin/switch-to-configuration`, { timeoutMs: t.readTimeoutMs });
    if (present.code !== 0) {
      throw new RollbackTargetMissingError(session.label, `generation ${number} no longer exists (${genLink}) and its store path ${storePath} is not on the host (garbage-collected?)`);
    }
  }
  // The profile is on the recorded generation: that number (link intact) or its store path (link gone).
  const profileOnRecorded = (g: HostGeneration): boolean => g.storePath === storePath && (linkGone || g.number === number);
  const activator = linkGone ? storePath : genLink;
  // The boot default follows the profile's current generation when `switch-to-configuration switch|boot`
  // runs; a host activated with `test` (or whose activation failed after the boot loader was written)
  // can run the recorded generation while it boots another. "Rolled back" includes the boot default.
  const ensureBootDefault = async (): Promise<RollbackResult | null> => {
    const boot = await execActivation(session, locked(command('bootGeneration', { storePath, genLink: activator, generation: number })), ACTIVATION_LOCK, t.activateTimeoutMs, t.signal);
    return boot.code === 0 ? null : failed('boot-default', boot.code, boot.stderr);
  };
  if (profileOnRecorded(before) && before.currentSystem === storePath) {
    const bootFailed = await ensureBootDefault();
    if (bootFailed) return bootFailed;
    return { outcome: 'already-at-recorded', before, after: before, durationMs: Date.now() - t0 };
  }
  if (!profileOnRecorded(before)) {
    const sw = await session.exec(
      linkGone ? command('setGeneration', { profile: before.profile, storePath }) : command('switchGeneration', { profile: before.profile, generation: number }),
      { timeoutMs: t.activateTimeoutMs, signal: t.signal },
    );
    if (sw.code !== 0) return failed('switch-generation', sw.code, sw.stderr);
  }
  // Activate the recorded generation with `switch`: it also makes it the boot default (the profile is on it).
  const act = await execActivation(session, locked(command('activateGeneration', { genLink: activator, storePath, generation: number })), ACTIVATION_LOCK, t.activateTimeoutMs, t.signal);
  if (act.code !== 0) return failed('activation', act.code, act.stderr);
  const after = await readGeneration(session, kind, t);
  if (!profileOnRecorded(after) || after.currentSystem !== storePath) return failed('verify', 0, act.stderr);
  return { outcome: 'rolled-back', before, after, durationMs: Date.now() - t0 };
}

export type BuildResult =
  | { outcome: 'built'; target: string; durationMs: number }
  | { outcome: 'failed'; exitCode: number | null; /** The build outlived the fleet's build timeout and was stopped. */ timedOut: boolean; stderrTail: string; durationMs: number };

/**
 * Builds the host's system (or home) closure without touching its profile: the build-first phase of a
 * rollout, so that an evaluation or build error stops the deployment before any host switches.
 * Safe to run twice (a second build finds everything in the store).
 */
export async function buildTarget(session: HostSession, host: HostTarget, opts: SwitchOptions): Promise<BuildResult> {
  const t0 = Date.now();
  const t = timeouts(opts);
  const flakeRef = validateFlakeRef(opts.flakeRef, 'flakeRef');
  const attr = validateFlakeAttr(opts.attr ?? host.attr ?? host.name, 'attr');
  validateHostCommands(host.commands);
  const installable = installableFor(host.kind, flakeRef, attr);
  // Home Manager's build lock is beside its profile: where that is, the host says.
  const lock = host.kind === 'nixos' ? BUILD_LOCK : buildLock(host.kind, (await readGeneration(session, host.kind, t)).profile);
  const r = await runBuild(session, installable, lock, t);
  if ('timedOut' in r) return { outcome: 'failed', exitCode: null, timedOut: true, stderrTail: r.stderr, durationMs: Date.now() - t0 };
  if (r.code !== 0) return { outcome: 'failed', exitCode: r.code, timedOut: false, stderrTail: tail(r.stderr), durationMs: Date.now() - t0 };
  return { outcome: 'built', target: parseBuildJson(session.label, r.stdout), durationMs: Date.now() - t0 };
}

/** `systemctl --failed`: the units that failed on the host (empty when healthy). */
export async function failedUnits(session: HostSession, opts: TimeoutOptions = {}): Promise<string[]> {
  const r = await session.exec('systemctl --failed --no-legend --plain --no-pager', { timeoutMs: timeouts(opts).readTimeoutMs });
  if (r.code !== 0) throw new UnexpectedOutputError(session.label, 'systemctl --failed', r.stderr || r.stdout);
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((u) => u.length > 0 && u !== '●');
}

/**
 * A health-check command on the host: healthy when it exits 0. The template has no placeholders
 * (validated like every template); it runs as given.
 */
export async function runCheckCommand(session: HostSession, command: string, timeoutMs: number): Promise<{ healthy: boolean; exitCode: number | null; output: string }> {
  const cmd = renderTemplate(validateTemplate(command, [], 'healthChecks.command'), {}, [], 'healthChecks.command');
  const r = await session.exec(cmd, { timeoutMs });
  return { healthy: r.code === 0, exitCode: r.code, output: tail(`${r.stdout}${r.stderr}`, 1000) };
}

/**
 * The commands a switch of this host would run, in order, as the host would receive them (for a dry
 * run; values quoted exactly as they would be). `<target>` stands for the store path the build yields.
 */
export function planSwitchCommands(host: HostTarget, flakeRef: string, readProfile?: string): string[] {
  const profile = host.kind === 'nixos' ? (readProfile ?? NIXOS_SYSTEM_PROFILE) : readProfile;
  const ref = validateFlakeRef(flakeRef, 'flakeRef');
  const attr = validateFlakeAttr(host.attr ?? host.name, 'attr');
  validateHostCommands(host.commands);
  const cmds = host.commands ?? {};
  const target = '/nix/store/00000000000000000000000000000000-target';
  const shown = (s: string): string => s.split(target).join('<target>');
  const build = holding(command('build', { installable: installableFor(host.kind, ref, attr) }), profile !== undefined ? buildLock(host.kind, profile) : '<home-manager profiles>/nixfleet-build.lock');
  if (cmds.switch !== undefined || host.kind === 'home-manager') {
    const sw = renderTemplate(cmds.switch ?? DEFAULTS.hmSwitch, { flake: `${ref}#${attr}`, flakeRef: ref, attr, storePath: target }, PLACEHOLDERS.switch, 'commands.switch');
    // Home Manager's own switch runs under its profile's lock (where the profile is, the host says).
    const hmLocked = host.kind === 'home-manager' && cmds.switch === undefined;
    const shownLock = profile !== undefined ? hmActivationLock(profile) : '<home-manager profiles>/nixfleet-activation.lock';
    return [build, shown(hmLocked ? locked(sw, shownLock) : sw)];
  }
  if (profile === undefined) throw new InvalidInputError('profile', 'a profile');
  return [
    build,
    shown(command('setProfile', { profile, storePath: target })),
    shown(locked(command('activate', { storePath: target, profile }))),
  ];
}
