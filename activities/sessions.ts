import { Context } from '@temporalio/activity';
import { CommandCancelledError, HostSession } from '../src/hosts';
import type { HostSpec } from '../src/domain/deployment';

export interface SshCredentials {
  /** The deployer's private key (OpenSSH or PEM). Never logged, never in workflow history. */
  privateKey: string | Buffer;
  /** known_hosts text: every host's key pinned; an unknown or changed key refuses to connect. */
  knownHosts: string;
  readyTimeoutMs?: number;
  keepaliveIntervalMs?: number;
  keepaliveCountMax?: number;
  /**
   * SSH connections this worker keeps open at most (default 54: the worker's 50 concurrent activities
   * plus a few). A step that needs a connection beyond it first closes the least recently used idle
   * one, or waits for one to be released. Connectivity confirmations (a deliberately new connection)
   * are not pooled and not counted.
   */
  maxConnections?: number;
  /** A connection nobody used for this long is closed (default 10 s). */
  idleMs?: number;
}

export const DEFAULT_MAX_SSH_CONNECTIONS = 54;
export const DEFAULT_SSH_IDLE_MS = 10_000;

/**
 * known_hosts indexed by host name, so that a connection is handed only the lines that can match its
 * host: with 10,000 hosts, parsing and matching the whole file on every connect costs tens of
 * milliseconds each. Lines whose patterns are all literal names go under those names (lower-cased:
 * matching is case-insensitive); lines with a wildcard, a negation or a hashed name, and every
 * @cert-authority / @revoked line with one, are given to every host, as before.
 */
export function indexKnownHosts(text: string): (address: string, port: number) => string {
  const byName = new Map<string, string[]>();
  const always: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    const patterns = (fields[0]?.startsWith('@') ? fields[1] : fields[0]) ?? '';
    const names = patterns.split(',');
    if (names.some((n) => n.length === 0 || /[*?!]/.test(n) || n.startsWith('|'))) {
      always.push(line);
      continue;
    }
    for (const n of new Set(names.map((x) => x.toLowerCase()))) {
      const list = byName.get(n);
      if (list) list.push(line);
      else byName.set(n, [line]);
    }
  }
  return (address, port) => {
    const name = (port === 22 ? address : `[${address}]:${port}`).toLowerCase();
    return [...always, ...(byName.get(name) ?? [])].join('\n') + '\n';
  };
}

function activitySignal(): AbortSignal | undefined {
  try {
    return Context.current().cancellationSignal;
  } catch {
    return undefined;
  }
}

interface Entry {
  session: Promise<HostSession>;
  timer?: NodeJS.Timeout;
  users: number;
}

/**
 * One SSH connection per host, reused across that host's steps (record, switch, verify, rollback),
 * closed after idleMs unused, and at most maxConnections open: a step that needs one more first
 * closes the least recently used idle connection, else waits (first come, first served) until one is
 * released. A connection that failed is dropped, so the next step (or the retry) connects afresh.
 */
export class SessionPool {
  /** In least-recently-used order (an entry is moved to the end when used). */
  private readonly sessions = new Map<string, Entry>();
  private readonly waiters: Array<() => void> = [];
  /** Connections being closed: they count against the bound until the host has seen them go. */
  private closing = 0;
  private readonly knownHostsFor: (address: string, port: number) => string;
  private readonly idleMs: number;
  private readonly max: number;

  constructor(private readonly creds: SshCredentials) {
    this.knownHostsFor = indexKnownHosts(creds.knownHosts);
    this.idleMs = creds.idleMs ?? DEFAULT_SSH_IDLE_MS;
    this.max = creds.maxConnections ?? DEFAULT_MAX_SSH_CONNECTIONS;
    if (!Number.isInteger(this.max) || this.max < 1) throw new Error(`ssh.maxConnections: a positive whole number; got ${this.max}`);
    if (!Number.isFinite(this.idleMs) || this.idleMs < 0) throw new Error(`ssh.idleMs: milliseconds, 0 or more; got ${this.idleMs}`);
  }

  private key(h: HostSpec): string {
    return `${h.user}@${h.address}:${h.port}`;
  }

