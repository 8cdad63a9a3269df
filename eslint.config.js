import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'coverage/**'] },
  {
    files: ['**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', URL: 'readonly', console: 'readonly' } },
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-properties': ['error', {
        object: 'process', property: 'env',
        message: 'Read configuration through lib/config.ts (loadConfig) and pass options down.',
      }],
      'no-restricted-imports': ['error', {
        paths: [{ name: 'kafkajs', message: 'Use the Kafka port (lib/kafka/index.ts); only its adapter imports a Kafka client.' }],
        patterns: [{ group: ['**/kafka/kafkajs-adapter*'], message: 'Use the Kafka port (lib/kafka/index.ts), not an adapter.' }],
      }],
    },
  },
  {
    // The one file that knows kafkajs, and the port's entry that picks it.
    files: ['lib/kafka/kafkajs-adapter.ts', 'lib/kafka/index.ts'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    // The single place allowed to read the environment, plus entrypoints handing it to loadConfig.
    files: ['lib/config.ts', 'dev/process-env.ts'],
    rules: { 'no-restricted-properties': 'off' },
  },
);
