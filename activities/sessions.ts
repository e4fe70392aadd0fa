import { HostSession } from '../src/hosts';
import type { HostSpec } from '../src/domain/deployment';

export interface SshCredentials {
  /** The deployer's private key (OpenSSH or PEM). Never logged, never in workflow history. */
  privateKey: string | Buffer;
  /** known_hosts text: every host's key pinned; an unknown or changed key refuses to connect. */
  knownHosts: string;
  readyTimeoutMs?: number;
  keepaliveIntervalMs?: number;
  keepaliveCountMax?: number;
}

/**
 * One SSH connection per host, reused across that host's steps (record, switch, verify, rollback),
 * closed after it has been idle for a while. A connection that failed is dropped, so the next step
 * (or the retry) connects afresh.
 */
export class SessionPool {
  private readonly sessions = new Map<string, { session: Promise<HostSession>; timer?: NodeJS.Timeout; users: number }>();

  constructor(
    private readonly creds: SshCredentials,
    private readonly idleMs = 60_000,
  ) {}

  private key(h: HostSpec): string {
    return `${h.user}@${h.address}:${h.port}`;
  }

  async use<T>(host: HostSpec, fn: (session: HostSession) => Promise<T>): Promise<T> {
    const key = this.key(host);
    let entry = this.sessions.get(key);
    if (!entry) {
      const session = HostSession.connect({
        address: host.address,
        port: host.port,
        user: host.user,
        privateKey: this.creds.privateKey,
        knownHosts: this.creds.knownHosts,
        label: host.name,
        readyTimeoutMs: this.creds.readyTimeoutMs ?? 10_000,
        keepaliveIntervalMs: this.creds.keepaliveIntervalMs ?? 5_000,
        keepaliveCountMax: this.creds.keepaliveCountMax ?? 3,
      });
      entry = { session, users: 0 };
      this.sessions.set(key, entry);
      session.catch(() => {
        if (this.sessions.get(key) === entry) this.sessions.delete(key);
      });
    }
    if (entry.timer) clearTimeout(entry.timer);
    entry.users += 1;
    const current = entry;
    try {
      return await fn(await current.session);
    } catch (err) {
      // Any failure may have left the connection unusable: start the next step from a fresh one.
      if (this.sessions.get(key) === current) this.sessions.delete(key);
      void current.session.then((s) => s.close()).catch(() => undefined);
      throw err;
    } finally {
      current.users -= 1;
      if (current.users === 0 && this.sessions.get(key) === current) {
        current.timer = setTimeout(() => void this.drop(key, current), this.idleMs);
        current.timer.unref();
      }
    }
  }

  private async drop(key: string, entry: { session: Promise<HostSession> }): Promise<void> {
    if (this.sessions.get(key) === entry) this.sessions.delete(key);
    await entry.session.then((s) => s.close()).catch(() => undefined);
  }

  /** SSH connections open or being opened (for the metrics). */
  get openConnections(): number {
    return this.sessions.size;
  }

  async closeAll(): Promise<void> {
    const all = [...this.sessions.entries()];
    this.sessions.clear();
    await Promise.all(all.map(([, e]) => (e.timer && clearTimeout(e.timer), e.session.then((s) => s.close()).catch(() => undefined))));
  }
}
