import { lightbusLintConfig } from '../tooling/eslint.config.js';

export default [{ ignores: ['.snippets/**', 'scripts/**'] }, ...lightbusLintConfig(import.meta.dirname)];
