/**
 * The host side of durable reboots (NixOS only). Each command is one the host's allowlist
 * (deploy/nixfleet-allowlist.sh) admits exactly: a fixed script with one single-quoted, validated
 * store path or boot id. Every operation is safe to run twice:
 *
 * - readBootState: the boot id (/proc/sys/kernel/random/boot_id, new at every boot), what booted and
 *   what is active (/run/booted-system, /run/current-system), and the kernel, initrd and kernel modules
 *   of the booted system and of a target toplevel (readlink -e; empty when absent). Reads only.
 * - bootInto: the profile moves to the target (`nix-env -p P --set T`, only if it is elsewhere), then
 *   `T/bin/switch-to-configuration boot` (the boot default; nothing is activated now), under the host's
 *   activation lock. Run twice: the profile does not move again, the boot entry is written again.
 * - bootRecorded: the way back before a reboot: the profile to the recorded generation N
 *   (`--switch-generation N`, only if elsewhere; `--set S` when the link was collected), then the
 *   generation's `switch-to-configuration boot`.
 * - requestReboot: `systemctl reboot`, only while the boot id is still the one read before: a retry
 *   after the host rebooted does not reboot it again ('already-rebooted').
 */
import type { Generation } from '../domain/deployment';
import type { BootParts } from '../domain/reboot';
import { ACTIVATION_LOCK, HostBusyError, InvalidInputError, LOCK_BUSY_EXIT, UnexpectedOutputError } from './errors';
import { NIXOS_SYSTEM_PROFILE, readGeneration, type HostGeneration, type TimeoutOptions } from './operations';
import type { HostSession } from './session';
import { shellQuote, validateGeneration, validateStorePath } from './shell';

const BOOT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function validateBootId(value: unknown, field = 'bootId'): string {
  if (typeof value !== 'string' || !BOOT_ID.test(value)) throw new InvalidInputError(field, 'a boot id (a lowercase UUID, as /proc/sys/kernel/random/boot_id prints it)');
  return value;
}

export interface BootState {
  bootId: string;
  /** readlink -e /run/booted-system (null: absent). */
  bootedSystem: string | null;
  /** readlink -e /run/current-system (null: absent). */
  currentSystem: string | null;
  /** The booted system's kernel, initrd, modules (null when /run/booted-system is absent). */
  booted: BootParts | null;
  /** The target's, when one was given. */
  target?: BootParts;
}

/** The read: boot id, then for each of booted, current and the target: the system and its three parts. */
export function readBootCommand(target: string): string {
  const t = shellQuote(validateStorePath(target, 'target'));
  return `b=$(cat /proc/sys/kernel/random/boot_id) || exit 1; printf '%s\\n' "$b"; for s in /run/booted-system /run/current-system ${t}; do printf '%s|' "$(readlink -e "$s")"; for p in kernel initrd kernel-modules; do printf '%s|' "$(readlink -e "$s/$p")"; done; printf '\\n'; done; true`;
}

const orNull = (s: string | undefined): string | null => (s ? s : null);

export function parseBootState(label: string, stdout: string): BootState & { target: BootParts } {
  const lines = stdout.split('\n');
  const bootId = lines[0] ?? '';
  const rows = lines.slice(1, 4).map((l) => l.split('|'));
  if (!BOOT_ID.test(bootId) || rows.length !== 3 || rows.some((r) => r.length !== 5)) throw new UnexpectedOutputError(label, 'boot state', stdout);
  for (const r of rows) {
    for (const v of r.slice(0, 4)) {
      if (v !== '' && !/^\/nix\/store\/[0-9a-z]{32}-[^\s|]*$/.test(v)) throw new UnexpectedOutputError(label, 'boot state path', stdout);
    }
  }
  const parts = (r: string[]): BootParts => ({ kernel: orNull(r[1]), initrd: orNull(r[2]), kernelModules: orNull(r[3]) });
  const [booted, current, target] = rows as [string[], string[], string[]];
  return {
    bootId,
    bootedSystem: orNull(booted[0]),
    currentSystem: orNull(current[0]),
    booted: booted[0] ? parts(booted) : null,
    target: parts(target),
  };
}

export async function readBootState(session: HostSession, target: string, opts: TimeoutOptions = {}): Promise<BootState & { target: BootParts }> {
  const r = await session.run(readBootCommand(target), { timeoutMs: opts.readTimeoutMs ?? 30_000 });
  return parseBootState(session.label, r.stdout);
}

