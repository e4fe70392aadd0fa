/** @type {import('jest').Config} */
const esmOnly = ['@octokit', 'universal-github-app-jwt', 'universal-user-agent', 'before-after-hook', 'json-with-bigint', 'fast-content-type-parse', 'content-type', 'cookie'];

module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/tests'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }],
    [`node_modules/(?:${esmOnly.join('|')})/.+\\.js$`]: '<rootDir>/tests/support/esm-to-cjs.js',
  },
  transformIgnorePatterns: [`/node_modules/(?!(?:${esmOnly.join('|')})/)`],
  testTimeout: 120000,
  // Test files start their own servers and hosts; one at a time keeps the 2-core machine honest.
  maxWorkers: 1,
};
