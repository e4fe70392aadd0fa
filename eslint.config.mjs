// @ts-check
import { builtinModules } from 'node:module';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '**/*.js', '**/*.mjs', '**/*.cjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { prefer: 'type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      eqeqeq: ['error', 'always'],
    },
  },
  {
    // Workflow code is bundled by Temporal and must stay deterministic: no Node built-ins,
    // no activity-side libraries, no non-workflow SDK packages.
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({ name, message: 'Node built-ins are not allowed in workflow code.' })),
          patterns: [
            {
              group: ['@temporalio/*', '!@temporalio/workflow', '!@temporalio/common'],
              message: 'Only @temporalio/workflow (and @temporalio/common) may be imported in workflow code.',
            },
            {
              group: ['ssh2', 'ssh2/*', '@octokit/*', 'pino', 'pino/*', 'fastify', 'better-sqlite3', 'yaml'],
              allowTypeImports: true,
              message: 'Workflow code may import only types from activity-side libraries.',
            },
            {
              // Project code outside src/domain (activities, workers, adapters) loads Node modules.
              regex: '^(?:\\.\\./)+(?:src/(?!domain/)|activities(?:/|$)|workers(?:/|$))',
              allowTypeImports: true,
              message: 'Workflow code may import only types from activity-side modules; use src/domain for shared pure code.',
            },
          ],
        },
      ],
    },
  },
);
