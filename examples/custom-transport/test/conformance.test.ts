// File: test/conformance.test.ts
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeSchemaTransport } from '@lightbus/transport-test-suite';
import { FileSchemaTransport } from '../src/file-schema-transport.js';

const folder = (id: string) => join(tmpdir(), `lightbus-schemas-${id}`);

describeSchemaTransport({
  name: 'file',
  create: (ctx) => new FileSchemaTransport({ dir: folder(ctx.id) }),
  cleanup: (ctx) => rm(folder(ctx.id), { recursive: true, force: true }),
});
