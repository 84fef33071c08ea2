// Structural checks of the workspace packages, run by `pnpm test`. Each published package must
// have: ESM with an exports map (types, import, default), a README with install/example/options
// sections, the standard scripts, a lint config, and core as a peer dependency (transports).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const problems = [];
const TEST_SCRIPT = 'vitest run --reporter=default --reporter=json --outputFile=.vitest-results.json';

for (const name of readdirSync(join(root, 'packages'))) {
  const dir = join(root, 'packages', name);
  const pkgFile = join(dir, 'package.json');
  if (!existsSync(pkgFile)) continue;
  const pkg = JSON.parse(readFileSync(pkgFile, 'utf8'));
  const where = `packages/${name}`;
  if (pkg.type !== 'module') problems.push(`${where}: "type" must be "module"`);
  const dot = pkg.exports?.['.'];
  if (!dot || !dot.types || !dot.import || !dot.default) problems.push(`${where}: exports["."] needs types, import and default`);
  for (const script of ['build', 'typecheck', 'lint', 'test']) {
    if (!pkg.scripts?.[script]) problems.push(`${where}: missing script "${script}"`);
  }
  if (pkg.scripts?.test && !pkg.scripts.test.startsWith(TEST_SCRIPT)) {
    problems.push(`${where}: the test script must start with "${TEST_SCRIPT}" (the root sums the results)`);
  }
  if (!existsSync(join(dir, 'eslint.config.js'))) problems.push(`${where}: no eslint.config.js`);
  const readme = existsSync(join(dir, 'README.md')) ? readFileSync(join(dir, 'README.md'), 'utf8') : '';
  if (!readme) problems.push(`${where}: no README.md`);
  else {
    for (const section of ['Install', 'Example', 'Options']) {
      if (!new RegExp(`^#+ .*${section}`, 'mi').test(readme)) problems.push(`${where}: README.md has no "${section}" section`);
    }
  }
  if (!pkg.private && !pkg.engines?.node) problems.push(`${where}: engines.node is missing`);
  if (name !== 'core' && !pkg.private && pkg.name !== '@lightbus/cli' && !pkg.peerDependencies?.['@lightbus/core']) {
    problems.push(`${where}: @lightbus/core must be a peer dependency`);
  }
}

if (problems.length > 0) {
  console.error(`Package structure problems:\n  - ${problems.join('\n  - ')}`);
  process.exit(1);
}
console.log('check-packages: every package has the expected structure');
