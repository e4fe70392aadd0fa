/**
 * The worker's Node flags (workers/node-flags.ts) are the same wherever the worker is started: the npm
 * scripts, the image's command, the compose file and the systemd unit.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WORKER_NODE_FLAGS } from '../../workers/node-flags';

const root = join(__dirname, '..', '..');
const read = (f: string): string => readFileSync(join(root, f), 'utf8');

test('when the worker is started by npm, the image, compose or systemd, then it runs with the worker flags', () => {
  const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;
  expect(scripts.worker).toBe(`node ${WORKER_NODE_FLAGS.join(' ')} --import tsx workers/main.ts`);
  expect(scripts['start:worker']).toBe(`node ${WORKER_NODE_FLAGS.join(' ')} dist/workers/main.js`);
  const exec = JSON.stringify(['node', ...WORKER_NODE_FLAGS, 'dist/workers/main.js']).replace(/,/g, ', ');
  expect(read('Dockerfile')).toContain(`CMD ${exec}`);
  expect(read('docker-compose.temporal.yml')).toContain(`command: ${exec}`);
  expect(read('deploy/systemd/nixfleet-worker.service')).toMatch(new RegExp(`^ExecStart=/usr/bin/node ${WORKER_NODE_FLAGS.join(' ')} \\S+/dist/workers/main\\.js$`, 'm'));
});
