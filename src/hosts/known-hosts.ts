/**
 * known_hosts parsing and host key pinning (OpenSSH format): plain and hashed (`|1|salt|hash`)
 * host patterns, `[host]:port` for non-22 ports, `*`/`?` wildcards, `!` negation, `@revoked`.
 * `@cert-authority` lines are ignored (certificates are not trusted by this client).
 */
import { createHash, createHmac } from 'node:crypto';

export interface KnownHostEntry {
  marker: 'revoked' | 'cert-authority' | null;
  patterns: string;
  keyType: string;
  key: Buffer;
}

export function parseKnownHosts(text: string): KnownHostEntry[] {
  const out: KnownHostEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    let marker: KnownHostEntry['marker'] = null;
    if (fields[0] === '@revoked' || fields[0] === '@cert-authority') {
      marker = fields[0] === '@revoked' ? 'revoked' : 'cert-authority';
      fields.shift();
    }
    const [patterns, keyType, b64] = fields;
    if (!patterns || !keyType || !b64 || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) continue;
    out.push({ marker, patterns, keyType, key: Buffer.from(b64, 'base64') });
  }
  return out;
}

/** The name known_hosts uses for host:port (`host` for 22, else `[host]:port`). */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function wildcardMatch(pattern: string, name: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
  return re.test(name);
}

function hashedMatch(pattern: string, name: string): boolean {
  const parts = pattern.split('|');
  if (parts.length !== 4 || parts[1] !== '1') return false;
  const salt = Buffer.from(parts[2] ?? '', 'base64');
  const hash = Buffer.from(parts[3] ?? '', 'base64');
  const mac = createHmac('sha1', salt).update(name).digest();
  return mac.length === hash.length && mac.equals(hash);
}

/** Does a known_hosts pattern list match host:port? */
export function patternsMatch(patterns: string, host: string, port: number): boolean {
  const name = knownHostsName(host, port);
  if (patterns.startsWith('|')) return hashedMatch(patterns, name);
  let matched = false;
  for (const p of patterns.split(',')) {
    const negated = p.startsWith('!');
    const pat = negated ? p.slice(1) : p;
    if (wildcardMatch(pat, name)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

/** OpenSSH-style fingerprint: `SHA256:<unpadded base64>`. */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** Parses `ssh-ed25519 AAAA… [comment]` into its key blob. */
export function parsePublicKey(line: string): { keyType: string; key: Buffer } {
  const [keyType, b64] = line.trim().split(/\s+/);
  if (!keyType || !b64 || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) throw new Error('not an OpenSSH public key line');
  const key = Buffer.from(b64, 'base64');
  // The blob starts with the key type as an SSH string; check it agrees with the text.
  const len = key.length >= 4 ? key.readUInt32BE(0) : -1;
  if (len <= 0 || key.subarray(4, 4 + len).toString('latin1') !== keyType) throw new Error('public key blob does not match its type');
  return { keyType, key };
}

export type HostKeyVerdict = { ok: true } | { ok: false; reason: 'unknown' | 'changed' | 'revoked' };

/** Decides whether `presented` is pinned for host:port in `entries` (+ optional explicit keys). */
export function verifyHostKey(entries: readonly KnownHostEntry[], host: string, port: number, presented: Buffer): HostKeyVerdict {
  let known = false;
  for (const e of entries) {
    if (!patternsMatch(e.patterns, host, port)) continue;
    if (e.marker === 'revoked') {
      if (e.key.equals(presented)) return { ok: false, reason: 'revoked' };
      continue;
    }
    if (e.marker === 'cert-authority') continue;
    known = true;
    if (e.key.equals(presented)) {
      // Still check the remaining lines for an @revoked entry of this key.
      const revoked = entries.some((r) => r.marker === 'revoked' && r.key.equals(presented) && patternsMatch(r.patterns, host, port));
      return revoked ? { ok: false, reason: 'revoked' } : { ok: true };
    }
  }
  return { ok: false, reason: known ? 'changed' : 'unknown' };
}
