/**
 * HostSession: one SSH connection to one host, reused for all of that host's steps.
 *
 * - The host key is pinned (known_hosts text and/or an explicit public key): an unknown or changed
 *   key refuses the connection with HostKeyMismatchError before authentication.
 * - TCP_NODELAY on connect (exec on a reused connection ~3 ms instead of ~44 ms on loopback).
 * - Keepalive: a link that silently drops packets is noticed after about
 *   keepaliveIntervalMs * (keepaliveCountMax + 1) and every running command fails with
 *   ConnectionLostError (outcome unknown).
 * - exec() never throws for a non-zero exit; run() does (CommandFailedError).
 * - If the connection is gone when a command is about to start, exec() reconnects first (nothing
 *   has run yet, so that is safe); a connection lost WHILE a command runs is never retried here.
 */
import { Client } from 'ssh2';
import type { ClientChannel, ConnectConfig } from 'ssh2';
import {
  AuthenticationFailedError,
  CommandFailedError,
  CommandTimeoutError,
  CommandCancelledError,
  ConnectionLostError,
  HostKeyMismatchError,
  HostUnreachableError,
} from './errors';
import { fingerprint, parseKnownHosts, parsePublicKey, verifyHostKey } from './known-hosts';
import type { KnownHostEntry } from './known-hosts';

export interface HostSessionOptions {
  /** Address to connect to (DNS name or IP). */
  address: string;
  port?: number;
  user: string;
  privateKey: string | Buffer;
  passphrase?: string;
  /** known_hosts text; entries for `[address]:port` (or `address` on port 22) pin the host key. */
  knownHosts?: string;
  /** The host's public key (`ssh-ed25519 AAAA…`), pinned in addition to knownHosts. */
  hostPublicKey?: string;
  /** Name used in errors and logs (default address:port). */
  label?: string;
  /** Deadline for TCP connect + SSH handshake + authentication (default 10 000 ms). */
  readyTimeoutMs?: number;
  /** Keepalive probe interval (default 5 000 ms; 0 disables). */
  keepaliveIntervalMs?: number;
  /** Unanswered probes tolerated before the connection is declared lost (default 3). */
  keepaliveCountMax?: number;
  /** Bytes of stdout kept per command (default 4 MiB; beyond that the head is kept and the rest dropped). */
  maxStdoutBytes?: number;
  /** Optional debug sink. */
  debug?: (msg: string) => void;
}

export interface ExecOptions {
  /** Deadline for the command; on expiry the remote process is sent KILL and CommandTimeoutError thrown. */
  timeoutMs?: number;
  /** Cancellation: on abort the remote process is sent KILL and CommandCancelledError thrown. */
  signal?: AbortSignal;
}

export interface ExecResult {
  /** Exit status, or null if the command was killed by a signal. */
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  durationMs: number;
}

const STDERR_KEEP = 256 * 1024;

function tail(s: string, n = 2000): string {
  return s.length > n ? s.slice(-n) : s;
}

export class HostSession {
  private client: Client | null = null;
  private connecting: Promise<Client> | null = null;
  private readonly pins: KnownHostEntry[];
  private readonly port: number;
  private closedByUser = false;
  /** Callbacks to fail every running command when the connection goes away. */
  private readonly running = new Set<(reason: string) => void>();
  private lastLossReason = 'connection closed';

  private constructor(private readonly opts: HostSessionOptions) {
    this.port = opts.port ?? 22;
    this.pins = parseKnownHosts(opts.knownHosts ?? '');
    if (opts.hostPublicKey) {
      const { keyType, key } = parsePublicKey(opts.hostPublicKey);
      this.pins.push({ marker: null, patterns: `[${opts.address}]:${this.port},${opts.address}`, keyType, key });
    }
  }

  get label(): string {
    return this.opts.label ?? `${this.opts.address}:${this.port}`;
  }

  /** Connected now (not a promise that it still is: a cut link is only noticed by keepalive). */
  get connected(): boolean {
    return this.client !== null;
  }

  /** Opens the connection (host key verified before anything else). */
  static async connect(opts: HostSessionOptions): Promise<HostSession> {
    const s = new HostSession(opts);
    await s.ensureConnected();
    return s;
  }

  private ensureConnected(): Promise<Client> {
    if (this.closedByUser) return Promise.reject(new Error(`${this.label}: session closed`));
    if (this.client) return Promise.resolve(this.client);
    if (!this.connecting) {
      this.connecting = this.openConnection().finally(() => {
        this.connecting = null;
      });
    }
    return this.connecting;
  }

