// Shared, type-aware lint config. The floating-promise rules are on: a forgotten `await` is the
// classic message-bus bug (a fire that never happens, an ack before the handler finished).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * Builds the lint config for one package.
 * @param {string} tsconfigRootDir the package folder (pass `import.meta.dirname`)
 */
export function lightbusLintConfig(tsconfigRootDir) {
  return tseslint.config(
    { ignores: ['dist/**', 'node_modules/**', '*.config.*', 'coverage/**'] },
    js.configs.recommended,
    ...tseslint.configs.recommendedTypeChecked,
    {
      languageOptions: {
        parserOptions: { projectService: true, tsconfigRootDir },
      },
      rules: {
        '@typescript-eslint/no-floating-promises': 'error',
        '@typescript-eslint/no-misused-promises': 'error',
        '@typescript-eslint/require-await': 'off',
        '@typescript-eslint/no-explicit-any': 'error',
        '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
        '@typescript-eslint/only-throw-error': 'error',
        '@typescript-eslint/no-unsafe-assignment': 'off',
        '@typescript-eslint/no-unsafe-member-access': 'off',
        '@typescript-eslint/no-unsafe-argument': 'off',
        '@typescript-eslint/no-unsafe-return': 'off',
        '@typescript-eslint/no-unsafe-call': 'off',
        '@typescript-eslint/no-redundant-type-constituents': 'off',
        // `{}` is used on purpose in type-level checks ("has no required keys").
        '@typescript-eslint/no-empty-object-type': 'off',
      },
    },
    {
      files: ['test/**'],
      rules: { '@typescript-eslint/unbound-method': 'off' },
    },
  );
}
