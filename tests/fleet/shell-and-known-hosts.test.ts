import { execFileSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import {
  InvalidInputError,
  fingerprint,
  parseKnownHosts,
  parsePublicKey,
  renderTemplate,
  shellQuote,
  validateFlakeAttr,
  validateFlakeRef,
  validateGeneration,
  validateStorePath,
  validateTemplate,
  validateUser,
  verifyHostKey,
} from '../../src/hosts';

const field = (f: () => unknown): string | undefined => {
  try {
    f();
  } catch (e) {
    if (e instanceof InvalidInputError) return e.field;
    throw e;
  }
  return undefined;
};

test('shellQuote round-trips any string through /bin/sh as one argument', () => {
  const values = ["it's", `'; rm -rf / #`, '$(id)', '`id`', 'a\nb', '"', '\\', '', ' lead', '*', '!x', '$HOME', "''''"];
  for (const v of values) {
    const out = execFileSync('/bin/sh', ['-c', `printf '%s' ${shellQuote(v)}`], { encoding: 'utf8' });
    expect(out).toBe(v);
  }
  expect(() => shellQuote('a\0b')).toThrow(InvalidInputError);
});

test('validators accept real values and name the field on rejection', () => {
  expect(validateFlakeRef('git+https://github.com/o/r?rev=0123456789abcdef0123456789abcdef01234567')).toBeTruthy();
  expect(validateFlakeRef('git+file:///srv/fleet.git?ref=main&rev=0123456789abcdef0123456789abcdef01234567')).toBeTruthy();
  expect(validateFlakeRef('github:o/r/0123456789abcdef0123456789abcdef01234567')).toBeTruthy();
  for (const bad of ['git+https://x/y;id', 'git+https://x/y#attr', 'git+https://x/$(id)', 'https://x/y z', '/etc/passwd', '', 'git+https://x/`id`']) {
    expect(field(() => validateFlakeRef(bad))).toBe('flakeRef');
  }
  expect(validateFlakeAttr('hsb0')).toBe('hsb0');
  expect(validateFlakeAttr('markus@gpc0')).toBe('markus@gpc0');
  for (const bad of ['a b', 'a"b', 'a${x}', '-rf', '', 'a;b']) expect(field(() => validateFlakeAttr(bad))).toBe('attr');
  expect(validateStorePath('/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-x')).toBeTruthy();
  for (const bad of ['/nix/store/short-x', '/nix/store/0123456789abcdfghijklmnpqrsvwxyz-x/../../etc', "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-x'y", '/tmp/x']) {
    expect(field(() => validateStorePath(bad, 'recorded.storePath'))).toBe('recorded.storePath');
  }
  expect(validateGeneration(42)).toBe(42);
  for (const bad of [0, -1, 1.5, Number.NaN, '42']) expect(field(() => validateGeneration(bad, 'to.number'))).toBe('to.number');
  expect(validateUser('root')).toBe('root');
  expect(field(() => validateUser('root;id'))).toBe('user');
});

test('templates: named placeholders, values quoted, quoted or unknown placeholders refused', () => {
  const cmd = renderTemplate('sudo nixos-rebuild switch --flake {flake}', { flake: "git+https://x/y?rev=abc#host'; id" }, ['flake']);
  expect(cmd).toBe(`sudo nixos-rebuild switch --flake 'git+https://x/y?rev=abc#host'\\''; id'`);
  expect(renderTemplate('nix-env -p {profile} --switch-generation {generation}', { profile: '/nix/var/nix/profiles/system', generation: 41 })).toBe(
    `nix-env -p '/nix/var/nix/profiles/system' --switch-generation '41'`,
  );
  expect(field(() => validateTemplate('x --flake "{flake}"', ['flake'], 'commands.switch'))).toBe('commands.switch');
  expect(field(() => validateTemplate("x --flake '{flake}'", ['flake'], 'commands.switch'))).toBe('commands.switch');
  expect(field(() => validateTemplate('x {evil}', ['flake'], 'commands.switch'))).toBe('commands.switch');
  expect(field(() => validateTemplate('x ${flake}', ['flake'], 'commands.switch'))).toBe('commands.switch');
  expect(field(() => validateTemplate('x {flake}\ny', ['flake'], 'commands.switch'))).toBe('commands.switch');
  expect(field(() => validateTemplate('x \\{flake}', ['flake'], 'commands.switch'))).toBe('commands.switch');
  expect(field(() => validateTemplate('x $({flake})', ['flake'], 'commands.switch'))).toBe('commands.switch');
  expect(validateTemplate('{storePath}/bin/switch-to-configuration switch', ['storePath'])).toBeTruthy();
  expect(validateTemplate('nix build {flakeRef}#{attr} && echo done', ['flakeRef', 'attr'])).toBeTruthy();
});

test('known_hosts: [host]:port, plain host for port 22, hashed names, wildcards, negation, @revoked', () => {
  const keyA = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJoew94cTzqsVsfUvKHIfh4Mn/4NSKwAX791yVWkRzBM';
  const keyB = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOyHOEnT+6qX1T0GA9KpUr5IubU7SZsNgJUAcdM6Ow1x';
  const a = parsePublicKey(keyA).key;
  const b = parsePublicKey(keyB).key;
  const salt = randomBytes(20);
  const hashed = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update('[10.0.0.9]:2222').digest('base64')}`;
  const kh = parseKnownHosts(
    [
      '# comment',
      `[127.0.0.2]:2201 ${keyA}`,
      `hsb0.lan,10.0.0.5 ${keyA}`,
      `${hashed} ${keyB}`,
      `*.cloud,!evil.cloud ${keyB}`,
      `@revoked * ${keyB.replace('Ow1x', 'Ow1y')}`,
      `@cert-authority * ${keyA}`,
    ].join('\n'),
  );
  expect(verifyHostKey(kh, '127.0.0.2', 2201, a)).toEqual({ ok: true });
  expect(verifyHostKey(kh, '127.0.0.2', 2201, b)).toEqual({ ok: false, reason: 'changed' });
  expect(verifyHostKey(kh, '127.0.0.2', 22, a)).toEqual({ ok: false, reason: 'unknown' });
  expect(verifyHostKey(kh, '10.0.0.5', 22, a)).toEqual({ ok: true });
  expect(verifyHostKey(kh, '10.0.0.9', 2222, b)).toEqual({ ok: true });
  expect(verifyHostKey(kh, '10.0.0.9', 22, b)).toEqual({ ok: false, reason: 'unknown' });
  expect(verifyHostKey(kh, 'csb0.cloud', 22, b)).toEqual({ ok: true });
  expect(verifyHostKey(kh, 'evil.cloud', 22, b)).toEqual({ ok: false, reason: 'unknown' });
  // Only cert-authority lines match: not trusted.
  expect(verifyHostKey(kh, 'other', 22, a)).toEqual({ ok: false, reason: 'unknown' });
  expect(fingerprint(a)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  expect(() => parsePublicKey('ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIJoew94cTzqsVsfUvKHIfh4Mn/4NSKwAX791yVWkRzBM')).toThrow();
});
