/**
 * Notification targets by name (src/domain/notify-targets.ts) and the fleet file's notify entries:
 * the worker's lookup (file first, then the environment), the targets file's checks, errors that name
 * what to set and never carry a URL's path or a secret, the deprecated URL form warned about.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { EXIT, run } from '../../src/cli/main';
import { notifyTargetLabel } from '../../src/domain/notify';
import { notifyWarnings, resolveTarget, targetEnvPrefix, TARGET_NAME } from '../../src/domain/notify-targets';
import { parseTargetsFile } from '../../src/schemas/notify-targets.schema';
import { FleetFile, parseWith } from '../../src/schemas/fleet.schema';

const FLEET = { repository: { owner: 'acme', name: 'fleet' }, hosts: [{ name: 'h1', address: '10.0.0.1', kind: 'nixos' }] };
const noFile = (): string => {
  throw new Error('no secret file expected');
};

describe('resolveTarget', () => {
  test('when the targets file names the target, then its URL and secret (from its secretFile, trimmed) are used, before the environment', () => {
    const entries = parseTargetsFile(JSON.stringify({ oncall: { url: 'https://hooks.slack.com/services/T/B/tok', secretFile: '/run/secrets/oncall' } }), 'targets.json');
    const env = { NIXFLEET_NOTIFY_ONCALL_URL: 'https://other.example/', NIXFLEET_NOTIFY_ONCALL_SECRET: 'env-secret' };
    expect(resolveTarget('oncall', entries, env, (f) => (f === '/run/secrets/oncall' ? 'file-secret\n' : ''))).toEqual({ url: 'https://hooks.slack.com/services/T/B/tok', secret: 'file-secret' });
  });

  test('when only the environment has it, then NIXFLEET_NOTIFY_<NAME>_URL and _SECRET are used (- as _)', () => {
    expect(targetEnvPrefix('on-call')).toBe('NIXFLEET_NOTIFY_ON_CALL_');
    expect(resolveTarget('on-call', {}, { NIXFLEET_NOTIFY_ON_CALL_URL: 'http://127.0.0.1:9/x', NIXFLEET_NOTIFY_ON_CALL_SECRET: 's' }, noFile)).toEqual({ url: 'http://127.0.0.1:9/x', secret: 's' });
  });

  test('when the target or its secret is missing, then the error names what to set and carries no URL', () => {
    expect(() => resolveTarget('pager', {}, {}, noFile)).toThrow(/pager is not configured on the worker: add it to NIXFLEET_NOTIFY_TARGETS_FILE or set NIXFLEET_NOTIFY_PAGER_URL and NIXFLEET_NOTIFY_PAGER_SECRET/);
    const noSecret = (): unknown => resolveTarget('pager', {}, { NIXFLEET_NOTIFY_PAGER_URL: 'https://hooks.example/secret-path' }, noFile);
    expect(noSecret).toThrow(/NIXFLEET_NOTIFY_PAGER_SECRET is not set/);
    expect(() => resolveTarget('pager', {}, { NIXFLEET_NOTIFY_PAGER_URL: 'ftp://x/secret-path', NIXFLEET_NOTIFY_PAGER_SECRET: 's' }, noFile)).toThrow(/^NIXFLEET_NOTIFY_PAGER_URL: an http\(s\) URL$/);
    expect(() => resolveTarget('oncall', { oncall: { url: 'https://x/secret-path', secretFile: '/f' } }, {}, () => '  \n')).toThrow(/secretFile is empty/);
    try {
      noSecret();
    } catch (err) {
      expect((err as Error).message).not.toContain('secret-path');
    }
  });

  test('when an entry is named like a prototype property, then it is not found through the prototype', () => {
    expect(() => resolveTarget('constructor', {}, {}, noFile)).toThrow(/not configured/);
  });
});

describe('parseTargetsFile', () => {
  test.each([
    ['not JSON', '{', /^targets\.json: not JSON \(at position 1( \(line 1 column 2\))?\)$/],
    ['an array', '[]', /^targets\.json: an object of target names to \{ url, secret \| secretFile \}$/],
    ['a bad name', JSON.stringify({ OnCall: { url: 'https://x/', secret: 's' } }), /^targets\.json: OnCall: a target name \(a-z, 0-9, "-", starting with a letter, at most 40\)$/],
    ['an entry not an object', JSON.stringify({ oncall: 'https://x/' }), /^targets\.json: oncall: an object \{ url, secret \| secretFile \}$/],
    ['a bad URL', JSON.stringify({ oncall: { url: 'file:///etc/passwd', secret: 's' } }), /^targets\.json: oncall\.url: an http\(s\) URL$/],
    ['no URL', JSON.stringify({ oncall: { secret: 's' } }), /^targets\.json: oncall\.url: an http\(s\) URL$/],
    ['both secrets', JSON.stringify({ oncall: { url: 'https://x/', secret: 's', secretFile: '/f' } }), /^targets\.json: oncall: exactly one of secret, secretFile$/],
    ['no secret', JSON.stringify({ oncall: { url: 'https://x/' } }), /^targets\.json: oncall: exactly one of secret, secretFile$/],
    ['an empty secret', JSON.stringify({ oncall: { url: 'https://x/', secret: '' } }), /^targets\.json: oncall\.secret: not empty$/],
    ['a secretFile not a string', JSON.stringify({ oncall: { url: 'https://x/', secretFile: 7 } }), /^targets\.json: oncall\.secretFile: a file path$/],
    ['an unknown field', JSON.stringify({ oncall: { url: 'https://x/', secret: 's', token: 't' } }), /^targets\.json: oncall: unknown field token \(url, secret, secretFile\)$/],
    ['two bad entries', JSON.stringify({ a: { url: 'https://x/', secret: 's' }, b: { url: 'ftp://x/', secret: 's' }, c: { url: 'https://x/' } }), /^targets\.json: b\.url: an http\(s\) URL\ntargets\.json: c: exactly one of secret, secretFile$/],
  ])('when the file has %s, then it is refused naming the entry and the field', (_what, text, error) => {
    expect(() => parseTargetsFile(text, 'targets.json')).toThrow(error);
  });

  test('when the file is right, then its entries are returned as written', () => {
    const text = JSON.stringify({ oncall: { url: 'https://hooks.example/a', secret: 's' }, 'pager-2': { url: 'http://127.0.0.1:9/x', secretFile: '/run/secrets/p' } });
    expect(parseTargetsFile(text, 't')).toEqual(JSON.parse(text));
  });

  test('when the file is not JSON, then the error carries no part of its text', () => {
    // V8 quotes a short text whole: `Unexpected token 'o', "{"oncall": tok-123}" is not valid JSON`.
    expect(() => parseTargetsFile('{"oncall": tok-123}', 't')).toThrow(/^t: not JSON$/);
    expect(() => parseTargetsFile('{"oncall": tok-123}', 't')).toThrow(expect.objectContaining({ message: expect.not.stringContaining('tok-123') }));
  });

  test('errors never carry the secret or the URL', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 6 }), (secret) => {
        try {
          parseTargetsFile(JSON.stringify({ oncall: { url: `gopher://${secret}`, secret } }), 't');
          return false;
        } catch (err) {
          return !(err as Error).message.includes(secret);
        }
      }),
    );
  });
});

describe('the fleet file', () => {
  test('when notify names a target, then it is taken with the events and reminder defaults, and no warning', () => {
    const f = parseWith(FleetFile, { ...FLEET, notify: [{ target: 'oncall', events: ['failed', 'reminder'], remindBefore: '1h' }] });
    expect(f.notify).toEqual([{ target: 'oncall', events: ['failed', 'reminder'], remindBefore: 3600 }]);
    expect(notifyWarnings(f.notify)).toEqual([]);
    expect(notifyTargetLabel(f.notify?.[0] as { target: string })).toBe('target oncall');
  });

  test('when notify uses the old url form, then it is still taken, with a deprecation warning naming the entry', () => {
    const f = parseWith(FleetFile, { ...FLEET, notify: [{ target: 'oncall' }, { url: 'https://hooks.slack.com/services/T/B/tok', secretEnv: 'HOOK_SECRET' }] });
    expect(f.notify?.[1]).toMatchObject({ url: 'https://hooks.slack.com/services/T/B/tok', secretEnv: 'HOOK_SECRET' });
    expect(notifyWarnings(f.notify)).toEqual([expect.stringMatching(/^notify\[1\]: url \+ secretEnv is deprecated: the URL travels in the workflow's input and Temporal history/)]);
    expect(notifyTargetLabel(f.notify?.[1] as { url: string })).toBe('https://hooks.slack.com');
  });

  test.each([
    [{ target: 'On Call' }, /notify\[0\]\.target: a target name/],
    [{ target: 'oncall', url: 'https://x/' }, /notify\[0\]\.secretEnv|notify\[0\]: /],
    [{ events: ['failed'] }, /notify\[0\]\.target/],
    [{ target: 'oncall', events: ['exploded'] }, /notify\[0\]\.events\[0\]: an event/],
    ['oncall', /notify\[0\]: an object/],
  ])('when a notify entry is %j, then it is refused naming the field', (entry, error) => {
    expect(() => parseWith(FleetFile, { ...FLEET, notify: [entry] })).toThrow(error);
  });

  test('target names accepted by the fleet file are the ones the worker can configure by environment', () => {
    fc.assert(fc.property(fc.stringMatching(TARGET_NAME), (name) => /^NIXFLEET_NOTIFY_[A-Z][A-Z0-9_]*_$/.test(targetEnvPrefix(name))));
  });
});

test('when nixfleet validate reads a fleet file with the old url form, then it is valid and warns on stderr; with a named target it does not', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-validate-'));
  try {
    const check = async (notify: unknown[]): Promise<{ code: number; out: string[]; err: string[] }> => {
      const file = join(dir, 'fleet.json');
      writeFileSync(file, JSON.stringify({ ...FLEET, notify }));
      const out: string[] = [];
      const err: string[] = [];
      const code = await run(['validate', file], { out: (l) => out.push(l), err: (l) => err.push(l), confirm: async () => false, env: {} });
      return { code, out, err };
    };
    const old = await check([{ url: 'https://hooks.slack.com/services/T/B/tok', secretEnv: 'HOOK_SECRET' }]);
    expect(old.code).toBe(EXIT.ok);
    expect(old.err).toEqual([expect.stringMatching(/fleet\.json: warning: notify\[0\]: url \+ secretEnv is deprecated/)]);
    const named = await check([{ target: 'oncall' }]);
    expect(named).toMatchObject({ code: EXIT.ok, err: [] });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
