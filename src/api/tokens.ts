import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { formatZodError } from '../schemas/fleet.schema';

export type Role = 'viewer' | 'operator';

const TokenFile = z.object({
  tokens: z
    .array(
      z.strictObject({
        token: z.string().min(16, 'at least 16 characters'),
        identity: z.string().regex(/^[A-Za-z0-9._@-]{1,64}$/, 'an identity: letters, digits, ".", "_", "@", "-"'),
        role: z.enum(['viewer', 'operator']),
      }),
    )
    .min(1),
});
export type TokenFile = z.infer<typeof TokenFile>;

export interface Principal {
  identity: string;
  role: Role;
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/**
 * Bearer tokens with roles. Tokens are compared as SHA-256 digests with timingSafeEqual, against every
 * entry, so neither the length nor the position of a match leaks through timing.
 */
export class TokenStore {
  private readonly entries: Array<{ digest: Buffer; principal: Principal }>;

  constructor(file: TokenFile) {
    this.entries = file.tokens.map((t) => ({ digest: digest(t.token), principal: { identity: t.identity, role: t.role } }));
  }

  static fromJson(value: unknown): TokenStore {
    const r = TokenFile.safeParse(value);
    if (!r.success) throw new Error(`API tokens: ${formatZodError(r.error)}`);
    return new TokenStore(r.data);
  }

  static fromFile(path: string): TokenStore {
    return TokenStore.fromJson(JSON.parse(readFileSync(path, 'utf8')));
  }

  authenticate(authorization: string | undefined): Principal | undefined {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    if (!m?.[1]) return undefined;
    const given = digest(m[1]);
    let found: Principal | undefined;
    for (const e of this.entries) {
      if (timingSafeEqual(e.digest, given)) found = e.principal;
    }
    return found;
  }
}
