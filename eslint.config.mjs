import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.dist-build-*/**', '.node-red-oauth2/**', '.node-red-oauth2-demo/**', 'runtime/dist/**', 'runtime/node_modules/**', 'runtime/.dist-build-*/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.js', '**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { require: 'readonly', module: 'writable', process: 'readonly', __dirname: 'readonly', console: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // The editor's shared script runs in the browser, beside Node-RED's editor globals.
    files: ['resources/**/*.js', 'runtime/assets/**/*.js'],
    languageOptions: { sourceType: 'script', globals: { window: 'readonly', RED: 'readonly' } },
  },
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'off',
    },
  },
);
