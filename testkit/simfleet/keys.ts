/**
 * ed25519 key pairs in OpenSSH format, made with node:crypto (ssh2's own generator drops leading zero
 * bytes of the key, and about 1 key in 40 is then unreadable: see testkit/fleet/fleet.ts). The
 * OpenSSH private key format (PROTOCOL.key): "openssh-key-v1\0", cipher/kdf "none", one key.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';

export interface Ed25519Pair {
  /** `-----BEGIN OPENSSH PRIVATE KEY-----…` (unencrypted) */
  private: string;
  /** `ssh-ed25519 AAAA…` (no comment) */
  public: string;
  /** The public key blob (what a known_hosts line carries, base64). */
  blob: Buffer;
}

function str(b: Buffer | string): Buffer {
  const data = typeof b === 'string' ? Buffer.from(b) : b;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  return Buffer.concat([len, data]);
}

/** DER of an ed25519 key up to its 32 raw bytes: SPKI (RFC 8410 §4) and PKCS #8 (§7) without attributes. */
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/**
 * The key pair comes out DER-encoded by the generator itself, never as a KeyObject exported to JWK:
 * on Node 20, exporting a KeyObject while the garbage collector frees the key-generation job that made
 * it deadlocks the thread (ExportJWK holds the key's mutex, ~KeyGenJob waits for it: seen as a
 * 10,000-host bench:scale run asleep in futex_wait, its fleet never listening).
 */
export function ed25519Pair(comment = ''): Ed25519Pair {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519', { publicKeyEncoding: { type: 'spki', format: 'der' }, privateKeyEncoding: { type: 'pkcs8', format: 'der' } });
  if (publicKey.length !== 44 || !publicKey.subarray(0, 12).equals(SPKI_PREFIX) || privateKey.length !== 48 || !privateKey.subarray(0, 16).equals(PKCS8_PREFIX)) throw new Error('ed25519: unexpected key encoding');
  const pub = Buffer.from(publicKey.subarray(12));
  const seed = Buffer.from(privateKey.subarray(16));
  const blob = Buffer.concat([str('ssh-ed25519'), str(pub)]);
  const check = randomBytes(4);
  let priv = Buffer.concat([check, check, str('ssh-ed25519'), str(pub), str(Buffer.concat([seed, pub])), str(comment)]);
  const pad: number[] = [];
  for (let i = 1; (priv.length + pad.length) % 8 !== 0; i++) pad.push(i);
  priv = Buffer.concat([priv, Buffer.from(pad)]);
  const body = Buffer.concat([Buffer.from('openssh-key-v1\0'), str('none'), str('none'), str(''), Buffer.from([0, 0, 0, 1]), str(blob), str(priv)]);
  const b64 = body.toString('base64').replace(/.{1,70}/g, '$&\n');
  return { private: `-----BEGIN OPENSSH PRIVATE KEY-----\n${b64}-----END OPENSSH PRIVATE KEY-----\n`, public: `ssh-ed25519 ${blob.toString('base64')}`, blob };
}
