import { lightbusLintConfig } from '../tooling/eslint.config.js';

export default [{ ignores: ['.snippets/**', '.transport-check/**', 'scripts/**'] }, ...lightbusLintConfig(import.meta.dirname)];