  private open(host: HostSpec, key: string): Entry {
    const session = HostSession.connect({
      address: host.address,
      port: host.port,
      user: host.user,
      privateKey: this.creds.privateKey,
      knownHosts: this.knownHostsFor(host.address, host.port),
      label: host.name,
      readyTimeoutMs: this.creds.readyTimeoutMs ?? 10_000,
      keepaliveIntervalMs: this.creds.keepaliveIntervalMs ?? 5_000,
      keepaliveCountMax: this.creds.keepaliveCountMax ?? 3,
    });
    const entry: Entry = { session, users: 0 };
    this.sessions.set(key, entry);
    session.catch(() => {
      if (this.sessions.get(key) === entry) {
        this.sessions.delete(key);
        this.wake();
      }
    });
    return entry;
  }

  /** The entry for the host, opening one within the bound (closing an idle one, or waiting until cancelled). */
  private async acquire(host: HostSpec, key: string, signal?: AbortSignal): Promise<Entry> {
    for (;;) {
      // The caller is counted as a user before anything awaits, so no one closes it as idle meanwhile.
      const existing = this.sessions.get(key);
      if (existing) {
        // Most recently used: to the end of the eviction order.
        this.sessions.delete(key);
        this.sessions.set(key, existing);
        existing.users += 1;
        return existing;
      }
      if (this.sessions.size + this.closing < this.max) {
        const e = this.open(host, key);
        e.users += 1;
        return e;
      }
      const idle = [...this.sessions.entries()].find(([, e]) => e.users === 0);
      if (idle) {
        await this.drop(idle[0], idle[1]);
        continue;
      }
      if (signal?.aborted) throw new CommandCancelledError(host.name, 'waiting for an SSH connection');
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        const onAbort = (): void => {
          const i = this.waiters.indexOf(wake);
          if (i >= 0) this.waiters.splice(i, 1);
          resolve();
        };
        this.waiters.push(wake);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    }
  }

  private wake(): void {
    this.waiters.shift()?.();
  }

  /**
   * Runs `fn` with the host's connection. Waiting for one (the bound reached, none idle) ends with
   * CommandCancelledError when `signal` aborts (default: the calling activity's cancellation, which
   * reaches it through the heartbeats the long steps send).
   */
  async use<T>(host: HostSpec, fn: (session: HostSession) => Promise<T>, signal: AbortSignal | undefined = activitySignal()): Promise<T> {
    const key = this.key(host);
    const entry = await this.acquire(host, key, signal);
    if (entry.timer) clearTimeout(entry.timer);
    delete entry.timer;
    try {
      return await fn(await entry.session);
    } catch (err) {
      // Any failure may have left the connection unusable: start the next step from a fresh one.
      if (this.sessions.get(key) === entry) {
        this.sessions.delete(key);
        void this.close(entry);
      }
      throw err;
    } finally {
      entry.users -= 1;
      if (entry.users === 0) {
        if (this.sessions.get(key) === entry) {
          entry.timer = setTimeout(() => void this.drop(key, entry), this.idleMs);
          entry.timer.unref();
        }
        // Someone may wait for a connection: this one is idle now (acquire closes it if the bound is reached).
        this.wake();
      }
    }
  }

  private async drop(key: string, entry: Entry): Promise<void> {
    if (entry.timer) clearTimeout(entry.timer);
    if (this.sessions.get(key) !== entry) return;
    this.sessions.delete(key);
    await this.close(entry);
  }

  private async close(entry: Entry): Promise<void> {
    this.closing += 1;
    try {
      await entry.session.then((s) => s.close()).catch(() => undefined);
    } finally {
      this.closing -= 1;
      this.wake();
    }
  }

  /** SSH connections open or being opened (for the metrics). */
  get openConnections(): number {
    return this.sessions.size;
  }

  /** The bound (for the metrics and tests). */
  get maxConnections(): number {
    return this.max;
  }

  async closeAll(): Promise<void> {
    const all = [...this.sessions.entries()];
    this.sessions.clear();
    await Promise.all(all.map(([, e]) => (e.timer && clearTimeout(e.timer), e.session.then((s) => s.close()).catch(() => undefined))));
    while (this.waiters.length > 0) this.wake();
  }
}
