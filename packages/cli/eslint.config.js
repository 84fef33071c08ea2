import { lightbusLintConfig } from '../../tooling/eslint.config.js';

// The plain-JavaScript fixture stands for a built service; it is not part of the TypeScript project.
export default [{ ignores: ['test/fixtures/**/*.js', '.tmp/**'] }, ...lightbusLintConfig(import.meta.dirname)];
