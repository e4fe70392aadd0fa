/**
 * The dashboard draws with the CLI's display rules: /dashboard/presentation.js is generated from the
 * functions of src/domain/presentation.ts (src/dashboard/assets.ts), not copied into app.js. Run as a
 * browser runs it (a fresh context with only `window`), it gives the same answers as the module.
 */
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { dashboardAssets, presentationScript } from '../../src/dashboard/assets';
import { HOST_STATES } from '../../src/domain/host-pages';
import { generationTrail, outcomeTone } from '../../src/domain/presentation';

type Page = { generationTrail: typeof generationTrail; outcomeTone: typeof outcomeTone };

function loadInPage(): Page {
  const window: { nixfleetPresentation?: Page } = {};
  runInNewContext(presentationScript(), { window });
  if (!window.nixfleetPresentation) throw new Error('presentation.js defined nothing');
  return window.nixfleetPresentation;
}

test('when the page loads presentation.js, then it has the module\'s generationTrail and outcomeTone, answering alike for any host and outcome', () => {
  const page = loadInPage();
  const gen = fc.option(fc.record({ number: fc.integer({ min: 1, max: 60 }), storePath: fc.constant('/nix/store/x') }), { nil: undefined });
  fc.assert(
    fc.property(fc.constantFrom(...HOST_STATES), gen, gen, gen, (state, before, after, now) => {
      const h = { state, ...(before ? { before } : {}), ...(after ? { after } : {}), ...(now ? { now } : {}) };
      expect(page.generationTrail(h)).toBe(generationTrail(h));
    }),
    { numRuns: 300 },
  );
  for (const o of [undefined, 'succeeded', 'succeeded-with-failures', 'failed-rolled-back', 'failed-not-rolled-back', 'failed-revert-failed', 'refused', 'cancelled']) expect(page.outcomeTone(o)).toBe(outcomeTone(o));
  expect(page.generationTrail({ state: 'rolled-back', before: { number: 42, storePath: '/nix/store/a' }, after: { number: 43, storePath: '/nix/store/b' } })).toBe('42 → 43 → 42');
});

test('the dashboard serves presentation.js before app.js, and app.js keeps no copy of the rules', () => {
  const assets = dashboardAssets();
  expect(assets.get('presentation.js')?.type).toMatch(/^text\/javascript/);
  const html = assets.get('index.html')?.body.toString('utf8') ?? '';
  expect(html.indexOf('/dashboard/presentation.js')).toBeGreaterThan(-1);
  expect(html.indexOf('/dashboard/presentation.js')).toBeLessThan(html.indexOf('/dashboard/app.js'));
  const app = assets.get('app.js')?.body.toString('utf8') ?? '';
  expect(app).not.toMatch(/function (generationTrail|outcomeTone)\b/);
});
