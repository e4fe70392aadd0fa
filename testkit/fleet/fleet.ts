/**
 * The stand-in fleet: each host is a real `sshd` on its own loopback address, inside its own mount,
 * UTS and PID namespaces, with its own Nix profiles, HOME and /run bind-mounted from a per-host
 * directory, and real Nix generations in the machine's (shared) /nix/store. The host's tools
 * (nixos-rebuild, switch-to-configuration, home-manager, nix/nix-env wrappers) are the stand-in
 * scripts in ./bin, which follow the real tools' order and exit codes and append every switch,
 * activation and profile move to the host's command log.
 *
 * Test/demo infrastructure only: needs root, Linux namespaces, nix-bin, openssh-server, nftables
 * (scripts/install-system-deps.sh).
 */
import { spawn, spawnSync, execFile, execFileSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { TOPLEVEL_BUILDER, HM_BUILDER, standinKernelExpr } from './flake';
import { waitFor } from './wait';

const execFileP = promisify(execFile);

export type StandinHostKind = 'nixos' | 'home-manager';

export interface StandinHostSpec {
  /** Host name: also its hostname inside its UTS namespace and its flake attribute. */
  name: string;
  kind: StandinHostKind;
  /** Seeded generation numbers; the last one is current. Default [40, 41, 42]. */
  generations?: number[];
}

export interface StartFleetOptions {
  /** Where per-host directories go; default a fresh mkdtemp under os.tmpdir(). */
  baseDir?: string;
  /** Keep baseDir after stop() (default: removed when startFleet created it). */
  keep?: boolean;
  /** Deadline for one host's sshd to listen (default 10 s). */
  startTimeoutMs?: number;
  /**
   * Restrict the deployer's key with the shipped forced command (deploy/nixfleet-allowlist.sh):
   * `restrict,command="…/nixfleet-allowlist.sh" ssh-ed25519 …` in authorized_keys, its log in
   * control/allowlist.log. Default: on when NIXFLEET_STANDIN_ALLOWLIST=1.
   */
  allowlist?: boolean;
}

export interface StandinGeneration {
  number: number;
  storePath: string;
  current: boolean;
}

export interface CommandLogEntry {
  /** Epoch milliseconds when the tool logged the event. */
  atMs: number;
  /**
   * nixos-rebuild | home-manager | nix (builds) | nix-exit | nix-env | nix-env-exit |
   * switch-to-configuration (args: action, toplevel) | switch-to-configuration-exit (code, action, toplevel) |
   * hm-activate (store path) | hm-activate-exit (code, store path) | hang | hang-released
   */
  tool: string;
  args: string[];
}

export type ActivationFault = 'units' | 'script' | false;

export interface StandinFleet {
  readonly baseDir: string;
  readonly hosts: readonly StandinHost[];
  host(name: string): StandinHost;
  /** OpenSSH-format ed25519 private key accepted by every host for `root` (usable by ssh2). */
  readonly clientPrivateKey: string;
  /** `ssh-ed25519 AAAA… nixfleet-deployer` */
  readonly clientPublicKey: string;
  /** known_hosts text pinning every host's own key: `[addr]:port ssh-ed25519 AAAA…` lines. */
  readonly knownHosts: string;
  stop(): Promise<void>;
}

const FLEET_DIR = __dirname;
const BIN_DIR = path.join(FLEET_DIR, 'bin');
const INIT_SCRIPT = path.join(FLEET_DIR, 'libexec', 'host-init.sh');
const GC_SCRIPT = path.join(FLEET_DIR, 'libexec', 'standin-gc.sh');
/** The forced command shipped to users (deploy/nixfleet-allowlist.sh). */
export const ALLOWLIST_SCRIPT = path.resolve(FLEET_DIR, '..', '..', 'deploy', 'nixfleet-allowlist.sh');
const HOST_NAME = /^[A-Za-z0-9][A-Za-z0-9-]{0,62}$/;
/** What NixOS's systemd.managerEnvironment.PATH holds (filesystem tools and util-linux; nixpkgs #261691). */
const MANAGER_PATH_TOOLS = ['mount', 'umount', 'fsck', 'swapon', 'swapoff', 'mkswap', 'losetup', 'blkid', 'findmnt'];
const SAFE_PATH = /^\/[A-Za-z0-9._/+-]*$/;
const STORE_PATH = /^\/nix\/store\/[0-9a-z]{32}-[A-Za-z0-9+\-._?=]+$/;

/** Everything live in this process, killed synchronously if the process exits without stop(). */
const live = new Set<StandinHost>();
/** Base directories startFleet created (removed on stop, or at process exit). */
const ownedBaseDirs = new Set<string>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const h of live) h.killSync();
    for (const dir of ownedBaseDirs) {
      try {
        fs.rmSync(dir, { recursive: true, force: true });
      } catch {
        // best effort
      }
    }
  });
}

const usedAddresses = new Set<string>();
let fleetSeq = 0;

