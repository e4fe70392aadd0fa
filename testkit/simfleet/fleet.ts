/**
 * The simulated fleet: one Node process serves thousands of SSH endpoints with ssh2's Server, each
 * host on a loopback address of its own (127.77.0.1, 127.77.0.2, …: simAddress) and a port the kernel
 * gives it, with its own ed25519 host key (pinned by a `[ADDRESS]:PORT` known_hosts line, as the
 * product addresses hosts by address and port), accepting
 * only the deployer's key for `root`. Behind each endpoint a SimHost (./host.ts) answers exactly the
 * commands the allowlist admits. The real sshd stand-in (testkit/fleet) stays the reference for
 * correctness; tests/simfleet checks that both give the same outcomes.
 *
 * Faults: per host (SimHost.failActivation / switchExit / failBuild / dropConnectionOn), and at the
 * transport: `down()` stops listening (ECONNREFUSED, as a dead host), `dropConnections()` cuts every
 * open connection (a power cut), `up()` listens again on the same port with the same key. A reboot
 * (`systemctl reboot` on the host) is down() for the host's `rebootDownMs`, then up() once it has
 * booted (SimHost.failNextBoot: never, or onto the wrong generation; SimHost.restart() brings it back).
 */
import type * as net from 'node:net';
import { Server, utils } from 'ssh2';
import type { Connection, ParsedKey, ServerChannel } from 'ssh2';
import { ed25519Pair } from './keys';
import { SimHost, simFlake, type SimHostSpec, type SimLatency } from './host';

export interface StartSimFleetOptions {
  /** Latency of every host (a host's own `latency` can be changed later). */
  latency?: SimLatency;
  /** What a flake ref resolves to (see SimFlake.resolve); default its `rev=`. */
  resolveFlake?: (ref: string) => string | null;
  /** Health-check commands every host's owner allowed (command → exit code). */
  allowedChecks?: Record<string, number>;
  /** How long a host stays down after `systemctl reboot` (ms; default 1500, as the stand-in's rebootDownMs; a host's own `rebootDownMs` can be changed later). */
  rebootDownMs?: number;
  /** Hosts started at once (default 200: each listen is cheap, the key generation is not free). */
  startConcurrency?: number;
}

export interface SimFleetStats {
  /** SSH connections open now (authenticated or not), over all endpoints. */
  open: number;
  /** The most that were open at once since the start (or resetPeak()). */
  peakOpen: number;
  /** Connections accepted since the start. */
  accepted: number;
  /** Commands run (allowed or refused). */
  commands: number;
}

const HOST_NAME = /^[A-Za-z0-9][A-Za-z0-9-]{0,62}$/;

/**
 * The loopback address of the fleet's `i`-th host (0-based): 127.77.0.1 … 127.77.0.250, 127.77.1.1 …,
 * then 127.78.… past 64,000 hosts. Off 127.0.0.1, so thousands of listening ports never take the ones a
 * dev server or an API beside them picks there (Linux routes all of 127.0.0.0/8 to lo; a port is
 * in use per address).
 */
export function simAddress(i: number): string {
  return `127.${77 + Math.floor(i / 64_000)}.${Math.floor((i % 64_000) / 250)}.${(i % 250) + 1}`;
}

export class SimEndpoint {
  readonly user = 'root';
  private server: Server | null = null;
  private readonly connections = new Set<Connection>();
  port = 0;

  constructor(
    readonly host: SimHost,
    private readonly hostKey: { private: string; public: string },
    private readonly clientKey: ParsedKey,
    private readonly stats: { open: number; peakOpen: number; accepted: number; commands: number },
    readonly address: string,
  ) {
    // A reboot takes the host off the network and brings it back (SimHost.reboot).
    host.attachPower({ down: () => this.down(), up: () => this.up() });
  }

  get name(): string {
    return this.host.name;
  }

  get kind() {
    return this.host.kind;
  }

  get knownHostsLine(): string {
    return `[${this.address}]:${this.port} ${this.hostKey.public}`;
  }

  /** Connections open to this endpoint now. */
  get openConnections(): number {
    return this.connections.size;
  }

  async up(): Promise<void> {
    if (this.server) return;
    const server = new Server({ hostKeys: [this.hostKey.private] }, (client) => this.onClient(client));
    server.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, this.address, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address();
    this.port = typeof addr === 'object' && addr ? addr.port : this.port;
    this.server = server;
  }

