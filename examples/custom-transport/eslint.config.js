import { lightbusLintConfig } from '../../tooling/eslint.config.js';

export default lightbusLintConfig(import.meta.dirname);