function realNixBinDir(): string {
  for (const dir of (process.env.PATH ?? '/usr/bin').split(':')) {
    if (!dir || path.resolve(dir) === BIN_DIR) continue;
    if (fs.existsSync(path.join(dir, 'nix')) && fs.existsSync(path.join(dir, 'nix-env'))) return dir;
  }
  if (fs.existsSync('/usr/bin/nix')) return '/usr/bin';
  throw new Error('stand-in fleet: nix is not installed (run scripts/install-system-deps.sh)');
}

function checkPrerequisites(): void {
  const missing: string[] = [];
  for (const [tool, file] of [
    ['sshd (openssh-server)', '/usr/sbin/sshd'],
    ['ssh-keygen (openssh-client)', '/usr/bin/ssh-keygen'],
    ['unshare (util-linux)', '/usr/bin/unshare'],
    ['setpriv (util-linux)', '/usr/bin/setpriv'],
  ] as const) {
    if (!fs.existsSync(file)) missing.push(tool);
  }
  try {
    realNixBinDir();
  } catch {
    missing.push('nix (nix-bin)');
  }
  if (missing.length > 0) {
    throw new Error(`stand-in fleet: missing ${missing.join(', ')}; run scripts/install-system-deps.sh`);
  }
  if (process.getuid?.() !== 0) throw new Error('stand-in fleet: must run as root (namespaces, bind mounts, sshd)');
  if (!fs.existsSync('/nix/var/nix/profiles')) throw new Error('stand-in fleet: /nix/var/nix/profiles does not exist (run scripts/install-system-deps.sh, which creates the Nix store layout)');
}

async function portIsFree(address: string, port: number): Promise<number | null> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(null));
    srv.listen({ host: address, port, exclusive: true }, () => {
      const addr = srv.address();
      const p = typeof addr === 'object' && addr ? addr.port : null;
      srv.close(() => resolve(p));
    });
  });
}

/** A loopback address not used by another host of this process, and a free port on it. */
async function allocateEndpoint(): Promise<{ address: string; port: number }> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const address = `127.0.0.${2 + Math.floor(Math.random() * 253)}`;
    if (usedAddresses.has(address)) continue;
    const port = await portIsFree(address, 0);
    if (port !== null) {
      usedAddresses.add(address);
      return { address, port };
    }
  }
  throw new Error('stand-in fleet: no free loopback address');
}

function readLinkOrNull(p: string): string | null {
  try {
    return fs.readlinkSync(p);
  } catch {
    return null;
  }
}

/**
 * An ed25519 key pair from ssh-keygen. (ssh2's utils.generateKeyPairSync('ed25519') is not used: it
 * drops leading zero bytes of the key, and about 1 key in 40 is then unreadable by OpenSSH.)
 */
