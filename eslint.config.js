// ESLint flat config. Two rules here are architecture, not style, and fail the build:
//  1. Determinism: the core folders never read a clock, draw randomness, set a timer or import Node's I/O.
//  2. Import direction: which module may import which, exactly as docs/ARCHITECTURE.md writes it.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import boundaries from 'eslint-plugin-boundaries';

/** Folders whose code must stay a deterministic state machine (see docs/ARCHITECTURE.md). */
export const CORE_FOLDERS = ['lib', 'sim', 'membership', 'consensus', 'autopilot', 'scheduler', 'partitions', 'state', 'jobspec', 'node'];

/** External packages a core folder may use: pure libraries with no clock, randomness or I/O of their own. */
const CORE_EXTERNAL_ALLOWED = { jobspec: ['yaml', 'zod'] };

/** Allowed imports between modules under src/. Keep in sync with docs/ARCHITECTURE.md ("Import rules"). */
export const ALLOWED_IMPORTS = {
  lib: [],
  gen: [],
  testing: ['lib'],
  platform: ['lib'],
  log: ['lib'],
  wire: ['lib', 'gen'],
  sim: ['lib'],
  membership: ['lib'],
  consensus: ['lib'],
  autopilot: ['lib', 'consensus', 'membership'],
  jobspec: ['lib'],
  state: ['lib', 'jobspec'],
  scheduler: ['lib', 'state', 'jobspec'],
  node: ['lib', 'state', 'jobspec'],
  partitions: ['lib', 'consensus'],
  storage: ['lib', 'log', 'consensus'],
  transport: ['lib', 'log', 'platform', 'wire', 'gen'],
  drivers: ['lib', 'log', 'platform'],
  rpc: ['lib', 'log', 'gen', 'wire'],
  api: ['lib', 'log', 'gen', 'rpc'],
  mesh: ['lib', 'log', 'platform', 'gen', 'wire', 'transport', 'jobspec', 'state'],
  runtime: ['lib', 'log', 'platform', 'gen', 'wire', 'transport', 'membership', 'consensus', 'autopilot', 'storage', 'jobspec', 'state', 'scheduler', 'node', 'partitions', 'drivers', 'rpc', 'api', 'mesh'],
  scenarios: ['lib', 'sim', 'membership', 'consensus', 'autopilot', 'jobspec', 'state', 'scheduler', 'node', 'partitions', 'drivers'],
  cli: ['lib', 'log', 'platform', 'gen', 'rpc', 'jobspec', 'runtime'],
};


const forbiddenTimeAndChance = [
  { object: 'Date', property: 'now', message: 'Cores take time from their tick/Clock, never from the wall clock.' },
  { object: 'performance', property: 'now', message: 'Cores take time from their tick/Clock.' },
  { object: 'Math', property: 'random', message: 'Cores draw randomness from the seeded Random they are given.' },
  { object: 'process', property: 'hrtime', message: 'Cores take time from their tick/Clock.' },
  { object: 'crypto', property: 'getRandomValues', message: 'Cores draw randomness from the seeded Random.' },
  { object: 'crypto', property: 'randomUUID', message: 'Use newId(random) from src/lib/ids.ts.' },
];

export default tseslint.config(
  { ignores: ['dist/**', 'src/gen/**', 'node_modules/**', 'coverage/**', '.tap/**', '.shoal-dev/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', Buffer: 'readonly', console: 'readonly', URL: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', setImmediate: 'readonly', structuredClone: 'readonly', NodeJS: 'readonly', AbortController: 'readonly', AbortSignal: 'readonly', TextEncoder: 'readonly', TextDecoder: 'readonly', queueMicrotask: 'readonly', performance: 'readonly', fetch: 'readonly', crypto: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'all', caughtErrorsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
      'no-empty': ['error', { allowEmptyCatch: false }],
      eqeqeq: ['error', 'always'],
    },
  },
  ...CORE_FOLDERS.map((folder) => ({
    files: [`src/${folder}/**/*.ts`],
    rules: {
      'no-restricted-properties': ['error', ...forbiddenTimeAndChance],
      'no-restricted-globals': ['error',
        { name: 'setTimeout', message: 'Cores count ticks; the runtime owns timers.' },
        { name: 'setInterval', message: 'Cores count ticks; the runtime owns timers.' },
        { name: 'setImmediate', message: 'Cores count ticks; the runtime owns timers.' },
        { name: 'queueMicrotask', message: 'Cores are synchronous state machines.' },
        { name: 'fetch', message: 'Cores return messages as data; the runtime does I/O.' },
        { name: 'process', message: 'Cores must not depend on the process (env, time, exit).' },
      ],
      'no-restricted-syntax': ['error',
        { selector: "NewExpression[callee.name='Date']", message: 'Cores take time from their tick/Clock, never `new Date()`.' },
        { selector: "CallExpression[callee.name='Date']", message: 'Cores take time from their tick/Clock.' },
      ],
      'no-restricted-imports': ['error', {
        patterns: [{
          regex: `^(?!\\.{1,2}/|node:assert$${(CORE_EXTERNAL_ALLOWED[folder] ?? []).map((p) => `|${p}$`).join('')})`,
          message: 'Core folders import only relative modules and node:assert (jobspec also yaml and zod): no I/O, no other packages.',
        }],
      }],
    },
  })),
  {
    files: ['src/**/*.ts'],
    plugins: { boundaries },
    settings: {
      'import/resolver': { typescript: { project: './tsconfig.json' } },
      // src/index.ts, the package's public barrel, re-exports from modules and is not itself an element.
      'boundaries/include': ['src/*/**/*'],
      'boundaries/elements': [
        ...Object.keys(ALLOWED_IMPORTS).map((m) => ({ type: m, pattern: `src/${m}` })),
      ],
    },
    rules: {
      'boundaries/dependencies': ['error', {
        default: 'disallow',
        policies: Object.entries(ALLOWED_IMPORTS).map(([from, to]) => ({
          from: { element: { type: from } },
          allow: { to: { element: { types: { anyOf: [from, ...to] } } } },
        })),
      }],
      'boundaries/no-unknown-files': 'error',
    },
  },
  {
    files: ['test/**/*.ts', 'scripts/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
);
