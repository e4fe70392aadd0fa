/**
 * One simulated host: its NixOS system profile or Home Manager profile generations, what is activated,
 * its boot default, failed units, GC roots, switch markers and self-rollback timers, all in memory,
 * and the interpreter of the commands the deployer sends over SSH.
 *
 * The command surface is exactly what deploy/nixfleet-allowlist.sh admits (the same patterns, ported
 * from its bash regular expressions, not from the product's command builders): anything else is
 * refused as the allowlist refuses it (exit 126, `nixfleet-allowlist: refused: …` on stderr). The
 * effects follow the real stand-in's tools (testkit/fleet/bin, README there) and so the real ones:
 * the profile moves before activation; `switch-to-configuration switch|boot` writes the boot default
 * from the PROFILE's current generation; exit 4 = failed units with the system on the new generation;
 * exit 2 = the activation script failed (/run/current-system is still updated); `nixos-rebuild`
 * turns every activation failure into exit 1 and its warning line; HM's `activate` makes a new
 * generation only when the profile points elsewhere, and generation links list in glob (text) order.
 */
import { createHash } from 'node:crypto';

export type SimHostKind = 'nixos' | 'home-manager';
export type SimActivationFault = 'units' | 'script' | false;
/** What goes wrong at the next reboot (SimHost.failNextBoot), as the stand-in's failNextBoot. */
export type SimBootFault = 'never-comes-back' | 'wrong-generation' | null;

export interface SimHostSpec {
  name: string;
  kind: SimHostKind;
  /** Seeded generation numbers; the last one is current. Default [40, 41, 42]. */
  generations?: number[];
}

export interface SimLatency {
  /** Every command (default 0). */
  commandMs?: number;
  /** `nix build` (and the build inside nixos-rebuild / home-manager switch), added to commandMs. */
  buildMs?: number;
  /** An activation (switch-to-configuration switch, HM activate), added to commandMs. */
  activationMs?: number;
}

export interface SimCommandLogEntry {
  atMs: number;
  /** The allowlist's verb (read-nixos, nix-build, nix-env-set, switch-to-configuration, …) or `deny`. */
  verb: string;
  command: string;
  exitCode: number | null;
}

/** What an exec answers. `drop`: the connection is cut while the command runs (no exit status). */
export interface SimExecResult {
  stdout: string;
  stderr: string;
  code: number | null;
  drop?: boolean;
}

/** Lets the transport tell a running command it was killed (fuser -k, the session closed). */
export interface SimExecContext {
  /** Resolves when the command should stop (the channel or connection closed). */
  readonly closed: Promise<void>;
}

