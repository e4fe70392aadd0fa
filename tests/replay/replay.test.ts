/**
 * Determinism: every saved history (tests/replay/histories, recorded from real runs on the stand-in
 * world with NIXFLEET_SAVE_HISTORIES=1) must replay against the current workflow code. A change that
 * would break running deployments fails here; guard it with `patched()` and record a new history.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from '@temporalio/worker';
import { workflowBundle } from '../support/temporal';

const dir = join(__dirname, 'histories');
const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();

test('the saved histories cover every workflow type', () => {
  const types = new Set(
    files.map((f) => {
      const h = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { events: Array<{ workflowExecutionStartedEventAttributes?: { workflowType?: { name?: string } } }> };
      return h.events[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name;
    }),
  );
  expect([...types].sort()).toEqual(['buildWorkflow', 'deployWorkflow', 'hostOpsWorkflow', 'smokeWorkflow', 'undoWorkflow', 'waveWorkflow']);
  expect(files.length).toBeGreaterThanOrEqual(6);
});

test.each(files)('%s replays without a determinism error', async (file) => {
  const history = JSON.parse(readFileSync(join(dir, file), 'utf8')) as unknown;
  await Worker.runReplayHistory({ workflowBundle: await workflowBundle(), replayName: file }, history, `replay-${file}`);
});