  /** Stops listening and cuts every open connection: connecting gives ECONNREFUSED, as to a dead host. */
  async down(): Promise<void> {
    const s = this.server;
    this.server = null;
    this.dropConnections();
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  /** Every open connection is cut (no exit status for a running command). */
  dropConnections(): void {
    for (const c of [...this.connections]) c.end();
    for (const c of [...this.connections]) (c as unknown as { _sock?: net.Socket })._sock?.destroy();
  }

  private onClient(client: Connection): void {
    this.connections.add(client);
    this.stats.accepted += 1;
    this.stats.open += 1;
    if (this.stats.open > this.stats.peakOpen) this.stats.peakOpen = this.stats.open;
    let closedResolve!: () => void;
    const closed = new Promise<void>((r) => (closedResolve = r));
    let gone = false;
    const onGone = () => {
      if (gone) return;
      gone = true;
      this.connections.delete(client);
      this.stats.open -= 1;
      closedResolve();
    };
    client.on('close', onGone);
    client.on('end', onGone);
    client.on('error', () => onGone());
    client.on('authentication', (ctx) => {
      const k = this.clientKey;
      if (ctx.method !== 'publickey' || ctx.username !== this.user) return ctx.reject(['publickey']);
      if (ctx.key.algo !== k.type || !ctx.key.data.equals(k.getPublicSSH())) return ctx.reject(['publickey']);
      if (ctx.signature && ctx.blob) {
        if (k.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true) return ctx.accept();
        return ctx.reject(['publickey']);
      }
      return ctx.accept();
    });
    client.on('ready', () => {
      client.on('session', (acceptSession) => {
        const session = acceptSession();
        // sshd refuses to signal a forced-command session (the allowlist): signals are ignored.
        session.on('signal', (accept) => accept?.());
        session.on('pty', (_a, reject) => reject?.());
        session.on('shell', (_a, reject) => reject?.());
        session.on('subsystem', (_a, reject) => reject?.());
        session.on('env', (accept) => accept?.());
        session.on('exec', (accept, _reject, info) => {
          const ch = accept();
          this.run(client, ch, info.command, closed);
        });
      });
    });
  }

  private run(client: Connection, ch: ServerChannel, command: string, connectionClosed: Promise<void>): void {
    this.stats.commands += 1;
    let channelClosed!: () => void;
    const closedP = Promise.race([connectionClosed, new Promise<void>((r) => (channelClosed = r))]);
    ch.on('close', () => channelClosed());
    ch.on('error', () => channelClosed());
    void this.host.exec(command, { closed: closedP }).then(
      (r) => {
        if (r.drop) {
          (client as unknown as { _sock?: net.Socket })._sock?.destroy();
          return;
        }
        if (r.code === null) return;
        try {
          if (r.stdout) ch.write(r.stdout);
          if (r.stderr) ch.stderr.write(r.stderr);
          ch.exit(r.code);
          ch.end();
        } catch {
          // the channel went away meanwhile
        }
      },
      () => {
        try {
          ch.exit(1);
          ch.end();
        } catch {
          // gone
        }
      },
    );
  }
}

export interface SimFleet {
  readonly hosts: readonly SimEndpoint[];
  host(name: string): SimEndpoint;
  /** OpenSSH-format ed25519 private key accepted by every endpoint for `root`. */
  readonly clientPrivateKey: string;
  readonly clientPublicKey: string;
  /** known_hosts text pinning every endpoint's own key. */
  readonly knownHosts: string;
  stats(): SimFleetStats;
  /** Starts counting peakOpen again from the connections open now. */
  resetPeak(): void;
  stop(): Promise<void>;
}

export async function startSimFleet(specs: SimHostSpec[], opts: StartSimFleetOptions = {}): Promise<SimFleet> {
  const names = new Set<string>();
  for (const s of specs) {
    if (!HOST_NAME.test(s.name)) throw new Error(`startSimFleet: invalid host name ${JSON.stringify(s.name)}`);
    if (names.has(s.name)) throw new Error(`startSimFleet: duplicate host ${s.name}`);
    if (s.kind !== 'nixos' && s.kind !== 'home-manager') throw new Error(`startSimFleet: invalid kind for ${s.name}`);
    const gens = s.generations ?? [40, 41, 42];
    if (gens.length === 0 || gens.some((n) => !Number.isInteger(n) || n < 1) || new Set(gens).size !== gens.length) {
      throw new Error(`startSimFleet: ${s.name}: generations must be distinct positive integers`);
    }
    names.add(s.name);
  }
  const client = ed25519Pair('nixfleet-deployer');
  const parsed = utils.parseKey(client.public);
  if (parsed instanceof Error) throw parsed;
  const clientKey = (Array.isArray(parsed) ? parsed[0] : parsed) as ParsedKey;
  const flake = simFlake(specs, opts.resolveFlake);
  const stats = { open: 0, peakOpen: 0, accepted: 0, commands: 0 };
  const endpoints = specs.map((spec, i) => {
    const host = new SimHost(spec, flake);
    if (opts.latency) host.latency = { ...opts.latency };
    if (opts.rebootDownMs !== undefined) host.rebootDownMs = opts.rebootDownMs;
    for (const [c, code] of Object.entries(opts.allowedChecks ?? {})) host.allowedChecks.set(c, code);
    return new SimEndpoint(host, ed25519Pair(`root@${spec.name}`), clientKey, stats, simAddress(i));
  });
  const conc = opts.startConcurrency ?? 200;
  try {
    for (let i = 0; i < endpoints.length; i += conc) await Promise.all(endpoints.slice(i, i + conc).map((e) => e.up()));
  } catch (err) {
    await Promise.all(endpoints.map((e) => e.down()));
    throw err;
  }
  const byName = new Map(endpoints.map((e) => [e.name, e]));
  return {
    hosts: endpoints,
    host(name) {
      const e = byName.get(name);
      if (!e) throw new Error(`simulated fleet: no host ${name}`);
      return e;
    },
    clientPrivateKey: client.private,
    clientPublicKey: `${client.public} nixfleet-deployer`,
    get knownHosts() {
      return endpoints.map((e) => e.knownHostsLine).join('\n') + '\n';
    },
    stats: () => ({ ...stats }),
    resetPeak() {
      stats.peakOpen = stats.open;
    },
    async stop() {
      for (const e of endpoints) e.host.shutdown();
      await Promise.all(endpoints.map((e) => e.down()));
    },
  };
}