// ---- the allowlist's patterns (deploy/nixfleet-allowlist.sh), as JS regular expressions ----
const STORE = '/nix/store/[0-9abcdfghijklmnpqrsvwxyz]{32}-[A-Za-z0-9+._?=-]{1,211}';
const SYSPROFILE = '/nix/var/nix/profiles/system';
const SYSPROFILE_RE = SYSPROFILE.replace(/\//g, '\\/');
const GENLINK = `${SYSPROFILE_RE}-[0-9]{1,10}-link`;
const REFCH = '[A-Za-z0-9:/._~?=&%+@,-]';
const ATTR = '[A-Za-z0-9_][A-Za-z0-9_@+.-]{0,127}';
const INSTALLABLE = `(${REFCH}{1,2048})#(?:nixosConfigurations\\."(${ATTR})"\\.config\\.system\\.build\\.toplevel|homeConfigurations\\."(${ATTR})"\\.activationPackage)`;
const FLAKE = `(${REFCH}{1,2048})#(${ATTR})`;
const ROOTNAME = '[A-Za-z0-9][A-Za-z0-9._-]{0,159}';
const GCBASE = '(?:/nix/var/nix/gcroots/nixfleet|/root/\\.local/state/nix/profiles/nixfleet-gcroots|/home/[A-Za-z0-9._-]{1,64}/\\.local/state/nix/profiles/nixfleet-gcroots|/nix/var/nix/profiles/per-user/[A-Za-z0-9._-]{1,64}/nixfleet-gcroots)';
const GCROOT = `${GCBASE}/${ROOTNAME}`;
const GCDIR = `${GCBASE}/switches`;
const UNIT = 'nixfleet-rollback-[A-Za-z0-9._-]{1,180}';
const HMPROFILE = '/[A-Za-z0-9._/-]{1,200}/home-manager';
/** Home Manager profiles' directories: a profile's activations take the lock beside it. */
const HMDIR = '(?:/root/\\.local/state/nix/profiles|/home/[A-Za-z0-9._-]{1,64}/\\.local/state/nix/profiles|/nix/var/nix/profiles/per-user/[A-Za-z0-9._-]{1,64})';
const LOCKED = (inner: string, lock: string): string => `\\{ flock -n 9 \\|\\| exit 75; exec ${inner}; \\} 9>${lock}`;
const HMLOCK = `'(${HMDIR}/nixfleet-activation\\.lock)'`;

const READ_NIXOS = `set -e; p='${SYSPROFILE}'; l=$(readlink "$p"); s=$(readlink -f "$p"); c=$(readlink -f /run/current-system || true); printf '%s\\n%s\\n%s\\n%s\\n' "$p" "$l" "$s" "$c"`;
const READ_HM =
  `set -e; st=\${XDG_STATE_HOME:-$HOME/.local/state}; if [ -d "$st/nix/profiles" ]; then p=$st/nix/profiles/home-manager; else p=/nix/var/nix/profiles/per-user/$USER/home-manager; fi; ` +
  `l=$(readlink "$p"); s=$(readlink -f "$p"); c=$(readlink -f "$st/home-manager/gcroots/current-home" || true); printf '%s\\n%s\\n%s\\n%s\\n' "$p" "$l" "$s" "$c"`;
const LOCK = '/run/nixfleet-activation.lock';
/** From `systemctl reboot` returning to the host going down (the stand-in's watcher polls every 50 ms). */
const REBOOT_AFTER_MS = 50;
const STOP_ACTIVATION = `fuser -k -KILL ${LOCK}`;
const BUILD_LOCK = '/run/nixfleet-build.lock';
const STOP_BUILD = `fuser -k -KILL ${BUILD_LOCK}`;
const SYSTEMCTL_FAILED = 'systemctl --failed --no-legend --plain --no-pager';

const re = (s: string): RegExp => new RegExp(`^${s}$`);
const P = {
  nixBuild: re(`\\{ exec nix build --no-link --json '${INSTALLABLE}'; \\} 9>(/run/nixfleet-build\\.lock|'${HMDIR}/nixfleet-build\\.lock')`),
  stopBuildHm: re(`fuser -k -KILL '(${HMDIR}/nixfleet-build\\.lock)'`),
  envSet: re(`nix-env -p '(${SYSPROFILE_RE})' --set '(${STORE})'`),
  envSwitch: re(`nix-env -p '(${SYSPROFILE_RE})' --switch-generation '([0-9]{1,10})'`),
  lockedSwitch: re(LOCKED(`'(${STORE}|${GENLINK})'/bin/switch-to-configuration (switch|boot)`, '/run/nixfleet-activation\\.lock')),
  stopHm: re(`fuser -k -KILL ${HMLOCK}`),
  testToplevel: re(`test -x '(${STORE})'/bin/switch-to-configuration`),
  addRoot: re(`nix-store --add-root '(${GCROOT})' -r '(${STORE})'`),
  rmRoot: re(`rm -f '(${GCROOT})'`),
  markWrite: re(`mkdir -p '(${GCDIR})' && touch '(${GCDIR})/(${ROOTNAME})'`),
  markTest: re(`test -e '(${GCDIR})/(${ROOTNAME})'`),
  markRm: re(`rm -f '(${GCDIR})/(${ROOTNAME})'`),
  hmActivate: re(LOCKED(`'(${STORE})'/activate`, HMLOCK)),
  hmSwitch: re(LOCKED(`home-manager switch --flake '${FLAKE}'`, HMLOCK)),
  sweep: re(`find '(${GCBASE})' -mindepth 1 -maxdepth 2 ! -type d -mmin \\+([0-9]{2,8}) ! -name '(${ROOTNAME})-\\*' -print -delete`),
  diffClosures: re(`nix store diff-closures '(${STORE})' '(${STORE})'`),
  closureSize: re(`nix path-info --json -S '(${STORE})' '(${STORE})'`),
  testActivate: re(`test -x '(${STORE})'/activate`),
  readlink: re(`readlink '(${GENLINK})'`),
  readlinkRoot: re(`readlink '(${GCROOT})'`),
  toolSwitch: re(`nixos-rebuild switch --flake '${FLAKE}'`),
  listGens: re(`for l in '(${SYSPROFILE_RE}|${HMPROFILE})'-\\*-link; do \\[ -L "\\$l" \\] && printf '%s %s\\\\n' "\\$l" "\\$\\(readlink -f "\\$l"\\)"; done; true`),
  stopTimer: re(`systemctl stop '(${UNIT})\\.timer'`),
  isActive: re(`systemctl is-active '(${UNIT})\\.service'`),
  confirmed: new RegExp(`^systemd-run --unit='(${UNIT})-activate'`),
  reboot: re(`\\[ "\\$\\(cat /proc/sys/kernel/random/boot_id\\)" = '([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})' \\] \\|\\| \\{ echo already-rebooted; exit 0; \\}; exec systemctl reboot`),
  readBoot: new RegExp(`^b=\\$\\(cat /proc/sys/kernel/random/boot_id\\) .*/run/current-system '(${STORE})';`),
};

/** The boot state read (src/hosts/reboot.ts), rebuilt from its one value as the allowlist does and compared byte for byte. */
const readBootExpected = (t: string): string =>
  `b=$(cat /proc/sys/kernel/random/boot_id) || exit 1; printf '%s\\n' "$b"; for s in /run/booted-system /run/current-system ${q(t)}; do printf '%s|' "$(readlink -e "$s")"; for p in kernel initrd kernel-modules; do printf '%s|' "$(readlink -e "$s/$p")"; done; printf '\\n'; done; true`;

/** POSIX single-quoting, as the allowlist's q() (and the deployer) quote. */
function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

const B32 = '0123456789abcdfghijklmnpqrsvwxyz';
function nixHash(text: string): string {
  const d = createHash('sha256').update(text).digest();
  let out = '';
  for (let i = 0; i < 32; i++) out += B32[(d[i] as number) % 32];
  return out;
}

interface StoreObject {
  kind: SimHostKind;
  /** Seeded (the host had it before the simulation started): faults never apply to it. */
  seeded: boolean;
}

/** Whatever holds a lock or runs an activation: killed by `fuser -k -KILL LOCK` (or the fleet stopping). */
interface Holder {
  kill: () => void;
  killed: Promise<void>;
}
function newHolder(): Holder {
  let kill!: () => void;
  const killed = new Promise<void>((resolve) => (kill = resolve));
  return { kill, killed };
}

const dirname = (p: string): string => p.slice(0, p.lastIndexOf('/'));

interface Timer {
  state: 'waiting' | 'elapsed';
  handle?: NodeJS.Timeout;
}

export interface SimFlake {
  /** The attributes the fleet flake provides, per kind. */
  nixos: ReadonlySet<string>;
  'home-manager': ReadonlySet<string>;
  /**
   * What a flake reference resolves to (the closure's identity), or null when it cannot be fetched.
   * Default: its `rev=` parameter (a pinned revision), else null (unpinned refs fail, as offline).
   */
  resolve(ref: string): string | null;
}

export class SimHost {
  readonly name: string;
  readonly kind: SimHostKind;
  readonly user = 'root';
  /** Generation number → store path of the host's profile (system or Home Manager). */
  private readonly gens = new Map<number, string>();
  private current: number;
  /** /run/current-system (NixOS) or HM's gcroots/current-home. */
  private active: string | null;
  private bootDefaultGen: { number: number; storePath: string } | null = null;
  /** /run/booted-system (NixOS): what the host booted (the boot default at its last reboot). */
  private booted: string | null;
  /** Boots so far: the boot id is new at each. */
  private boots = 0;
  /** Reboots done (systemctl reboot), as the stand-in counts them. */
  reboots = 0;
  private readonly store = new Map<string, StoreObject>();
  private readonly roots = new Map<string, string>();
  private readonly markers = new Set<string>();
  private readonly failed = new Set<string>();
  private readonly timers = new Map<string, Timer>();
  private readonly runningServices = new Set<string>();
  /** Activation locks held (lock file → its holder): flock -n on a held one fails (exit 75). */
  private readonly locks = new Map<string, Holder>();
  private readonly buildHolders = new Map<string, Set<Holder>>();
  private readonly lockWaiters = new Map<string, Array<() => void>>();
  /** Activations in progress, locked or not (nixos-rebuild's own is not under the deployer's lock). */
  private readonly activating = new Set<Holder>();
  /** Directories that exist under the deployer's GC root directories (mkdir -p, nix-store --add-root). */
  private readonly dirs = new Set<string>();
  /** mtime (host clock, ms) of each GC root and switch marker, by path. */
  private readonly mtimes = new Map<string, number>();
  /** The host clock's offset from this process's (advanceClock). */
  private clockOffsetMs = 0;
  private readonly log: SimCommandLogEntry[] = [];
  /** Activations started, whatever command started them (as the real stand-in's tools log them). */
  private readonly activationLog: Array<{ atMs: number; storePath: string }> = [];

  // faults and latency (set by the test)
  latency: SimLatency = {};
  private activationFault: SimActivationFault = false;
  private switchExitCode: number | null = null;
  private buildFails = false;
  private systemctlFails = false;
  private dropOn: 'activation' | 'build' | null = null;
  private nextBootFault: SimBootFault = null;
  /** How long a rebooting host stays down (nothing listens: ECONNREFUSED) before it boots (ms), as the stand-in's. */
  rebootDownMs = 1500;
  /** The reboot in progress (from `systemctl reboot` until it booted, or stayed down for good). */
  private cycle: Promise<void> | null = null;
  private poweredOn = true;
  private stopped = false;
  private power: { down(): Promise<void>; up(): Promise<void> } | undefined;
  /** Health-check commands the host's owner vetted (the allowlist's allowed-checks file), with their exit codes. */
  readonly allowedChecks = new Map<string, number>();

  constructor(
    spec: SimHostSpec,
    private readonly flake: SimFlake,
  ) {
    this.name = spec.name;
    this.kind = spec.kind;
    const gens = spec.generations ?? [40, 41, 42];
    for (const n of gens) {
      const sp = this.seedPath(n);
      this.gens.set(n, sp);
      this.store.set(sp, { kind: this.kind, seeded: true });
    }
    this.current = gens[gens.length - 1] as number;
    this.active = this.gens.get(this.current) as string;
    if (this.kind === 'nixos') this.bootDefaultGen = { number: this.current, storePath: this.active };
    this.booted = this.kind === 'nixos' ? this.active : null;
  }

  private seedPath(n: number): string {
    return this.kind === 'nixos' ? `/nix/store/${nixHash(`seed:${this.name}:${n}`)}-nixos-system-${this.name}-seed-${n}` : `/nix/store/${nixHash(`seed:${this.name}:${n}`)}-home-manager-generation`;
  }

  /** The profile's path as the host reports it. */
  get profile(): string {
    return this.kind === 'nixos' ? SYSPROFILE : '/root/.local/state/nix/profiles/home-manager';
  }

  // ---- what a test reads (as StandinHost offers it) ----

  profileGeneration(): { number: number; storePath: string } {
    return { number: this.current, storePath: this.gens.get(this.current) as string };
  }

  generations(): Array<{ number: number; storePath: string; current: boolean }> {
    return [...this.gens.entries()].sort((a, b) => a[0] - b[0]).map(([number, storePath]) => ({ number, storePath, current: number === this.current }));
  }

  currentSystem(): string | null {
    return this.active;
  }

  bootDefault(): { number: number; storePath: string } | null {
    return this.bootDefaultGen ? { ...this.bootDefaultGen } : null;
  }

  failedUnits(): string[] {
    return [...this.failed];
  }

  gcRoots(): Map<string, string> {
    return new Map(this.roots);
  }

  /** Switch markers present, by path. */
  switchMarkers(): string[] {
    return [...this.markers].sort();
  }

  /** The host's clock (ms since the epoch): what roots' and markers' mtimes and the sweep's -mmin use. */
  now(): number {
    return Date.now() + this.clockOffsetMs;
  }

  /** Moves the host's clock forward (or back): entries age without waiting. */
  advanceClock(ms: number): void {
    this.clockOffsetMs += ms;
  }

  /** Sets a GC root's or switch marker's mtime to `seconds` ago by the host clock (as `touch -h -d`). */
  ageEntry(path: string, seconds: number): void {
    if (!this.mtimes.has(path)) throw new Error(`${this.name}: no GC root or switch marker ${path}`);
    this.mtimes.set(path, this.now() - seconds * 1000);
  }

  commandLog(): SimCommandLogEntry[] {
    return [...this.log];
  }

  /** Activations that started (switch-to-configuration switch, HM activate), as the host logged them. */
  activations(): Array<{ atMs: number; storePath: string }> {
    return [...this.activationLog];
  }

  // ---- faults ----

  /** 'units': NixOS exit 4 (on the new generation, a unit failed); 'script': exit 2. HM: exit 1 (script: before the profile moves; units: after). Only store paths the host did not have at start. */
  failActivation(fault: SimActivationFault): void {
    this.activationFault = fault;
  }

  /** NixOS: any other exit code of switch-to-configuration for new store paths (1: nothing activated, else activated); null clears. */
  switchExit(code: number | null): void {
    this.switchExitCode = code;
  }

  failBuild(on: boolean): void {
    this.buildFails = on;
  }

  failSystemctl(on: boolean): void {
    this.systemctlFails = on;
  }

  /** The next command of that kind cuts the connection when it starts (no exit status): once. */
  dropConnectionOn(what: 'activation' | 'build' | null): void {
    this.dropOn = what;
  }

  // ---- the interpreter ----

  private delay(extra: number | undefined, ctx: SimExecContext): Promise<boolean> {
    const ms = (this.latency.commandMs ?? 0) + (extra ?? 0);
    if (ms <= 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(true), ms);
      void ctx.closed.then(() => {
        clearTimeout(t);
        resolve(false);
      });
    });
  }

  private record(verb: string, command: string, r: SimExecResult): SimExecResult {
    this.log.push({ atMs: Date.now(), verb, command: command.slice(0, 4096), exitCode: r.code });
    return r;
  }

  private refuse(command: string): SimExecResult {
    return this.record('deny', command, { stdout: '', stderr: `nixfleet-allowlist: refused: ${command.slice(0, 300)}\n`, code: 126 });
  }

  /** Runs one command line as the host (after the allowlist). */
  async exec(command: string, ctx: SimExecContext): Promise<SimExecResult> {
    const ok = await this.delay(0, ctx);
    if (!ok) return { stdout: '', stderr: '', code: null };
    const [verb, run] = this.match(command);
    if (!verb || !run) return this.refuse(command);
    const r = await run(ctx);
    return this.record(verb, command, r);
  }

  private match(cmd: string): [string, (ctx: SimExecContext) => Promise<SimExecResult> | SimExecResult] | [] {
    if (cmd.length === 0 || /[\n\r]/.test(cmd)) return [];
    if (cmd === READ_NIXOS) return ['read-nixos', () => this.readProfile('nixos')];
    if (cmd === READ_HM) return ['read-home-manager', () => this.readProfile('home-manager')];
    let m: RegExpExecArray | null;
    if ((m = P.reboot.exec(cmd))) {
      const id = m[1] as string;
      return this.kind === 'nixos' ? ['reboot', () => this.reboot(id)] : [];
    }
    if ((m = P.readBoot.exec(cmd))) {
      const t = m[1] as string;
      return cmd === readBootExpected(t) ? ['read-boot', () => this.readBoot(t)] : [];
    }
    if ((m = P.nixBuild.exec(cmd))) {
      const [, ref, nixosAttr, hmAttr, lockWord] = m;
      const lock = (lockWord as string).replace(/^'|'$/g, '');
      if (lock.includes('/../') || lock.includes('/./')) return [];
      return ['nix-build', () => this.build(ref as string, nixosAttr ? 'nixos' : 'home-manager', (nixosAttr ?? hmAttr) as string, lock)];
    }
    if (cmd === STOP_BUILD) return ['stop-build', () => this.stopBuild(BUILD_LOCK)];
    if ((m = P.stopBuildHm.exec(cmd))) {
      const l = m[1] as string;
      if (l.includes('/../') || l.includes('/./')) return [];
      return ['stop-build', () => this.stopBuild(l)];
    }
    if ((m = P.envSet.exec(cmd))) return ['nix-env-set', () => this.envSet(m?.[2] as string)];
    if ((m = P.envSwitch.exec(cmd))) return ['nix-env-switch-generation', () => this.envSwitch(Number(m?.[2]))];
    if ((m = P.diffClosures.exec(cmd))) return ['nix-diff-closures', () => this.diffClosures(m?.[1] as string, m?.[2] as string)];
    if ((m = P.closureSize.exec(cmd))) return ['nix-closure-size', () => this.closureSize(m?.[1] as string, m?.[2] as string)];
    if (cmd === STOP_ACTIVATION) return ['stop-activation', () => this.stopActivation(LOCK)];
    if ((m = P.stopHm.exec(cmd))) {
      const l = m[1] as string;
      if (l.includes('/../') || l.includes('/./')) return [];
      return ['stop-activation', () => this.stopActivation(l)];
    }
    if ((m = P.lockedSwitch.exec(cmd))) {
      const [, t, action] = m;
      return [action === 'boot' ? 'switch-to-configuration-boot' : 'switch-to-configuration', (ctx) => this.locked(LOCK, (h) => this.switchToConfiguration(t as string, action as 'switch' | 'boot', ctx, h))];
    }
    if ((m = P.testToplevel.exec(cmd))) return ['test-toplevel', () => this.exit(this.store.get(m?.[1] as string)?.kind === 'nixos' ? 0 : 1)];
    if ((m = P.addRoot.exec(cmd))) return ['gc-root-add', () => this.addRoot(m?.[1] as string, m?.[2] as string)];
    if ((m = P.rmRoot.exec(cmd))) {
      const r = m[1] as string;
      return ['gc-root-remove', () => (r.includes('/../') || r.includes('/./') ? this.refuse(cmd) : (this.roots.delete(r), this.mtimes.delete(r), this.exit(0)))];
    }
    if ((m = P.markWrite.exec(cmd))) {
      const [, d, d2, n] = m;
      if (d !== d2 || n === '.' || n === '..') return [];
      return ['switch-marker-write', () => this.writeMarker(d as string, `${d}/${n}`)];
    }
    if ((m = P.markTest.exec(cmd))) {
      const [, d, n] = m;
      if (n === '.' || n === '..') return [];
      return ['switch-marker-test', () => this.exit(this.markers.has(`${d}/${n}`) ? 0 : 1)];
    }
    if ((m = P.markRm.exec(cmd))) {
      const [, d, n] = m;
      if (n === '.' || n === '..') return [];
      return ['switch-marker-remove', () => (this.markers.delete(`${d}/${n}`), this.mtimes.delete(`${d}/${n}`), this.exit(0))];
    }
    if ((m = P.sweep.exec(cmd))) {
      const [, d, minutes, keep] = m;
      const k = `${d}/${keep}`;
      if (Number(minutes) < 60 || k.includes('/../') || k.includes('/./') || k.endsWith('..')) return [];
      return ['gc-sweep', () => this.sweep(d as string, Number(minutes), keep as string)];
    }
    if ((m = P.hmActivate.exec(cmd))) {
      const [, sp, l] = m;
      if ((l as string).includes('/../') || (l as string).includes('/./')) return [];
      return ['hm-activate', (ctx) => this.locked(l as string, (h) => this.hmActivate(sp as string, ctx, h))];
    }
    if ((m = P.hmSwitch.exec(cmd))) {
      const [, ref, attr, l] = m;
      if ((l as string).includes('/../') || (l as string).includes('/./')) return [];
      return ['home-manager-switch', (ctx) => this.locked(l as string, (h) => this.homeManagerSwitch(ref as string, attr as string, ctx, h))];
    }
    if ((m = P.testActivate.exec(cmd))) return ['test-activate', () => this.exit(this.store.get(m?.[1] as string)?.kind === 'home-manager' ? 0 : 1)];
    if ((m = P.readlink.exec(cmd))) return ['readlink', () => this.readGenLink(m?.[1] as string)];
    if ((m = P.readlinkRoot.exec(cmd))) {
      const root = m[1] as string;
      if (root.includes('/../') || root.includes('/./')) return [];
      return ['readlink-gc-root', () => (this.roots.has(root) ? this.exit(0, `${this.roots.get(root)}\n`) : this.exit(1))];
    }
    if ((m = P.toolSwitch.exec(cmd))) {
      const [, ref, attr] = m;
      return ['nixos-rebuild-switch', (ctx) => this.nixosRebuild(ref as string, attr as string, ctx)];
    }
    if (cmd === SYSTEMCTL_FAILED) return ['systemctl-failed', () => this.systemctlFailed()];
    if ((m = P.listGens.exec(cmd))) return ['list-generations', () => this.listGenerations(m?.[1] as string)];
    if ((m = P.stopTimer.exec(cmd))) return ['systemctl-stop-timer', () => this.stopTimer(m?.[1] as string)];
    if ((m = P.isActive.exec(cmd))) {
      const u = m[1] as string;
      return ['systemctl-is-active', () => (this.runningServices.has(u) ? { stdout: 'active\n', stderr: '', code: 0 } : { stdout: 'inactive\n', stderr: '', code: 3 })];
    }
    if ((m = P.confirmed.exec(cmd))) {
      const parts = this.confirmedParts(cmd, m[1] as string);
      if (!parts) return [];
      return ['confirmed-activation', (ctx) => this.confirmedActivation(parts, ctx)];
    }
    if (this.allowedChecks.has(cmd)) return ['health-check', () => this.exit(this.allowedChecks.get(cmd) as number)];
    return [];
  }

  /**
   * The boot state: the boot id, what booted (at the host's last boot) and what is active, each with its kernel, initrd and modules. Its
   * closures all share one kernel (its updates never change the kernel): no reboot is needed.
   */
  private readBoot(target: string): SimExecResult {
    const parts = (sys: string | null): string => {
      if (sys === null || this.store.get(sys)?.kind !== 'nixos') return `${sys !== null && this.store.has(sys) ? sys : ''}||||`;
      const k = (what: string): string => `/nix/store/${nixHash(`${what}:${this.name}`)}-${what}`;
      return `${sys}|${k('linux')}|${k('initrd')}|${k('kernel-modules')}|`;
    };
    return this.exit(0, `${this.bootId()}\n${parts(this.booted)}\n${parts(this.kind === 'nixos' ? this.active : null)}\n${parts(target)}\n`);
  }

  /** /proc/sys/kernel/random/boot_id: new at every boot. */
  bootId(): string {
    const id = nixHash(`boot:${this.name}:${this.boots}`).replace(/[^0-9a-f]/g, '0');
    return `${id.slice(0, 8)}-${id.slice(8, 12)}-${id.slice(12, 16)}-${id.slice(16, 20)}-${id.slice(20, 32)}`;
  }

  /** What /run/booted-system points at (NixOS; null: Home Manager). */
  bootedSystem(): string | null {
    return this.booted;
  }

  /**
   * `systemctl reboot`, only while the boot id is still the one the deployer read (else
   * `already-rebooted`, exit 0), as the allowlist runs it. systemd queues the reboot and returns; a
   * moment later the host goes down as the stand-in's does (testkit/fleet: its namespace is killed):
   * every activation, build and lock holder dies, the self-rollback timers are gone, its endpoint
   * stops listening and cuts its connections (ECONNREFUSED) for `rebootDownMs`, then it boots its
   * boot default (what `switch-to-configuration boot|switch` wrote): a new boot id, /run/booted-system
   * and /run/current-system both the default, and listens again. Unless `failNextBoot` said otherwise.
   */
  private reboot(bootId: string): SimExecResult {
    if (bootId !== this.bootId()) return this.exit(0, 'already-rebooted\n');
    if (!this.cycle) {
      // The reply goes out first (the stand-in goes down when its watcher sees the request, within 50 ms).
      this.cycle = new Promise<void>((r) => setTimeout(r, REBOOT_AFTER_MS).unref())
        .then(() => this.powerCycle())
        .finally(() => {
          this.cycle = null;
        });
    }
    return this.exit(0);
  }

  /** A reboot: down at once (connections cut), unreachable for rebootDownMs, then it boots (or not: failNextBoot). */
  private async powerCycle(): Promise<void> {
    if (this.stopped) return;
    const previouslyBooted = this.booted;
    this.powerOff();
    this.reboots += 1;
    await this.power?.down();
    await new Promise<void>((r) => setTimeout(r, this.rebootDownMs).unref());
    const fault = this.nextBootFault;
    this.nextBootFault = null;
    if (this.stopped || fault === 'never-comes-back') return;
    await this.restart(fault === 'wrong-generation' && previouslyBooted ? { system: previouslyBooted } : {});
  }

  /** Everything running on the host dies at once (a power cut): activations, builds, lock holders, timers. */
  private powerOff(): void {
    this.poweredOn = false;
    for (const t of this.timers.values()) if (t.handle) clearTimeout(t.handle);
    this.timers.clear();
    this.runningServices.clear();
    for (const h of [...this.activating]) h.kill();
    for (const h of [...this.locks.values()]) h.kill();
    for (const hs of this.buildHolders.values()) for (const h of [...hs]) h.kill();
  }

  /**
   * Hard reboot, as the stand-in's restart(): whatever runs dies, then the host boots its boot default
   * (or `opts.system`: a boot of another entry) and its endpoint listens again. Also brings back a
   * host that never came back from its reboot.
   */
  async restart(opts: { system?: string } = {}): Promise<void> {
    if (this.poweredOn) {
      this.powerOff();
      await this.power?.down();
    }
    this.boots += 1;
    if (this.kind === 'nixos') {
      const next = opts.system ?? this.bootDefaultGen?.storePath ?? this.active;
      this.booted = next;
      this.active = next;
    }
    this.poweredOn = true;
    if (!this.stopped) await this.power?.up();
  }

  /** Resolves once the reboot in progress (if any) has ended: the host booted, or stays down for good (never-comes-back). */
  async rebootSettled(): Promise<void> {
    await this.cycle;
  }

  /** Whether the host is up (false from a reboot until it has booted again, or for good: never-comes-back). */
  get running(): boolean {
    return this.poweredOn;
  }

  /**
   * The next reboot (`systemctl reboot` on the host) goes wrong, as the stand-in's failNextBoot:
   * `never-comes-back` (the host stays down until the test calls restart()), or `wrong-generation` (it
   * boots the system that booted before instead of the boot default, as a boot loader that fell back
   * to the previous entry). Once.
   */
  failNextBoot(fault: SimBootFault): void {
    this.nextBootFault = fault;
  }

  /** @internal The endpoint's listener, which a reboot takes down and brings back (testkit/simfleet/fleet.ts). */
  attachPower(power: { down(): Promise<void>; up(): Promise<void> }): void {
    this.power = power;
  }

  private exit(code: number, stdout = '', stderr = ''): SimExecResult {
    return { stdout, stderr, code };
  }

  private readProfile(kind: SimHostKind): SimExecResult {
    // The other kind's profile does not exist on this host: readlink fails under `set -e`.
    if (kind !== this.kind) return this.exit(1);
    const link = this.kind === 'nixos' ? `system-${this.current}-link` : `home-manager-${this.current}-link`;
    return this.exit(0, `${this.profile}\n${link}\n${this.gens.get(this.current)}\n${this.active ?? ''}\n`);
  }

  /**
   * A build holding its lock file open (`{ exec nix build …; } 9>LOCK`): as on a real host behind the
   * allowlist, a closed channel does not stop it (sshd does not signal a forced command); only
   * `fuser -k -KILL LOCK` (stopBuild) does.
   */
  private async build(ref: string, kind: SimHostKind, attr: string, lock: string): Promise<SimExecResult> {
    if (this.dropOn === 'build') {
      this.dropOn = null;
      return { stdout: '', stderr: '', code: null, drop: true };
    }
    const h = newHolder();
    const holders = this.buildHolders.get(lock) ?? new Set<Holder>();
    this.buildHolders.set(lock, holders.add(h));
    try {
      const ms = (this.latency.commandMs ?? 0) + (this.latency.buildMs ?? 0);
      if (ms > 0) {
        let t: NodeJS.Timeout | undefined;
        const finished = await Promise.race([new Promise<boolean>((resolve) => (t = setTimeout(() => resolve(true), ms))), h.killed.then(() => false)]);
        clearTimeout(t);
        if (!finished) return { stdout: '', stderr: '', code: null };
      }
    } finally {
      holders.delete(h);
      if (holders.size === 0) this.buildHolders.delete(lock);
    }
    if (this.buildFails) return this.exit(1, '', "error: builder for '/nix/store/00000000000000000000000000000000-standin-failed.drv' failed with exit code 1;\n");
    const identity = this.flake.resolve(ref);
    if (identity === null) return this.exit(1, '', `error: unable to fetch '${ref}'\n`);
    const section = kind === 'nixos' ? 'nixosConfigurations' : 'homeConfigurations';
    if (!this.flake[kind].has(attr)) return this.exit(1, '', `error: flake '${ref}' does not provide attribute '${section}.${attr}'\n`);
    const out = this.builtPath(kind, attr, identity);
    if (!this.store.has(out)) this.store.set(out, { kind, seeded: false });
    const drv = `/nix/store/${nixHash(`drv:${out}`)}-${out.slice(44)}.drv`;
    return this.exit(0, `${JSON.stringify([{ drvPath: drv, outputs: { out } }])}\n`);
  }

  private builtPath(kind: SimHostKind, attr: string, identity: string): string {
    const tag = identity.replace(/[^A-Za-z0-9]/g, '').slice(0, 12);
    const name = kind === 'nixos' ? `nixos-system-${attr.replace(/@/g, '_')}-${tag}` : 'home-manager-generation';
    return `/nix/store/${nixHash(`${kind}:${attr}:${identity}`)}-${name}`;
  }

  private newGeneration(storePath: string): number {
    const n = Math.max(0, ...this.gens.keys()) + 1;
    this.gens.set(n, storePath);
    this.current = n;
    return n;
  }

  private envSet(storePath: string): SimExecResult {
    if (this.kind !== 'nixos' || !this.store.has(storePath)) return this.exit(1, '', `error: path '${storePath}' is not valid\n`);
    this.newGeneration(storePath);
    return this.exit(0);
  }

  private envSwitch(n: number): SimExecResult {
    if (this.kind !== 'nixos' || !this.gens.has(n)) return this.exit(1, '', `error: generation ${n} does not exist\n`);
    const from = this.current;
    this.current = n;
    return this.exit(0, '', `switching profile from version ${from} to ${n}\n`);
  }

  /** fuser -k -KILL LOCK: kills whatever holds the lock (0), or nothing holds it (1). */
  /** `fuser -k -KILL LOCK` on a build lock: every build holding it is killed; exit 1 when none runs. */
  private stopBuild(lock: string): SimExecResult {
    const holders = this.buildHolders.get(lock);
    if (!holders || holders.size === 0) return this.exit(1);
    for (const h of holders) h.kill();
    return this.exit(0, ' 4242', `${lock}:\n`);
  }

  /** Builds running now (they hold a build lock). */
  runningBuilds(): number {
    let n = 0;
    for (const hs of this.buildHolders.values()) n += hs.size;
    return n;
  }

  private stopActivation(lock: string): SimExecResult {
    const h = this.locks.get(lock);
    if (!h) return this.exit(1);
    h.kill();
    return this.exit(0, ' 4242', `${lock}:\n`);
  }

  /** `{ flock -n 9 || exit 75; exec …; } 9>LOCK`: exit 75 while another holds the lock; held until fn ends. */
  private async locked(lock: string, fn: (h: Holder) => Promise<SimExecResult>): Promise<SimExecResult> {
    if (this.locks.has(lock)) return this.exit(75);
    const h = newHolder();
    this.locks.set(lock, h);
    try {
      return await fn(h);
    } finally {
      this.unlock(lock, h);
    }
  }

  /** `flock 9` (blocking): waits until the lock is free, then holds it; release with unlock(). */
  private async lockBlocking(lock: string): Promise<Holder> {
    while (this.locks.has(lock)) await new Promise<void>((resolve) => this.lockWaiters.set(lock, [...(this.lockWaiters.get(lock) ?? []), resolve]));
    const h = newHolder();
    this.locks.set(lock, h);
    return h;
  }

  private unlock(lock: string, h: Holder): void {
    if (this.locks.get(lock) !== h) return;
    this.locks.delete(lock);
    const waiters = this.lockWaiters.get(lock) ?? [];
    this.lockWaiters.delete(lock);
    for (const w of waiters) w();
  }

  private resolveToplevel(t: string): string | null {
    const m = /^\/nix\/var\/nix\/profiles\/system-(\d+)-link$/.exec(t);
    const sp = m ? (this.gens.get(Number(m[1])) ?? null) : t;
    return sp !== null && this.store.get(sp)?.kind === 'nixos' ? sp : null;
  }

  /**
   * An activation that takes activationMs and can be killed (fuser -k, or the session closing:
   * a plain child of the SSH session dies with it). Returns false when it did not complete.
   */
  private async activationRuns(ctx: SimExecContext, h: Holder = newHolder()): Promise<boolean> {
    if (this.dropOn === 'activation') {
      this.dropOn = null;
      return false;
    }
    this.activating.add(h);
    try {
      const ms = this.latency.activationMs ?? 0;
      if (ms <= 0) return true;
      return await new Promise<boolean>((resolve) => {
        const t = setTimeout(() => resolve(true), ms);
        void Promise.race([h.killed, ctx.closed]).then(() => {
          clearTimeout(t);
          resolve(false);
        });
      });
    } finally {
      this.activating.delete(h);
    }
  }

  /** The activation fault's NixOS exit code for this store path (faults apply to new paths only). */
  private nixosFault(sp: string): number {
    if (this.store.get(sp)?.seeded) return 0;
    if (this.activationFault === 'units') return 4;
    if (this.activationFault === 'script') return 2;
    return this.switchExitCode ?? 0;
  }

  /** `h`: the lock holder the activation runs as (fuser -k on that lock kills it); none: an unlocked one. */
  private async switchToConfiguration(t: string, action: 'switch' | 'boot', ctx: SimExecContext, h?: Holder): Promise<SimExecResult> {
    const sp = this.resolveToplevel(t);
    if (sp === null) return this.exit(127, '', `sh: 1: ${t}/bin/switch-to-configuration: not found\n`);
    const code = action === 'switch' ? this.nixosFault(sp) : 0;
    if (action === 'switch') this.activationLog.push({ atMs: Date.now(), storePath: sp });
    if (code === 1) return this.exit(1, '', 'Failed to install bootloader\n');
    this.bootDefaultGen = { number: this.current, storePath: this.gens.get(this.current) as string };
    if (action === 'boot') return this.exit(0, 'updating GRUB 2 menu...\n');
    if (!(await this.activationRuns(ctx, h))) return { stdout: '', stderr: '', code: null, drop: true };
    this.active = sp;
    if (code === 4) {
      this.failed.add('nixfleet-standin.service');
      return this.exit(4, 'updating GRUB 2 menu...\nactivating the configuration...\n', 'warning: the following units failed: nixfleet-standin.service\n');
    }
    if (code !== 0) return this.exit(code, 'updating GRUB 2 menu...\nactivating the configuration...\n', "Activation script snippet 'nixfleet-standin' failed (1)\n");
    this.failed.delete('nixfleet-standin.service');
    return this.exit(0, 'updating GRUB 2 menu...\nactivating the configuration...\nthe configuration is active\n');
  }

  private addRoot(root: string, sp: string): SimExecResult {
    if (root.includes('/../') || root.includes('/./')) return this.exit(126, '', `nixfleet-allowlist: refused: gc-root\n`);
    if (!this.store.has(sp)) return this.exit(1, '', `error: path '${sp}' is not valid\n`);
    this.roots.set(root, sp);
    this.mtimes.set(root, this.now());
    this.dirs.add(dirname(root));
    return this.exit(0, `${root}\n`);
  }

  /** `mkdir -p GCDIR && touch GCDIR/NAME` (touch renews the mtime of an existing marker). */
  private writeMarker(dir: string, marker: string): SimExecResult {
    this.dirs.add(dirname(dir));
    this.dirs.add(dir);
    this.markers.add(marker);
    this.mtimes.set(marker, this.now());
    return this.exit(0);
  }

  /**
   * The sweep, as `find D -mindepth 1 -maxdepth 2 ! -type d -mmin +M ! -name 'K-*' -print -delete`
   * runs it here: D's entries are GC roots (depth 1) and `switches/` markers (depth 2); every one whose
   * mtime is more than M minutes before the host clock (GNU find: strictly more, fractions counted) and
   * whose name does not start with `K-` is printed and removed. Directories stay. Printed in name order
   * (find prints in directory order, which no caller may rely on).
   */
  private sweep(dir: string, minutes: number, keep: string): SimExecResult {
    if (!this.dirs.has(dir)) return this.exit(1, '', `find: '${dir}': No such file or directory\n`);
    const cutoff = this.now() - minutes * 60_000;
    const candidates = [...[...this.roots.keys()].filter((r) => dirname(r) === dir), ...[...this.markers].filter((mk) => dirname(mk) === `${dir}/switches`)];
    const gone = candidates.filter((e) => (this.mtimes.get(e) ?? this.now()) < cutoff && !e.slice(e.lastIndexOf('/') + 1).startsWith(`${keep}-`)).sort();
    for (const e of gone) {
      this.roots.delete(e);
      this.markers.delete(e);
      this.mtimes.delete(e);
    }
    return this.exit(0, gone.map((e) => `${e}\n`).join(''));
  }

  /** A store path's name split as Nix's DrvName does: the version starts at the first `-` followed by a digit. */
  private static drvName(sp: string): { name: string; version: string } {
    const full = sp.slice(44);
    const i = full.search(/-[0-9]/);
    return i < 0 ? { name: full, version: '' } : { name: full.slice(0, i), version: full.slice(i + 1) };
  }

  /** A simulated store object's NAR size: small and deterministic (from its hash). */
  private static narSize(sp: string): number {
    return 1024 + (parseInt(createHash('sha256').update(sp).digest('hex').slice(0, 4), 16) % 4096);
  }

  /**
   * `nix store diff-closures A B`. A simulated store path has no references, so each closure is the
   * path alone; the answer is what Nix prints for two such closures: a `name: FROM → TO` line per
   * package name whose versions differ (∅ for none, ε for an empty version), in name order. No size
   * lines: every simulated object is under Nix's 8 KiB threshold. Plausible and deterministic, not
   * derived from real closures (there are none here).
   */
  private diffClosures(a: string, b: string): SimExecResult {
    for (const p of [a, b]) if (!this.store.has(p)) return this.exit(1, '', `error: path '${p}' is required, but there is no substituter that can build it\n`);
    const from = SimHost.drvName(a);
    const to = SimHost.drvName(b);
    const v = (x: string): string => (x === '' ? 'ε' : x);
    const lines: Array<[string, string]> = [];
    if (from.name === to.name) {
      if (from.version !== to.version) lines.push([from.name, `${from.name}: ${v(from.version)} → ${v(to.version)}`]);
    } else {
      lines.push([from.name, `${from.name}: ${v(from.version)} → ∅`], [to.name, `${to.name}: ∅ → ${v(to.version)}`]);
    }
    lines.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
    return this.exit(0, lines.map(([, l]) => `${l}\n`).join(''));
  }

  /** `nix path-info --json -S A B` as Nix 2.8 prints it: an array in path order, `valid: false` for an unknown path (exit 0). */
  private closureSize(a: string, b: string): SimExecResult {
    const entries = [...new Set([a, b])].sort().map((p) => {
      if (!this.store.has(p)) return { path: p, valid: false };
      const size = SimHost.narSize(p);
      return { path: p, narHash: `sha256-${createHash('sha256').update(`nar:${p}`).digest('base64')}`, narSize: size, references: [], closureSize: size };
    });
    return this.exit(0, JSON.stringify(entries));
  }

  private async hmActivate(sp: string, ctx: SimExecContext, h?: Holder): Promise<SimExecResult> {
    const obj = this.store.get(sp);
    if (this.kind !== 'home-manager' || obj?.kind !== 'home-manager') return this.exit(127, '', `sh: 1: ${sp}/activate: not found\n`);
    this.activationLog.push({ atMs: Date.now(), storePath: sp });
    const fault = obj.seeded ? false : this.activationFault;
    if (fault === 'script') return this.exit(1, 'Starting Home Manager activation\n', 'Existing file is in the way (checkLinkTargets)\n');
    if (!(await this.activationRuns(ctx, h))) return { stdout: '', stderr: '', code: null, drop: true };
    if (this.gens.get(this.current) !== sp) this.newGeneration(sp);
    this.active = sp;
    if (fault === 'units') return this.exit(1, 'Starting Home Manager activation\n', 'Error: failed to start units: nixfleet-standin.service\n');
    return this.exit(0, 'Starting Home Manager activation\n');
  }

  private readGenLink(link: string): SimExecResult {
    const n = Number(/-(\d+)-link$/.exec(link)?.[1]);
    const sp = this.kind === 'nixos' ? this.gens.get(n) : undefined;
    return sp ? this.exit(0, `${sp}\n`) : this.exit(1);
  }

  private async nixosRebuild(ref: string, attr: string, ctx: SimExecContext): Promise<SimExecResult> {
    const b = await this.build(ref, 'nixos', attr, '(nixos-rebuild)');
    if (b.code !== 0) return { ...b, code: b.code === null ? null : 1 };
    const out = (JSON.parse(b.stdout) as Array<{ outputs: { out: string } }>)[0]?.outputs.out as string;
    const set = this.envSet(out);
    if (set.code !== 0) return { ...set, code: 1 };
    if (this.activating.size > 0) return this.exit(1, '', 'Could not acquire lock\n');
    const a = await this.switchToConfiguration(out, 'switch', ctx);
    if (a.code === null) return a;
    if (a.code !== 0) return this.exit(1, a.stdout, `${a.stderr}warning: error(s) occurred while switching to the new configuration\n`);
    return a;
  }

  private async homeManagerSwitch(ref: string, attr: string, ctx: SimExecContext, h?: Holder): Promise<SimExecResult> {
    const b = await this.build(ref, 'home-manager', attr, '(home-manager switch)');
    if (b.code !== 0) return { ...b, code: b.code === null ? null : 1 };
    const out = (JSON.parse(b.stdout) as Array<{ outputs: { out: string } }>)[0]?.outputs.out as string;
    return this.hmActivate(out, ctx, h);
  }

  private systemctlFailed(): SimExecResult {
    if (this.systemctlFails) return this.exit(1, '', 'Failed to list units: Transport endpoint is not connected\n');
    return this.exit(0, [...this.failed].map((u) => `${u} loaded failed failed stand-in unit\n`).join(''));
  }

  private listGenerations(profile: string): SimExecResult {
    if (profile !== this.profile) return this.exit(0);
    // A shell glob: links in text order (system-100-link before system-40-link).
    const lines = [...this.gens.entries()].map(([n, sp]) => [`${profile}-${n}-link`, sp] as const).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return this.exit(0, lines.map(([l, sp]) => `${l} ${sp}\n`).join(''));
  }

  private stopTimer(unit: string): SimExecResult {
    const t = this.timers.get(unit);
    if (!t) return this.exit(5, '', `Failed to stop ${unit}.timer: Unit ${unit}.timer not loaded.\n`);
    if (t.handle) clearTimeout(t.handle);
    this.timers.delete(unit);
    return this.exit(0);
  }

  /** The allowlist's rebuild of the confirmed activation from its parts; null when the request is not byte for byte what they make. */
  private confirmedParts(cmd: string, u: string): { u: string; s: string; r: string; t: number; n: number } | null {
    const s = new RegExp(`(${STORE})[^/]*/bin/switch-to-configuration switch; rc=`).exec(cmd)?.[1];
    const r = new RegExp(`(${STORE})[^/]*/sw/bin/systemd-run`).exec(cmd)?.[1];
    const t = /--on-active=([0-9]{1,4}) /.exec(cmd)?.[1];
    const n = /system-([0-9]{1,10})-link/.exec(cmd)?.[1];
    if (!s || !r || !t || !n) return null;
    const rollback = `{ ${q(r)}/sw/bin/flock 9; if [ "$(${q(r)}/sw/bin/readlink ${q(`${SYSPROFILE}-${n}-link`)})" = ${q(r)} ]; then ${q(r)}/sw/bin/nix-env -p ${q(SYSPROFILE)} --switch-generation ${q(n)}; else ${q(r)}/sw/bin/nix-env -p ${q(SYSPROFILE)} --set ${q(r)}; fi && ${q(r)}/bin/switch-to-configuration switch; } 9>${LOCK}`;
    const arm = `${q(r)}/sw/bin/systemd-run --unit=${q(u)} --on-active=${t} --collect --quiet -- /bin/sh -c ${q(rollback)}`;
    const script = `{ ${q(r)}/sw/bin/flock -n 9 || exit 75; ${q(s)}/bin/switch-to-configuration switch; rc=$?; if [ "$rc" -eq 0 ] || [ "$rc" -eq 4 ]; then ${arm} || exit 97; fi; exit "$rc"; } 9>${LOCK}`;
    const expected = `systemd-run --unit=${q(`${u}-activate`)} --collect --wait --pipe --quiet -- /bin/sh -c ${q(script)}`;
    return cmd === expected ? { u, s, r, t: Number(t), n: Number(n) } : null;
  }

  /**
   * Activation in a transient unit (detached from the session: a dropped connection does not stop it)
   * holding the activation lock (`flock -n`: exit 75 while another activation holds it; `fuser -k` on
   * the lock kills the unit's shell and its activation), then a timer that rolls the host back to
   * generation n (or makes r a new generation when its link is gone) unless `systemctl stop u.timer`
   * comes first. The timer's rollback waits for the lock (`flock 9`) before it touches the profile.
   * An elapsed timer stays loaded.
   */
  private async confirmedActivation(p: { u: string; s: string; r: string; t: number; n: number }, ctx: SimExecContext): Promise<SimExecResult> {
    // systemd refuses a unit name still loaded: u-activate while an earlier one runs; u (the timer, which
    // stays loaded after it elapsed) only when the arm runs, after the activation: then exit 97.
    const activateUnit = `${p.u}-activate`;
    if (this.runningServices.has(activateUnit)) return this.exit(1, '', `Failed to start transient service unit: Unit ${activateUnit}.service was already loaded or has a fragment file.\n`);
    const detached: SimExecContext = { closed: new Promise<void>(() => undefined) };
    this.runningServices.add(activateUnit);
    try {
      return await this.locked(LOCK, async (h) => {
        const a = await this.switchToConfiguration(p.s, 'switch', detached, h);
        // Killed (fuser -k): the unit's shell dies with it; systemd-run reports the unit failed.
        const rc = a.code ?? 1;
        if (rc === 0 || rc === 4) {
          if (this.store.get(p.r)?.kind !== 'nixos') return this.exit(97, a.stdout, a.stderr);
          if (this.timers.has(p.u) || this.runningServices.has(p.u)) return this.exit(97, a.stdout, `${a.stderr}Failed to start transient timer unit: Unit ${p.u}.timer was already loaded or has a fragment file.\n`);
          const timer: Timer = { state: 'waiting' };
          timer.handle = setTimeout(() => {
            timer.state = 'elapsed';
            delete timer.handle;
            this.runningServices.add(p.u);
            void (async () => {
              const lock = await this.lockBlocking(LOCK);
              try {
                if (this.gens.get(p.n) === p.r) this.current = p.n;
                else this.newGeneration(p.r);
                await this.switchToConfiguration(p.r, 'switch', detached, lock);
              } finally {
                this.unlock(LOCK, lock);
                this.runningServices.delete(p.u);
              }
            })();
          }, p.t * 1000);
          timer.handle.unref();
          this.timers.set(p.u, timer);
        }
        return this.exit(rc, a.stdout, a.stderr);
      });
    } finally {
      this.runningServices.delete(activateUnit);
      void ctx;
    }
  }

  /** Clears timers (the fleet stops). */
  shutdown(): void {
    this.stopped = true;
    for (const t of this.timers.values()) if (t.handle) clearTimeout(t.handle);
    for (const h of this.activating) h.kill();
    for (const h of this.locks.values()) h.kill();
  }
}

/** The fleet flake as the simulated hosts see it: the fleet's host names, pinned refs resolved by `rev=`. */
export function simFlake(specs: SimHostSpec[], resolve?: (ref: string) => string | null): SimFlake {
  return {
    nixos: new Set(specs.filter((s) => s.kind === 'nixos').map((s) => s.name)),
    'home-manager': new Set(specs.filter((s) => s.kind === 'home-manager').map((s) => s.name)),
    resolve: resolve ?? ((ref) => /[?&]rev=([0-9a-f]{40})(?:&|$)/.exec(ref)?.[1] ?? null),
  };
}