const lockedBoot = (toplevel: string): string => `{ flock -n 9 || exit ${LOCK_BUSY_EXIT}; exec ${shellQuote(toplevel)}/bin/switch-to-configuration boot; } 9>${ACTIVATION_LOCK}`;

async function boot(session: HostSession, toplevel: string, opts: TimeoutOptions): Promise<void> {
  const cmd = lockedBoot(toplevel);
  const r = await session.exec(cmd, { timeoutMs: opts.activateTimeoutMs ?? 10 * 60_000, ...(opts.signal ? { signal: opts.signal } : {}) });
  if (r.code === LOCK_BUSY_EXIT) throw new HostBusyError(session.label, cmd);
  if (r.code !== 0) throw new UnexpectedOutputError(session.label, `switch-to-configuration boot (exit ${r.code ?? 'signal'})`, r.stderr || r.stdout);
}

/** The target becomes the profile's current generation and the boot default; nothing is activated now. */
export async function bootInto(session: HostSession, target: string, opts: TimeoutOptions = {}): Promise<HostGeneration> {
  const t = validateStorePath(target, 'target');
  const before = await readGeneration(session, 'nixos', opts);
  if (before.storePath !== t) {
    const set = `nix-env -p ${shellQuote(NIXOS_SYSTEM_PROFILE)} --set ${shellQuote(t)}`;
    const r = await session.exec(set, { timeoutMs: opts.activateTimeoutMs ?? 10 * 60_000, ...(opts.signal ? { signal: opts.signal } : {}) });
    if (r.code !== 0) throw new UnexpectedOutputError(session.label, `nix-env --set (exit ${r.code ?? 'signal'})`, r.stderr || r.stdout);
  }
  await boot(session, t, opts);
  const after = await readGeneration(session, 'nixos', opts);
  if (after.storePath !== t) throw new UnexpectedOutputError(session.label, 'profile after nix-env --set', `${after.number} ${after.storePath}`);
  return after;
}

/** The recorded generation becomes the profile's current generation and the boot default again. */
export async function bootRecorded(session: HostSession, recorded: Generation, opts: TimeoutOptions = {}): Promise<HostGeneration> {
  const n = validateGeneration(recorded?.number, 'recorded.number');
  const s = validateStorePath(recorded?.storePath, 'recorded.storePath');
  const before = await readGeneration(session, 'nixos', opts);
  const link = `${NIXOS_SYSTEM_PROFILE}-${n}-link`;
  const l = await session.exec(`readlink ${shellQuote(link)}`, { timeoutMs: opts.readTimeoutMs ?? 30_000 });
  const linkIntact = l.code === 0 && l.stdout.trim() === s;
  if (!(before.storePath === s && (before.number === n || !linkIntact))) {
    const move = linkIntact ? `nix-env -p ${shellQuote(NIXOS_SYSTEM_PROFILE)} --switch-generation ${shellQuote(String(n))}` : `nix-env -p ${shellQuote(NIXOS_SYSTEM_PROFILE)} --set ${shellQuote(s)}`;
    const r = await session.exec(move, { timeoutMs: opts.activateTimeoutMs ?? 10 * 60_000, ...(opts.signal ? { signal: opts.signal } : {}) });
    if (r.code !== 0) throw new UnexpectedOutputError(session.label, `${move} (exit ${r.code ?? 'signal'})`, r.stderr || r.stdout);
  }
  await boot(session, linkIntact ? link : s, opts);
  return readGeneration(session, 'nixos', opts);
}

export function rebootCommand(bootId: string): string {
  return `[ "$(cat /proc/sys/kernel/random/boot_id)" = ${shellQuote(validateBootId(bootId))} ] || { echo already-rebooted; exit 0; }; exec systemctl reboot`;
}

/** Reboots the host unless it already rebooted since `bootId` was read. The connection may drop before the answer. */
export async function requestReboot(session: HostSession, bootId: string, opts: TimeoutOptions = {}): Promise<'requested' | 'already-rebooted'> {
  const cmd = rebootCommand(bootId);
  const r = await session.exec(cmd, { timeoutMs: opts.readTimeoutMs ?? 30_000 });
  if (r.code !== 0) throw new UnexpectedOutputError(session.label, `systemctl reboot (exit ${r.code ?? 'signal'})`, r.stderr || r.stdout);
  return r.stdout.trim() === 'already-rebooted' ? 'already-rebooted' : 'requested';
}
