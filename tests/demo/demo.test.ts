/**
 * README's first command must stay true: the demo (scripts/demo.ts, which scripts/demo.sh runs after
 * set-up) starts every part, deploys, halts on hsb1 and rolls everything back.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

test('the demo deploys to the stand-in fleet, halts on hsb1 and rolls back every host that changed', async () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'nixfleet-demo-'));
  try {
    const child = spawn(process.execPath, ['--require', 'tsx/cjs', join(__dirname, '..', '..', 'scripts', 'demo.ts'), '--once', '--temporal-port', '0', '--ui-port', '0', '--api-port', '0', '--state-dir', stateDir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect({ code, out }).toMatchObject({ code: 0 });
    expect(out).toContain('⚠️  Deployment Failed');
    expect(out).toContain('Switch failed on: hsb1');
    expect(out).toContain('Not attempted: csb0');
    expect(out).toMatch(/gpc0\s+nixos\s+rolled-back\s+42 → 43/);
    expect(out).toMatch(/alice\s+home-manager\s+rolled-back\s+9 → 10/);
    expect(out).toMatch(/revert: commit [0-9a-f]{40}/);
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
});
