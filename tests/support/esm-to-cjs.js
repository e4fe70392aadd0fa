// Jest transformer for the ESM-only packages @octokit/rest 22 depends on. Node 20.19+ loads them from
// CommonJS natively (require(esm)), so the product runs them as they are; jest's module runtime cannot,
// so under jest only, esbuild rewrites their import/export syntax to CommonJS.
const { transformSync } = require('esbuild');
const { createHash } = require('node:crypto');

module.exports = {
  process(sourceText, sourcePath) {
    const { code, map } = transformSync(sourceText, { loader: 'js', format: 'cjs', target: 'node20', sourcemap: true, sourcefile: sourcePath });
    return { code, map };
  },
  getCacheKey(sourceText, sourcePath) {
    return createHash('sha256').update('esm-to-cjs-1').update(sourcePath).update(sourceText).digest('hex');
  },
};
