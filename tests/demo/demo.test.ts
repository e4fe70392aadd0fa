/**
 * README's first command must stay true: the demo (scripts/demo.ts, which scripts/demo.sh runs after
 * set-up) starts every part, deploys, halts on hsb1 and rolls everything back; with --once it checks
 * that outcome against the hosts and the branch and exits 0; interactively, Ctrl-C stops it cleanly.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const DEMO = join(__dirname, '..', '..', 'scripts', 'demo.ts');

function startDemo(stateDir: string, extra: string[], detached = false): { child: ChildProcessWithoutNullStreams; output: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, ['--require', 'tsx/cjs', DEMO, ...extra, '--temporal-port', '0', '--ui-port', '0', '--api-port', '0', '--state-dir', stateDir], {
    stdio: ['pipe', 'pipe', 'pipe'],
    detached,
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { child, output: () => out, exit };
}

async function waitFor(what: () => boolean, deadlineMs: number, describe: () => string): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (!what()) {
    if (Date.now() > until) throw new Error(`timed out waiting: ${describe()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('when run with --once, the demo halts on hsb1, rolls back every host that changed, checks that and exits 0', async () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'nixfleet-demo-'));
  try {
    const demo = startDemo(stateDir, ['--once']);
    const code = await demo.exit;
    const out = demo.output();
    expect({ code, out }).toMatchObject({ code: 0 });
    expect(out).toContain('⚠️  Deployment Failed');
    expect(out).toContain('Switch failed on: hsb1');
    expect(out).toContain('Not attempted: csb0');
    expect(out).toMatch(/gpc0\s+nixos\s+rolled-back\s+42 → 43/);
    expect(out).toMatch(/alice\s+home-manager\s+rolled-back\s+9 → 10/);
    expect(out).toMatch(/revert: commit [0-9a-f]{40}/);
    // The host's own error output reaches the operator, not only "activation failed".
    expect(out).toMatch(/hsb1: activation reported failed units \(exit 4\); the host runs the new generation: .*nixfleet-standin\.service/);
    expect(out).toContain('check: ok');
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test('when Ctrl-C reaches the interactive demo (its whole process group, as a terminal sends it), then it stops cleanly with no stack trace', async () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'nixfleet-demo-'));
  const demo = startDemo(stateDir, ['--healthy'], true);
  try {
    await waitFor(() => demo.output().includes('Running until Ctrl-C.') || demo.child.exitCode !== null, 240_000, demo.output);
    expect(demo.output()).toContain('Running until Ctrl-C.');
    process.kill(-(demo.child.pid as number), 'SIGINT');
    const code = await demo.exit;
    const out = demo.output();
    expect({ code, tail: out.slice(out.indexOf('Running until Ctrl-C.')) }).toEqual({ code: 0, tail: 'Running until Ctrl-C.\nstopping…\n' });
  } finally {
    if (demo.child.exitCode === null) process.kill(-(demo.child.pid as number), 'SIGKILL');
    rmSync(stateDir, { recursive: true, force: true });
  }
});
