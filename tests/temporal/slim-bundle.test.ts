/**
 * workers/bundle.ts: the workflow bundle loses its sources' text and nothing else: the same code, the
 * same mappings (stack traces still name workflows/*.ts lines). That the SDK loads it and runs the
 * workflows is shown by every test that starts a worker (tests/support/temporal.ts slims the bundle)
 * and by tests/replay.
 */
import { bundleWorkflowCode } from '@temporalio/worker';
import { slimWorkflowBundle } from '../../workers/bundle';

const MARK = '//# sourceMappingURL=data:application/json;';
const mapOf = (code: string): Record<string, unknown> => {
  const at = code.lastIndexOf(MARK);
  return JSON.parse(Buffer.from(code.slice(code.indexOf('base64,', at) + 7).trim(), 'base64').toString('utf8')) as Record<string, unknown>;
};
const quiet = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} };

test('when the real bundle is slimmed, then its code and mappings are unchanged and only the sources text is gone', async () => {
  const { code } = await bundleWorkflowCode({ workflowsPath: require.resolve('../../workflows'), logger: quiet });
  const slim = slimWorkflowBundle(code);
  const at = code.lastIndexOf(MARK);
  expect(slim.slice(0, slim.lastIndexOf(MARK))).toBe(code.slice(0, at));
  const before = mapOf(code);
  const after = mapOf(slim);
  expect(before.sourcesContent).toBeDefined();
  expect(after.sourcesContent).toBeUndefined();
  const { sourcesContent: _text, ...rest } = before;
  expect(after).toEqual(rest);
  expect((after.sources as string[]).some((s) => /workflows\/deploy\.ts$/.test(s))).toBe(true);
  expect(slim.length).toBeLessThan(code.length * 0.7);
  // Slimming twice changes nothing more.
  expect(slimWorkflowBundle(slim)).toBe(slim);
});

test('when the code has no inline source map, or one that does not parse, then it comes back unchanged', () => {
  expect(slimWorkflowBundle('var x = 1;\n')).toBe('var x = 1;\n');
  const broken = `var x = 1;\n${MARK}base64,not-json\n`;
  expect(slimWorkflowBundle(broken)).toBe(broken);
});
