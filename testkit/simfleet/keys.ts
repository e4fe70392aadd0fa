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

export function ed25519Pair(comment = ''): Ed25519Pair {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const pubJwk = publicKey.export({ format: 'jwk' });
  const privJwk = privateKey.export({ format: 'jwk' });
  const pub = Buffer.from(pubJwk.x as string, 'base64url');
  const seed = Buffer.from(privJwk.d as string, 'base64url');
  if (pub.length !== 32 || seed.length !== 32) throw new Error('ed25519: unexpected key length');
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
