/**
 * `nix store diff-closures` as the real Nix prints it (this machine's nix, a private store config,
 * offline): two small closures with a package upgraded, one removed, one added with a size change;
 * the parser reads every line of it, strips the ANSI colours Nix writes even without a terminal, and
 * refuses a line it does not understand.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nixSystem } from '../../testkit/fleet';
import { formatClosureChange, formatClosureSummary } from '../../src/domain/closure-diff';
import { closureSizeCommand, diffClosuresCommand, parseDiffClosures } from '../../src/hosts/closure-diff';
import { InvalidInputError, UnexpectedOutputError } from '../../src/hosts';

let dir = '';
let env: NodeJS.ProcessEnv = {};
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nixfleet-diff-'));
  mkdirSync(join(dir, 'conf'));
  writeFileSync(join(dir, 'conf', 'nix.conf'), 'sandbox = false\nsubstituters =\nbuild-users-group =\nexperimental-features = nix-command flakes\n');
  env = { ...process.env, NIX_CONF_DIR: join(dir, 'conf') };
  mkdirSync(join(dir, 'flake'));
  // Each package's size follows its payload; the system references its packages (a real closure).
  writeFileSync(
    join(dir, 'flake', 'flake.nix'),
    `{ outputs = { self }: let
  mk = name: deps: size: builtins.derivation {
    inherit name deps; system = "${nixSystem()}"; builder = "/bin/sh"; PATH = "/usr/bin:/bin";
    args = [ "-c" "mkdir $out; for d in $deps; do echo $d >> $out/refs; done; head -c \${toString size} /dev/zero > $out/blob" ];
  };
in {
  one = mk "nixos-system-x-1" [ (mk "hello-2.10" [] 100) (mk "curl-8.0" [] 200) (mk "tzdata-2024a" [] 300) ] 10;
  two = mk "nixos-system-x-2" [ (mk "hello-2.12" [] 120) (mk "zlib-1.3" [] 40000) (mk "tzdata-2024a" [] 300) ] 10;
}; }
`,
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const build = (attr: string): string => (JSON.parse(execFileSync('nix', ['build', '--no-link', '--json', `path:${join(dir, 'flake')}#${attr}`], { env, encoding: 'utf8' })) as Array<{ outputs: { out: string } }>)[0]!.outputs.out;

test('when two real closures differ, then every change Nix prints is read: upgraded, removed, added with its size', () => {
  const one = build('one');
  const two = build('two');
  const raw = execFileSync('nix', ['store', 'diff-closures', one, two], { env, encoding: 'utf8' });
  expect(raw).toContain('\x1b['); // Nix colours the sizes even into a pipe
  const changes = parseDiffClosures('local', raw);
  expect(changes).toEqual([
    { name: 'curl', from: ['8.0'], to: [], kind: 'removed' },
    { name: 'hello', from: ['2.10'], to: ['2.12'], kind: 'upgraded' },
    { name: 'nixos-system-x', from: ['1'], to: ['2'], kind: 'upgraded' },
    { name: 'zlib', from: [], to: ['1.3'], kind: 'added', sizeDeltaBytes: expect.any(Number) },
  ]);
  // Nix shows the size to 0.1 KiB: within 52 bytes of the real 40000-byte payload (plus directory overhead).
  expect(Math.abs((changes[3]!.sizeDeltaBytes as number) - 40_000)).toBeLessThan(1024);
  expect(changes.map(formatClosureChange)).toEqual(['- curl 8.0', '~ hello 2.10 → 2.12', '~ nixos-system-x 1 → 2', expect.stringMatching(/^\+ zlib 1\.3 \(\+39\.\d KiB\)$/)]);
  // The same closure twice: nothing changes.
  expect(parseDiffClosures('local', execFileSync('nix', ['store', 'diff-closures', one, one], { env, encoding: 'utf8' }))).toEqual([]);
  // The closure sizes as the host reports them (Nix 2.8: an array of {path, closureSize}).
  const sizes = JSON.parse(execFileSync('nix', ['path-info', '--json', '-S', one, two], { env, encoding: 'utf8' })) as Array<{ path: string; closureSize: number }>;
  expect(sizes.map((s) => s.path).sort()).toEqual([one, two].sort());
  expect(formatClosureSummary({ from: one, to: two, changes, added: 1, removed: 1, upgraded: 2, fromClosureBytes: 1000, toClosureBytes: 41_000, sizeDeltaBytes: 40_000 })).toBe('1 added, 1 removed, 2 upgraded; closure +39.1 KiB');
});

test('when a line is not what Nix prints, then the parser refuses it rather than drop it', () => {
  expect(() => parseDiffClosures('h', 'hello 2.10 -> 2.12\n')).toThrow(UnexpectedOutputError);
  expect(() => parseDiffClosures('h', 'hello: something\n')).toThrow(UnexpectedOutputError);
  expect(parseDiffClosures('h', 'glibc: 2.38, 2.39 → 2.40, \x1b[32;1m-12.5 KiB\x1b[0m\nfoo: ε → ∅\nbar: \x1b[31;1m+8.0 KiB\x1b[0m\n')).toEqual([
    { name: 'glibc', from: ['2.38', '2.39'], to: ['2.40'], kind: 'upgraded', sizeDeltaBytes: -12800 },
    { name: 'foo', from: [''], to: [], kind: 'removed' },
    { name: 'bar', from: [], to: [], kind: 'size', sizeDeltaBytes: 8192 },
  ]);
});

test('the commands take store paths only, single-quoted', () => {
  const p = `/nix/store/${'a'.repeat(32)}-nixos-system-x-1`;
  expect(diffClosuresCommand(p, p)).toBe(`nix store diff-closures '${p}' '${p}'`);
  expect(closureSizeCommand(p, p)).toBe(`nix path-info --json -S '${p}' '${p}'`);
  for (const bad of [`${p}; touch /tmp/x`, '/etc/passwd', `${p}'`, `/nix/store/${'e'.repeat(32)}-x`]) {
    expect(() => diffClosuresCommand(p, bad)).toThrow(InvalidInputError);
    expect(() => closureSizeCommand(bad, p)).toThrow(InvalidInputError);
  }
});