  private openConnection(): Promise<Client> {
    const { opts } = this;
    const label = this.label;
    return new Promise<Client>((resolve, reject) => {
      const client = new Client();
      let ready = false;
      let keyRejection: HostKeyMismatchError | null = null;
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        client.end();
        client.destroy();
        reject(err);
      };
      const config: ConnectConfig = {
        host: opts.address,
        port: this.port,
        username: opts.user,
        privateKey: opts.privateKey,
        ...(opts.passphrase ? { passphrase: opts.passphrase } : {}),
        readyTimeout: opts.readyTimeoutMs ?? 10_000,
        keepaliveInterval: opts.keepaliveIntervalMs ?? 5_000,
        keepaliveCountMax: opts.keepaliveCountMax ?? 3,
        hostVerifier: (key: Buffer): boolean => {
          const verdict = verifyHostKey(this.pins, opts.address, this.port, key);
          if (verdict.ok) return true;
          keyRejection = new HostKeyMismatchError(label, verdict.reason, fingerprint(key));
          return false;
        },
        ...(opts.debug ? { debug: opts.debug } : {}),
      };
      client.on('ready', () => {
        ready = true;
        settled = true;
        client.setNoDelay(true);
        this.client = client;
        resolve(client);
      });
      client.on('error', (err: Error & { level?: string; code?: string }) => {
        if (!ready) {
          if (keyRejection) return fail(keyRejection);
          if (err.level === 'client-authentication') return fail(new AuthenticationFailedError(label, opts.user, { cause: err }));
          if (err.level === 'client-timeout') return fail(new HostUnreachableError(label, 'SSH handshake timed out', { cause: err }));
          return fail(new HostUnreachableError(label, err.code ?? err.message, { cause: err }));
        }
        this.lastLossReason = err.message === 'Keepalive timeout' ? 'keepalive timeout: the host stopped answering' : err.message;
      });
      client.on('close', () => {
        if (!ready) {
          if (keyRejection) return fail(keyRejection);
          return fail(new HostUnreachableError(label, 'connection closed during the handshake'));
        }
        if (this.client === client) this.client = null;
        const reason = this.lastLossReason;
        this.lastLossReason = 'connection closed';
        for (const abort of [...this.running]) abort(reason);
      });
      try {
        client.connect(config);
      } catch (err) {
        fail(err as Error);
      }
    });
  }

  /**
   * Runs `command` (a shell command line: every interpolated value must already be quoted, see
   * shell.ts). Resolves with the exit status whatever it is. Throws ConnectionLostError if the
   * channel closes without an exit status, CommandTimeoutError on timeout, HostUnreachableError
   * if a needed reconnect fails.
   */
  async exec(command: string, execOpts: ExecOptions = {}): Promise<ExecResult> {
    const client = await this.ensureConnected();
    const label = this.label;
    const maxStdout = this.opts.maxStdoutBytes ?? 4 * 1024 * 1024;
    const started = Date.now();
    return new Promise<ExecResult>((resolve, reject) => {
      let stdout = '';
      let stderr = '';
      let exit: { code: number | null; signal: string | null } | null = null;
      let done = false;
      let timer: NodeJS.Timeout | null = null;
      let channel: ClientChannel | null = null;
      const finish = (err: Error | null, result?: ExecResult) => {
        if (done) return;
        done = true;
        if (timer) clearTimeout(timer);
        this.running.delete(abort);
        execOpts.signal?.removeEventListener('abort', onCancel);
        if (err) reject(err);
        else resolve(result as ExecResult);
      };
      const abort = (reason: string) => finish(new ConnectionLostError(label, command, reason));
      this.running.add(abort);
      const kill = () => {
        const ch = channel;
        if (ch) {
          try {
            ch.signal('KILL');
          } catch {
            // channel already gone
          }
          ch.close();
        }
      };
      const onCancel = () => {
        finish(new CommandCancelledError(label, command));
        kill();
      };
      if (execOpts.signal) {
        if (execOpts.signal.aborted) return finish(new CommandCancelledError(label, command));
        execOpts.signal.addEventListener('abort', onCancel, { once: true });
      }
      if (execOpts.timeoutMs !== undefined) {
        timer = setTimeout(() => {
          const ch = channel;
          finish(new CommandTimeoutError(label, command, execOpts.timeoutMs as number));
          if (ch) {
            try {
              ch.signal('KILL');
            } catch {
              // channel already gone
            }
            ch.close();
          }
        }, execOpts.timeoutMs);
      }
      try {
        client.exec(command, (err, ch) => {
          if (err) {
            // The channel could not be opened: the command did not start.
            return finish(
              this.client === client
                ? new HostUnreachableError(label, `could not open a channel: ${err.message}`, { cause: err })
                : new ConnectionLostError(label, command, err.message, { cause: err }),
            );
          }
          channel = ch;
          if (done) {
            ch.close();
            return;
          }
          ch.setEncoding('utf8');
          ch.stderr.setEncoding('utf8');
          ch.on('data', (d: string) => {
            if (stdout.length < maxStdout) stdout += d;
          });
          ch.stderr.on('data', (d: string) => {
            stderr += d;
            if (stderr.length > 2 * STDERR_KEEP) stderr = stderr.slice(-STDERR_KEEP);
          });
          ch.on('exit', (code: number | null, signal?: string) => {
            exit = { code: typeof code === 'number' ? code : null, signal: signal ?? null };
          });
          ch.on('close', () => {
            if (!exit) {
              const reason = this.client === client ? 'channel closed without an exit status' : this.lastLossReason;
              return finish(new ConnectionLostError(label, command, reason));
            }
            finish(null, { code: exit.code, signal: exit.signal, stdout, stderr: tail(stderr, STDERR_KEEP), durationMs: Date.now() - started });
          });
        });
      } catch (err) {
        finish(new ConnectionLostError(label, command, (err as Error).message, { cause: err }));
      }
    });
  }

  /** exec() that throws CommandFailedError unless the command exits 0. */
  async run(command: string, execOpts: ExecOptions = {}): Promise<ExecResult> {
    const r = await this.exec(command, execOpts);
    if (r.code !== 0) throw new CommandFailedError(this.label, command, r.code, r.signal, tail(r.stderr));
    return r;
  }

  /** Closes the connection; running commands fail with ConnectionLostError. */
  async close(): Promise<void> {
    this.closedByUser = true;
    const client = this.client ?? (this.connecting ? await this.connecting.catch(() => null) : null);
    if (!client) return;
    await new Promise<void>((resolve) => {
      client.once('close', () => resolve());
      client.end();
      // end() waits for the server; a dead link never answers.
      setTimeout(() => {
        client.destroy();
        resolve();
      }, 1000).unref();
    });
    this.client = null;
  }
}
