/**
 * Test TLS certificates made with openssl: a CA, a server certificate for 127.0.0.1 and
 * localhost, and a client certificate (for servers that ask for one). Made once per process
 * and reused; the files live in a temp folder removed on exit.
 *
 * @module
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from './process.js';

/** File paths and contents of the test certificates. */
export interface TestCertificates {
  /** The folder holding every file. */
  dir: string;
  /** The CA certificate (PEM file): what clients trust. */
  caFile: string;
  /** The server certificate, for CN=localhost with subjectAltName IP:127.0.0.1, DNS:localhost. */
  certFile: string;
  /** The server key. */
  keyFile: string;
  /** A client certificate signed by the same CA (for mutual TLS). */
  clientCertFile: string;
  /** The client key. */
  clientKeyFile: string;
  /** The CA certificate's PEM text. */
  ca: string;
  /** A second CA that signed nothing here: trusting it must make the handshake fail. */
  otherCaFile: string;
}

let cached: TestCertificates | undefined;

function openssl(args: readonly string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`openssl ${args[0]} failed: ${stderr.trim() || String(error)}. Is openssl installed?`);
  }
}

function makeCa(dir: string, name: string): void {
  openssl(
    [
      'req', '-x509', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
      '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
}

function makeLeaf(dir: string, name: string, cn: string, extensions: string): void {
  writeFileSync(join(dir, `${name}.ext`), extensions);
  openssl(['req', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`], dir);
}

/** Makes (once per process) and returns the test certificates. */
export function testCertificates(): TestCertificates {
  if (cached) return cached;
  const dir = makeTempDir('lightbus-tls');
  makeCa(dir, 'ca');
  makeCa(dir, 'other-ca');
  makeLeaf(dir, 'server', 'localhost', 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n');
  makeLeaf(dir, 'client', 'lightbus-test-client', 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n');
  cached = {
    dir,
    caFile: join(dir, 'ca.crt'),
    certFile: join(dir, 'server.crt'),
    keyFile: join(dir, 'server.key'),
    clientCertFile: join(dir, 'client.crt'),
    clientKeyFile: join(dir, 'client.key'),
    ca: readFileSync(join(dir, 'ca.crt'), 'utf8'),
    otherCaFile: join(dir, 'other-ca.crt'),
  };
  return cached;
}
