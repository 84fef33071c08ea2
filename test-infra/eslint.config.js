import { lightbusLintConfig } from '../tooling/eslint.config.js';

// The plain .mjs scripts (check-servers, summarize) run before anything is built; they are not
// part of the TypeScript project.
export default [{ ignores: ['*.mjs'] }, ...lightbusLintConfig(import.meta.dirname)];