async function sshKeygen(file: string, comment: string): Promise<{ private: string; public: string }> {
  await fsp.rm(file, { force: true });
  await fsp.rm(file + '.pub', { force: true });
  await execFileP('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file]);
  const [priv, pub] = await Promise.all([fsp.readFile(file, 'utf8'), fsp.readFile(file + '.pub', 'utf8')]);
  const [type, b64] = pub.trim().split(/\s+/);
  return { private: priv, public: `${type} ${b64}` };
}

function runSh(script: string, env: Record<string, string>): Promise<void> {
  return execFileP('/bin/sh', ['-c', script], { env: { PATH: '/usr/bin:/bin', ...env } }).then(() => undefined);
}

export class StandinHost {
  readonly user = 'root';
  /** Milliseconds the last start took until sshd listened. */
  lastStartMs = 0;
  private child: ChildProcess | null = null;
  private childExit: Promise<void> | null = null;
  private initPid: number | null = null;
  private linkCut = false;
  private stopped = false;
  private rebootWatch: NodeJS.Timeout | null = null;
  private powerCycling: Promise<void> | null = null;
  private nextBootFault: 'never-comes-back' | 'wrong-generation' | null = null;
  /** How long a rebooting host stays down (unreachable: nothing listens) before it boots (ms). */
  rebootDownMs = 1500;
  /** Reboots the host went through after a `systemctl reboot` on it (not restart() calls). */
  reboots = 0;

  constructor(
    readonly name: string,
    readonly kind: StandinHostKind,
    readonly address: string,
    readonly port: number,
    /** `ssh-ed25519 AAAA…` */
    readonly hostPublicKey: string,
    /** The host's directory (profiles/, home/, run/, etc/, control/). */
    readonly dir: string,
    private readonly nftTable: string,
  ) {}

  get controlDir(): string {
    return path.join(this.dir, 'control');
  }
  get running(): boolean {
    return this.child !== null;
  }
  /** `[addr]:port ssh-ed25519 AAAA…` */
  get knownHostsLine(): string {
    const [type, b64] = this.hostPublicKey.split(' ');
    return `[${this.address}]:${this.port} ${type} ${b64}`;
  }

  /** Where this host's profile lives in its directory (the real /nix/var/nix/profiles/system or HM profile). */
  private profileDir(): string {
    return this.kind === 'nixos' ? path.join(this.dir, 'profiles') : path.join(this.dir, 'home', '.local', 'state', 'nix', 'profiles');
  }
  private profileBase(): string {
    return this.kind === 'nixos' ? 'system' : 'home-manager';
  }

  // ---- ground truth, read from the host's directories (not over SSH) ----

  /** The profile's current generation: number and store path. */
  profileGeneration(): { number: number; storePath: string } {
    const base = this.profileBase();
    const link = readLinkOrNull(path.join(this.profileDir(), base));
    const m = link ? new RegExp(`^${base}-(\\d+)-link$`).exec(link) : null;
    if (!m?.[1]) throw new Error(`${this.name}: profile ${base} points to ${String(link)}`);
    const storePath = readLinkOrNull(path.join(this.profileDir(), link as string));
    if (!storePath) throw new Error(`${this.name}: ${String(link)} is dangling`);
    return { number: Number(m[1]), storePath };
  }

  /** All generations, ascending by number (numeric, not text order). */
  generations(): StandinGeneration[] {
    const base = this.profileBase();
    const current = readLinkOrNull(path.join(this.profileDir(), base));
    const re = new RegExp(`^${base}-(\\d+)-link$`);
    const out: StandinGeneration[] = [];
    for (const entry of fs.readdirSync(this.profileDir())) {
      const m = re.exec(entry);
      if (!m?.[1]) continue;
      const storePath = readLinkOrNull(path.join(this.profileDir(), entry));
      if (storePath) out.push({ number: Number(m[1]), storePath, current: entry === current });
    }
    return out.sort((a, b) => a.number - b.number);
  }

  /**
   * What is activated: NixOS: the target of the host's /run/current-system; Home Manager: the
   * activated generation marker (~/.local/state/home-manager/gcroots/current-home). Null if none.
   */
  currentSystem(): string | null {
    if (this.kind === 'nixos') return readLinkOrNull(path.join(this.dir, 'run', 'current-system'));
    return readLinkOrNull(path.join(this.dir, 'home', '.local', 'state', 'home-manager', 'gcroots', 'current-home'));
  }

  /**
   * NixOS: the boot loader's default entry (generation number and store path), as the last
   * `switch-to-configuration switch|boot` wrote it (control/boot-default); what restart() boots.
   * Null for Home Manager hosts.
   */
  bootDefault(): { number: number; storePath: string } | null {
    if (this.kind !== 'nixos') return null;
    let text: string;
    try {
      text = fs.readFileSync(path.join(this.controlDir, 'boot-default'), 'utf8');
    } catch {
      return null;
    }
    const m = /^(\d+) (\/nix\/store\/\S+)\n?$/.exec(text);
    if (!m?.[1] || !m[2]) throw new Error(`${this.name}: boot-default holds ${JSON.stringify(text)}`);
    return { number: Number(m[1]), storePath: m[2] };
  }

  /** The host's own append-only log of every switch, activation and profile move that ran. */
  commandLog(): CommandLogEntry[] {
    let text: string;
    try {
      text = fs.readFileSync(path.join(this.controlDir, 'commands.log'), 'utf8');
    } catch {
      return [];
    }
    return text
      .split('\n')
      .filter((l) => l.length > 0)
      .map((l) => {
        const [at, tool, ...args] = l.split('\t');
        return { atMs: Number(at), tool: tool ?? '', args };
      });
  }

  /** Activations started (`switch-to-configuration switch|test` or HM `activate`). */
  activations(): CommandLogEntry[] {
    return this.commandLog().filter(
      (e) => (e.tool === 'switch-to-configuration' && (e.args[0] === 'switch' || e.args[0] === 'test')) || e.tool === 'hm-activate',
    );
  }

  /** Whether the deployer's key is restricted by the allowlist forced command on this host. */
  get allowlisted(): boolean {
    return fs.existsSync(path.join(this.controlDir, 'allowlist.on'));
  }

  /** What the allowlist forced command saw: every request, allowed or refused (empty without it). */
  /** The health-check commands the host's allowlist runs (one per line, byte for byte), as its owner vetted them. */
  allowChecks(commands: string[]): void {
    for (const c of commands) if (/[\n\r]/.test(c)) throw new Error('allowChecks: one line per command');
    fs.writeFileSync(path.join(this.controlDir, 'allowed-checks'), commands.map((c) => `${c}\n`).join(''));
  }

  allowlistLog(): Array<{ atMs: number; verdict: 'allow' | 'deny'; verb: string; command: string }> {
    let text: string;
    try {
      text = fs.readFileSync(path.join(this.controlDir, 'allowlist.log'), 'utf8');
    } catch {
      return [];
    }
    return text
      .split('\n')
      .filter((l) => l.length > 0)
      .map((l) => {
        const [at, verdict, verb, ...rest] = l.split('\t');
        return { atMs: Number(at), verdict: verdict === 'allow' ? 'allow' : 'deny', verb: verb ?? '', command: rest.join('\t') };
      });
  }

  /** The sshd log of this host (stderr of `sshd -D -e`). */
  sshdLog(): string {
    try {
      return fs.readFileSync(path.join(this.dir, 'sshd.log'), 'utf8');
    } catch {
      return '';
    }
  }

  /**
   * `nix-collect-garbage -d` on this host, at any point of a test (the host must be running): every
   * old generation of its profiles is deleted, and every store path it knows that is dead from its
   * own GC roots (/nix/var/nix/gcroots on the host, its profiles, its processes) is deleted for this
   * host (see libexec/standin-gc.sh: the machine's store is shared, so a path is hidden in the
   * host's mount namespace rather than removed). Returns the deleted store paths.
   */
  async collectGarbage(): Promise<string[]> {
    const pid = this.initPid;
    if (!this.child || !pid) throw new Error(`${this.name}: collectGarbage needs the host running`);
    const { stdout } = await execFileP('/usr/bin/nsenter', ['-t', String(pid), '-m', '-p', '--', '/bin/sh', GC_SCRIPT], {
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
    });
    return stdout.split('\n').filter((l) => l.length > 0);
  }

  /**
   * How many builds held by hangBuild(true) still run on the host: each left its PID (in the host's
   * PID namespace) in the control directory; the ones alive are counted. A build that was stopped
   * (killed) or released is not.
   */
  async hungBuilds(): Promise<number> {
    const pid = this.initPid;
    if (!this.child || !pid) throw new Error(`${this.name}: hungBuilds needs the host running`);
    const script = 'n=0; for f in "$1"/hang-build.pid.*; do [ -e "$f" ] || continue; kill -0 "${f##*.}" 2>/dev/null && n=$((n+1)); done; echo "$n"';
    const { stdout } = await execFileP('/usr/bin/nsenter', ['-t', String(pid), '-m', '-p', '--', '/bin/sh', '-c', script, 'sh', this.controlDir], {
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
    });
    return Number(stdout.trim());
  }

  /** Store paths this host's garbage collector deleted (collectGarbage()) and no build brought back. */
  collectedPaths(): string[] {
    try {
      return fs.readFileSync(path.join(this.controlDir, 'gc-deleted'), 'utf8').split('\n').filter((l) => l.length > 0);
    } catch {
      return [];
    }
  }

  // ---- faults ----

  /**
   * 'units': activation exits 4 (NixOS) after moving the system; 'script': exit 2 (NixOS). HM: see README.
   * `onlyVersion`: fail only activations of generations built from that flake.lock version.
   */
  failActivation(fault: ActivationFault, opts: { onlyVersion?: string } = {}): void {
    const f = path.join(this.controlDir, 'fail-activation');
    if (fault === false) {
      fs.rmSync(f, { force: true });
      return;
    }
    if (opts.onlyVersion !== undefined && !/^[A-Za-z0-9._+-]{1,64}$/.test(opts.onlyVersion)) throw new Error(`failActivation: invalid version ${opts.onlyVersion}`);
    // With onlyVersion, only generations built from that flake.lock version fail to activate (a bad
    // update): rolling back to an older generation then activates cleanly, as on a real host.
    fs.writeFileSync(f, opts.onlyVersion ? `${fault} ${opts.onlyVersion}` : fault);
  }

  /** While set, activation blocks (after the profile moved, before /run/current-system) until killed. */
  hangActivation(on: boolean): void {
    this.hang('hang-activation', 'hang.fifo', on);
  }

  /**
   * While set, `nix build` blocks before it builds (a long build: a nixpkgs bump without a binary
   * cache) until killed or released (hangBuild(false)).
   */
  hangBuild(on: boolean): void {
    this.hang('hang-build', 'hang-build.fifo', on);
  }

  /** Sets or clears a hang flag; clearing releases the tools blocked on its FIFO. */
  private hang(flag: string, fifo: string, on: boolean): void {
    const f = path.join(this.controlDir, flag);
    if (on) {
      fs.writeFileSync(f, '1');
      return;
    }
    fs.rmSync(f, { force: true });
    // Release the tools blocked on the FIFO (best effort: one just about to open it stays blocked
    // until kill()).
    try {
      const fd = fs.openSync(path.join(this.controlDir, fifo), fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
      fs.closeSync(fd);
    } catch {
      // ENXIO: nobody is waiting.
    }
  }

  /** While set, `systemctl --failed` cannot reach systemd (exit 1), as after a switch that broke D-Bus. */
  failSystemctl(on: boolean): void {
    const f = path.join(this.controlDir, 'fail-systemctl');
    if (on) fs.writeFileSync(f, '1');
    else fs.rmSync(f, { force: true });
  }

  /**
   * Units that have failed on the host, independent of any deployment (`systemctl --failed` lists
   * them until an activation succeeds), e.g. a unit that failed before a deployment started.
   */
  setFailedUnits(units: string[]): void {
    for (const u of units) if (!/^[A-Za-z0-9@._-]{1,200}$/.test(u)) throw new Error(`setFailedUnits: invalid unit ${u}`);
    const f = path.join(this.controlDir, 'failed-units');
    if (units.length === 0) fs.rmSync(f, { force: true });
    else fs.writeFileSync(f, units.map((u) => `${u}\n`).join(''));
  }

  /**
   * The next reboot (`systemctl reboot` on the host) goes wrong: `never-comes-back` (the host stays
   * down until the test calls restart()), or `wrong-generation` (it boots the system that booted
   * before instead of the boot default, as a boot loader that fell back to the previous entry). Once.
   */
  failNextBoot(fault: 'never-comes-back' | 'wrong-generation' | null): void {
    this.nextBootFault = fault;
  }

  /** NixOS: what booted (/run/booted-system), null if none. */
  bootedSystem(): string | null {
    return readLinkOrNull(path.join(this.dir, 'run', 'booted-system'));
  }

  /** The current boot's id (the host's /proc/sys/kernel/random/boot_id); changes at every boot. */
  bootId(): string | null {
    try {
      return fs.readFileSync(path.join(this.controlDir, 'boot-id'), 'utf8').trim();
    } catch {
      return null;
    }
  }

  /** While set, `nix build` fails (evaluation/build error: nothing built, no new generation). */
  failBuild(on: boolean): void {
    const f = path.join(this.controlDir, 'fail-build');
    if (on) fs.writeFileSync(f, '1');
    else fs.rmSync(f, { force: true });
  }

  // ---- lifecycle ----

  /** @internal */
  async start(timeoutMs: number): Promise<void> {
    if (this.stopped) throw new Error(`${this.name}: stopped`);
    if (this.child) return;
    const t0 = Date.now();
    const log = fs.openSync(path.join(this.dir, 'sshd.log'), 'a');
    const child = spawn(
      '/usr/bin/setpriv',
      [
        '--pdeathsig',
        'KILL',
        '--',
        '/usr/bin/unshare',
        '--mount',
        '--uts',
        '--pid',
        '--fork',
        '--kill-child',
        '--mount-proc',
        '--propagation',
        'private',
        '/bin/sh',
        INIT_SCRIPT,
        this.dir,
        this.name,
      ],
      { stdio: ['ignore', log, 'pipe'] },
    );
    fs.closeSync(log);
    this.child = child;
    live.add(this);
    installExitHook();
    let stderr = '';
    let exited = false;
    this.childExit = new Promise<void>((resolve) => {
      child.once('exit', () => {
        exited = true;
        if (this.child === child) {
          this.child = null;
          this.initPid = null;
        }
        resolve();
      });
    });
    const listening = `Server listening on ${this.address} port ${this.port}`;
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      if (stderr.length < 64 * 1024) stderr += chunk;
      fs.appendFileSync(path.join(this.dir, 'sshd.log'), chunk);
    });
    try {
      await waitFor(
        `${this.name}: sshd listening on ${this.address}:${this.port}`,
        () => {
          if (exited) throw new Error(`sshd exited: ${stderr.trim().slice(-2000)}`);
          return stderr.includes(listening);
        },
        { timeoutMs, intervalMs: 5 },
      );
    } catch (err) {
      await this.kill();
      throw new Error(`${this.name}: host did not start: ${(err as Error).message}`);
    }
    this.initPid = readChildPid(child.pid);
    this.lastStartMs = Date.now() - t0;
    // `systemctl reboot` on the host leaves control/reboot-requested: the host goes down, as on systemd.
    const flag = path.join(this.controlDir, 'reboot-requested');
    this.rebootWatch = setInterval(() => {
      if (this.child !== child || this.powerCycling || !fs.existsSync(flag)) return;
      this.powerCycling = this.powerCycle(flag).catch((err: unknown) => {
        fs.appendFileSync(path.join(this.dir, 'sshd.log'), `stand-in reboot failed: ${(err as Error).message}\n`);
      }).finally(() => {
        this.powerCycling = null;
      });
    }, 50);
    this.rebootWatch.unref();
  }

  /** A reboot: down at once (connections drop), unreachable for rebootDownMs, then it boots (or not: failNextBoot). */
  private async powerCycle(flag: string): Promise<void> {
    fs.rmSync(flag, { force: true });
    const previouslyBooted = this.bootedSystem();
    await this.kill();
    this.reboots += 1;
    await new Promise((r) => setTimeout(r, this.rebootDownMs));
    const fault = this.nextBootFault;
    this.nextBootFault = null;
    if (this.stopped || fault === 'never-comes-back') return;
    await this.restart(10_000, fault === 'wrong-generation' && previouslyBooted ? { system: previouslyBooted } : {});
  }

  /** Power cut: everything in the host's namespaces dies at once (mid-command included). */
  async kill(): Promise<void> {
    if (this.rebootWatch) clearInterval(this.rebootWatch);
    this.rebootWatch = null;
    const child = this.child;
    if (!child) return;
    const pid = this.initPid ?? readChildPid(child.pid);
    try {
      // Killing the namespace's PID 1 makes the kernel kill every process in it; unshare then exits.
      if (pid) process.kill(pid, 'SIGKILL');
      else child.kill('SIGKILL');
    } catch {
      child.kill('SIGKILL');
    }
    await this.childExit;
    live.delete(this);
  }

  /** @internal synchronous variant for the process-exit hook */
  killSync(): void {
    const child = this.child;
    if (child) {
      try {
        const pid = this.initPid ?? readChildPid(child.pid);
        if (pid) process.kill(pid, 'SIGKILL');
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
    if (this.linkCut) this.deleteNftTableSync();
  }

  /**
   * Hard reboot: kill if running, then boot: /run is emptied, /run/booted-system and
   * /run/current-system = the boot default (bootDefault()), or `opts.system` (a boot of another entry).
   */
  async restart(timeoutMs = 10_000, opts: { system?: string } = {}): Promise<void> {
    await this.kill();
    const run = path.join(this.dir, 'run');
    for (const entry of await fsp.readdir(run)) await fsp.rm(path.join(run, entry), { recursive: true, force: true });
    await fsp.mkdir(path.join(run, 'sshd'), { recursive: true, mode: 0o755 });
    if (this.kind === 'nixos') {
      // The boot loader's default, which `switch-to-configuration switch|boot` wrote; not the profile.
      const storePath = opts.system ?? (this.bootDefault() ?? this.profileGeneration()).storePath;
      await fsp.symlink(storePath, path.join(run, 'current-system'));
      await fsp.symlink(storePath, path.join(run, 'booted-system'));
    }
    await this.start(timeoutMs);
  }

  /** Packets to and from the host's sshd are silently dropped (nftables); processes keep running. */
  async cutLink(): Promise<void> {
    if (this.linkCut) return;
    const rules = [
      `table inet ${this.nftTable} {`,
      '  chain input {',
      '    type filter hook input priority raw; policy accept;',
      `    ip daddr ${this.address} tcp dport ${this.port} drop`,
      `    ip saddr ${this.address} tcp sport ${this.port} drop`,
      '  }',
      '}',
    ].join('\n');
    await new Promise<void>((resolve, reject) => {
      const p = execFile('nft', ['-f', '-'], (err, _o, stderr) => (err ? reject(new Error(`nft: ${stderr || err.message}`)) : resolve()));
      p.stdin?.end(rules + '\n');
    });
    this.linkCut = true;
  }

  async restoreLink(): Promise<void> {
    if (!this.linkCut) return;
    await execFileP('nft', ['delete', 'table', 'inet', this.nftTable]);
    this.linkCut = false;
  }

  private deleteNftTableSync(): void {
    try {
      execFileSync('nft', ['delete', 'table', 'inet', this.nftTable], { stdio: 'ignore' });
    } catch {
      // not there
    }
    this.linkCut = false;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.powerCycling;
    await this.kill();
    if (this.linkCut) await this.restoreLink().catch(() => this.deleteNftTableSync());
    live.delete(this);
    usedAddresses.delete(this.address);
  }
}

function readChildPid(pid: number | undefined): number | null {
  if (!pid) return null;
  try {
    const children = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/);
    const first = children[0];
    return first ? Number(first) : null;
  } catch {
    return null;
  }
}

async function seedHost(spec: StandinHostSpec, dir: string, gens: number[], nixEnv: Record<string, string>): Promise<void> {
  const staging = path.join(dir, 'seed');
  const seeds: string[] = [];
  // The seeded toplevels boot the flake's default kernel (the same store paths), so a deployment that
  // keeps the kernel needs no reboot. The three parts are the toplevels' references (registered below:
  // nix-store --add records none) and the host's GC roots keep them too (gcroots/nixfleet-standin-seed-*).
  let boot: Record<string, string> = {};
  if (spec.kind === 'nixos') {
    const { stdout } = await execFileP(path.join(nixEnv.NIXFLEET_REAL_NIX_BIN as string, 'nix'), ['eval', '--raw', '--expr', standinKernelExpr()], { env: { ...process.env, ...nixEnv } });
    const [kernel, initrd, kernelModules] = stdout.trim().split(' ');
    if (![kernel, initrd, kernelModules].every((p) => p !== undefined && STORE_PATH.test(p))) throw new Error(`${spec.name}: kernel paths: ${stdout}`);
    boot = { kernel: kernel as string, initrd: initrd as string, kernelModules: kernelModules as string };
    for (const [k, p] of Object.entries(boot)) await fsp.symlink(p, path.join(dir, 'gcroots', `nixfleet-standin-seed-${k}`));
  }
  for (const n of gens) {
    const out =
      spec.kind === 'nixos'
        ? path.join(staging, `nixos-system-${spec.name}-seed-${n}`)
        : path.join(staging, String(n), 'home-manager-generation');
    await fsp.mkdir(path.dirname(out), { recursive: true });
    await runSh(spec.kind === 'nixos' ? TOPLEVEL_BUILDER : HM_BUILDER, {
      out,
      host: spec.name,
      version: `seed-${n}`,
      lockHash: 'seed',
      ...boot,
    });
    seeds.push(out);
  }
  const { stdout } = await execFileP(path.join(nixEnv.NIXFLEET_REAL_NIX_BIN as string, 'nix-store'), ['--add', ...seeds], {
    env: { ...process.env, ...nixEnv },
  });
  const storePaths = stdout.trim().split('\n');
  if (storePaths.length !== gens.length || !storePaths.every((p) => STORE_PATH.test(p))) {
    throw new Error(`${spec.name}: nix-store --add printed ${stdout}`);
  }
  await fsp.rm(staging, { recursive: true, force: true });
  if (spec.kind === 'nixos') {
    // A real toplevel's closure holds its kernel, initrd and modules: register them as its references
    // (nix-store --add recorded none), so `nix store diff-closures` and GC see what a NixOS host has.
    const refs = Object.values(boot).sort();
    const validity = storePaths.map((p) => `${p}\n\n${refs.length}\n${refs.join('\n')}\n`).join('');
    const r = spawnSync(path.join(nixEnv.NIXFLEET_REAL_NIX_BIN as string, 'nix-store'), ['--register-validity', '--reregister'], { input: validity, env: { ...process.env, ...nixEnv }, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${spec.name}: registering the seeded toplevels' references: ${r.stderr}`);
  }
  const current = storePaths[storePaths.length - 1] as string;
  const currentN = gens[gens.length - 1] as number;
  if (spec.kind === 'nixos') {
    const profiles = path.join(dir, 'profiles');
    gens.forEach((n, i) => fs.symlinkSync(storePaths[i] as string, path.join(profiles, `system-${n}-link`)));
    fs.symlinkSync(`system-${currentN}-link`, path.join(profiles, 'system'));
    fs.symlinkSync(current, path.join(dir, 'run', 'current-system'));
    fs.symlinkSync(current, path.join(dir, 'run', 'booted-system'));
    fs.writeFileSync(path.join(dir, 'control', 'boot-default'), `${currentN} ${current}\n`);
  } else {
    const state = path.join(dir, 'home', '.local', 'state');
    const profiles = path.join(state, 'nix', 'profiles');
    await fsp.mkdir(profiles, { recursive: true });
    await fsp.mkdir(path.join(state, 'home-manager', 'gcroots'), { recursive: true });
    gens.forEach((n, i) => fs.symlinkSync(storePaths[i] as string, path.join(profiles, `home-manager-${n}-link`)));
    fs.symlinkSync(`home-manager-${currentN}-link`, path.join(profiles, 'home-manager'));
    fs.symlinkSync(current, path.join(state, 'home-manager', 'gcroots', 'current-home'));
  }
}

export async function startFleet(specs: StandinHostSpec[], opts: StartFleetOptions = {}): Promise<StandinFleet> {
  checkPrerequisites();
  const names = new Set<string>();
  for (const s of specs) {
    if (!HOST_NAME.test(s.name)) throw new Error(`startFleet: invalid host name ${JSON.stringify(s.name)}`);
    if (names.has(s.name)) throw new Error(`startFleet: duplicate host ${s.name}`);
    if (s.kind !== 'nixos' && s.kind !== 'home-manager') throw new Error(`startFleet: invalid kind for ${s.name}`);
    const gens = s.generations ?? [40, 41, 42];
    if (gens.length === 0 || gens.some((n) => !Number.isInteger(n) || n < 1) || new Set(gens).size !== gens.length) {
      throw new Error(`startFleet: ${s.name}: generations must be distinct positive integers`);
    }
    names.add(s.name);
  }
  const createdBase = !opts.baseDir;
  const baseDir = opts.baseDir ?? (await fsp.mkdtemp(path.join(os.tmpdir(), 'nixfleet-fleet-')));
  if (!SAFE_PATH.test(baseDir)) throw new Error(`startFleet: baseDir must match ${SAFE_PATH}: ${baseDir}`);
  await fsp.mkdir(baseDir, { recursive: true });
  if (createdBase && !opts.keep) ownedBaseDirs.add(baseDir);
  installExitHook();
  const fleetId = `nixfleet_${process.pid}_${++fleetSeq}`;
  const realBin = realNixBinDir();
  const allowlist = opts.allowlist ?? process.env.NIXFLEET_STANDIN_ALLOWLIST === '1';
  if (allowlist && !fs.existsSync(ALLOWLIST_SCRIPT)) throw new Error(`startFleet: allowlist script missing: ${ALLOWLIST_SCRIPT}`);

  const client = await sshKeygen(path.join(baseDir, 'client_ed25519'), 'nixfleet-deployer');
  const hosts: StandinHost[] = [];
  const stopAll = async () => {
    for (const h of hosts) await h.stop();
  };
  try {
    for (const [i, spec] of specs.entries()) {
      const dir = path.join(baseDir, 'hosts', spec.name);
      for (const sub of ['profiles', 'gcroots/auto', 'home/.ssh', 'run/sshd', 'etc/nix', 'control/gc-empty']) {
        await fsp.mkdir(path.join(dir, sub), { recursive: true });
      }
      await fsp.chmod(path.join(dir, 'home'), 0o700);
      await fsp.chmod(path.join(dir, 'home', '.ssh'), 0o700);
      const keyOptions = allowlist ? `restrict,command="${ALLOWLIST_SCRIPT}" ` : '';
      await fsp.writeFile(path.join(dir, 'home', '.ssh', 'authorized_keys'), `${keyOptions}${client.public} nixfleet-deployer\n`, { mode: 0o600 });
      await fsp.writeFile(
        path.join(dir, 'etc', 'nix', 'nix.conf'),
        // build-users-group empty: builds run as root, with no `nixbld` group needed (Debian's nix-bin
        // creates none, and the default `nixbld` fails every build where it does not exist).
        'sandbox = false\nsubstituters =\nbuild-users-group =\nexperimental-features = nix-command flakes\n',
      );
      // The host's GC roots, as on NixOS: its profiles, /run/current-system; Home Manager's
      // current-home is an indirect root (HM registers it with `nix-store --add-root`).
      await fsp.symlink('/nix/var/nix/profiles', path.join(dir, 'gcroots', 'profiles'));
      await fsp.symlink('/run/current-system', path.join(dir, 'gcroots', 'current-system'));
      await fsp.symlink('/run/booted-system', path.join(dir, 'gcroots', 'booted-system'));
      if (spec.kind === 'home-manager') {
        await fsp.symlink('/root/.local/state/home-manager/gcroots/current-home', path.join(dir, 'gcroots', 'auto', 'nixfleet-standin-current-home'));
      }
      await fsp.writeFile(path.join(dir, 'control', 'gc-empty-file'), '');
      await fsp.writeFile(path.join(dir, 'control', 'gc-deleted'), '');
      execFileSync('mkfifo', [path.join(dir, 'control', 'hang.fifo')]);
      execFileSync('mkfifo', [path.join(dir, 'control', 'hang-build.fifo')]);
      await fsp.writeFile(path.join(dir, 'control', 'commands.log'), '');
      if (allowlist) await fsp.writeFile(path.join(dir, 'control', 'allowlist.on'), '');
      const nixEnv = {
        NIX_CONF_DIR: path.join(dir, 'etc', 'nix'),
        NIXFLEET_STANDIN_CONTROL: path.join(dir, 'control'),
        NIXFLEET_REAL_NIX_BIN: realBin,
      };
      await seedHost(spec, dir, spec.generations ?? [40, 41, 42], nixEnv);

      // The host's settings for its tools (host-init.sh copies them to /run/nixfleet-standin/env), and
      // the manager's PATH for transient units: util-linux tools only (no Nix, no coreutils), as on NixOS.
      const managerPath = path.join(dir, 'etc', 'manager-path');
      await fsp.mkdir(managerPath, { recursive: true });
      for (const tool of MANAGER_PATH_TOOLS) {
        const real = ['/usr/bin', '/bin', '/usr/sbin', '/sbin'].map((d) => path.join(d, tool)).find((f) => fs.existsSync(f));
        if (real) await fsp.symlink(real, path.join(managerPath, tool));
      }
      await fsp.writeFile(
        path.join(dir, 'etc', 'standin.env'),
        Object.entries({ ...nixEnv, NIXFLEET_STANDIN_BIN: BIN_DIR, NIXFLEET_STANDIN_MANAGER_PATH: managerPath })
          .map(([k, v]) => `export ${k}='${v}'\n`)
          .join(''),
      );

      const keyFile = path.join(dir, 'etc', 'ssh_host_ed25519_key');
      const hostKey = await sshKeygen(keyFile, `root@${spec.name}`);
      const { address, port } = await allocateEndpoint();
      const envLine = [
        `PATH=${BIN_DIR}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
        ...Object.entries(nixEnv).map(([k, v]) => `${k}=${v}`),
        `NIXFLEET_ALLOWLIST_LOG=${path.join(dir, 'control', 'allowlist.log')}`,
        // The host owner's vetted health checks (on a real host /etc/nixfleet/allowed-checks).
        `NIXFLEET_ALLOWLIST_CHECKS=${path.join(dir, 'control', 'allowed-checks')}`,
      ].join(' ');
      await fsp.writeFile(
        path.join(dir, 'etc', 'sshd_config'),
        [
          `ListenAddress ${address}:${port}`,
          `HostKey ${keyFile}`,
          'PidFile none',
          'AuthorizedKeysFile .ssh/authorized_keys',
          'PermitRootLogin prohibit-password',
          'PubkeyAuthentication yes',
          'PasswordAuthentication no',
          'KbdInteractiveAuthentication no',
          'UsePAM no',
          'PrintMotd no',
          'PrintLastLog no',
          'AcceptEnv none',
          'MaxStartups 100',
          'MaxSessions 64',
          'LogLevel INFO',
          `SetEnv ${envLine}`,
          '',
        ].join('\n'),
      );
      const host = new StandinHost(spec.name, spec.kind, address, port, hostKey.public, dir, `${fleetId}_${i}`);
      hosts.push(host);
    }
    await Promise.all(hosts.map((h) => h.start(opts.startTimeoutMs ?? 10_000)));
  } catch (err) {
    await stopAll();
    if (createdBase && !opts.keep) {
      await fsp.rm(baseDir, { recursive: true, force: true });
      ownedBaseDirs.delete(baseDir);
    }
    throw err;
  }

  const byName = new Map(hosts.map((h) => [h.name, h]));
  return {
    baseDir,
    hosts,
    host(name: string): StandinHost {
      const h = byName.get(name);
      if (!h) throw new Error(`stand-in fleet: no host ${name}`);
      return h;
    },
    clientPrivateKey: client.private,
    clientPublicKey: `${client.public} nixfleet-deployer`,
    knownHosts: hosts.map((h) => h.knownHostsLine).join('\n') + '\n',
    async stop(): Promise<void> {
      await stopAll();
      if (createdBase && !opts.keep) {
        await fsp.rm(baseDir, { recursive: true, force: true });
        ownedBaseDirs.delete(baseDir);
      }
    },
  };
}
