/**
 * Durable reboots (pure; bundled into workflow code). NixOS activates a new kernel, initrd or kernel
 * modules only at the next boot: a switch that changes them leaves the host on a new userland over the
 * old kernel until it reboots. `/run/booted-system` says what actually booted.
 * Tested in tests/domain/reboot-offline.test.ts (unit and fast-check properties).
 */
import type { Generation, HostSpec } from './deployment';

/** `rollout.reboot` of the fleet file. `never` (the default) keeps today's switch without reboots. */
export type RebootPolicy = 'never' | 'when-needed' | 'always';
export const REBOOT_POLICIES: readonly RebootPolicy[] = ['never', 'when-needed', 'always'];

/** What boots with a system: its kernel, initrd and kernel modules, as resolved store paths (null: absent). */
export interface BootParts {
  kernel: string | null;
  initrd: string | null;
  kernelModules: string | null;
}

export type NeedsReboot =
  | { needed: false }
  /** `differs`: the parts that differ; `unknown`: the booted system's parts could not be read. */
  | { needed: true; differs: Array<keyof BootParts>; unknown: boolean };

const PARTS: Array<keyof BootParts> = ['kernel', 'initrd', 'kernelModules'];

/**
 * Whether switching to `next` needs a reboot to take effect, given what booted. A part the new system
 * has and the booted one lacks (or cannot be read) counts as differing: when in doubt, reboot. A part
 * neither has (a container, no initrd) does not.
 */
export function needsReboot(booted: BootParts | null, next: BootParts): NeedsReboot {
  if (booted === null) return { needed: true, differs: PARTS.filter((p) => next[p] !== null), unknown: true };
  const differs = PARTS.filter((p) => booted[p] !== next[p]);
  return differs.length === 0 ? { needed: false } : { needed: true, differs, unknown: false };
}

/** Whether this host reboots as part of its switch: the policy, the host's kind and what changed. */
export function shouldReboot(policy: RebootPolicy | undefined, kind: 'nixos' | 'home-manager', need: NeedsReboot | undefined): boolean {
  if (kind !== 'nixos' || policy === undefined || policy === 'never') return false;
  if (policy === 'always') return true;
  return need === undefined || need.needed;
}

/** What the host says after the wait for it to come back. */
export interface BootObservation {
  /** /proc/sys/kernel/random/boot_id: a new one per boot. */
  bootId: string;
  /** readlink -f /run/booted-system (null: absent). */
  bootedSystem: string | null;
  /** readlink -f /run/current-system (null: absent). */
  currentSystem: string | null;
}

export type RebootVerdict =
  /** A new boot, and it booted the expected system, which is active. */
  | { kind: 'booted-expected' }
  /** Still the boot before the reboot (the reboot has not happened yet, or was refused). */
  | { kind: 'not-rebooted' }
  /** A new boot of another system (the boot loader fell back, the default was not written). */
  | { kind: 'wrong-generation'; booted: string | null; current: string | null };

/**
 * What counts as rebooted correctly: the boot id changed (a reboot happened: a host that answered
 * before and after with the same id never went down), and both /run/booted-system and
 * /run/current-system are the expected system's store path.
 */
export function rebootVerdict(bootIdBefore: string, seen: BootObservation, expected: string): RebootVerdict {
  if (seen.bootId === bootIdBefore) return { kind: 'not-rebooted' };
  if (seen.bootedSystem === expected && seen.currentSystem === expected) return { kind: 'booted-expected' };
  return { kind: 'wrong-generation', booted: seen.bootedSystem, current: seen.currentSystem };
}

/** How long a rebooting host may take to come back, and how often it is probed (seconds). */
export const DEFAULT_REBOOT_TIMEOUT_SECONDS = 10 * 60;
export const MIN_PROBE_INTERVAL_SECONDS = 1;

/**
 * The next probe's delay while waiting for a host (seconds): starts at 1 s, doubles up to 30 s, and
 * never sleeps past the deadline. Null: the deadline has passed (no more probes).
 */
export function nextProbeDelayMs(attempt: number, remainingMs: number): number | null {
  if (remainingMs <= 0) return null;
  const base = Math.min(30_000, 1000 * 2 ** Math.max(0, Math.min(attempt, 10)));
  return Math.max(MIN_PROBE_INTERVAL_SECONDS * 1000, Math.min(base, remainingMs));
}

/** The activities of reboots and reachability (activities/reboot.ts); types only. */
export interface RebootActivities {
  /** Over a NEW connection with a short handshake limit: does the host answer? Never throws for an unreachable host. */
  probeHost(input: { deploymentId: string; host: HostSpec }): Promise<{ reachable: boolean; error?: string }>;
  /** Boot id, what booted and is active, and whether `target` needs a reboot (NixOS). */
  readBootState(input: { deploymentId: string; host: HostSpec; target: string }): Promise<BootObservation & { need: NeedsReboot }>;
  /** The target becomes the profile's generation and the boot default (`switch-to-configuration boot`). */
  bootHost(input: { deploymentId: string; host: HostSpec; target: string }): Promise<Generation>;
  /** The recorded generation becomes the profile's generation and the boot default again. */
  bootRecordedHost(input: { deploymentId: string; host: HostSpec; recorded: Generation }): Promise<Generation>;
  /** `systemctl reboot` unless the host rebooted since `bootId` (a dropped connection counts as requested). */
  rebootHost(input: { deploymentId: string; host: HostSpec; bootId: string }): Promise<'requested' | 'already-rebooted'>;
  /** One probe while a host reboots, over a NEW connection: unreachable, or what it booted. */
  probeBoot(input: { deploymentId: string; host: HostSpec; target: string }): Promise<{ reachable: false; error: string } | ({ reachable: true } & BootObservation)>;
}
