import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import type { RequestOptions } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { KubeConfigError, OperatorKubeConfig } from '../src/runtime/kubeconfig.js';

const b64 = (text: string) => Buffer.from(text).toString('base64');

function kubeconfig(user: Record<string, unknown>, cluster: Record<string, unknown> = {}) {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:6443', ...cluster } }],
    users: [{ name: 'u', user }],
    contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
    'current-context': 'x',
  });
}

describe("operator's kubeconfig loader", () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(tmpdir(), 'vextrus-kubeconfig-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const apply = async (config: OperatorKubeConfig) => {
    const options: RequestOptions = { headers: { accept: 'application/json' } };
    await config.applyToHTTPSOptions(options);
    return options;
  };

  it('reads inline CA, client certificate and key from the first file of KUBECONFIG', async () => {
    const file = path.join(dir, 'config');
    writeFileSync(
      file,
      kubeconfig(
        { 'client-certificate-data': b64('CERT'), 'client-key-data': b64('KEY') },
        { 'certificate-authority-data': b64('CA'), 'tls-server-name': 'kubernetes' },
      ),
    );
    const config = OperatorKubeConfig.load({ KUBECONFIG: `${file}${path.delimiter}/nowhere` });
    const options = await apply(config);

    expect(config.getCurrentCluster().server).to.equal('https://127.0.0.1:6443');
    expect(String(options.ca)).to.equal('CA');
    expect(String(options.cert)).to.equal('CERT');
    expect(options.key).to.deep.equal(Buffer.from('KEY'));
    expect(options.servername).to.equal('kubernetes');
    expect(options.headers).to.deep.equal({ accept: 'application/json' });
  });

  it('reads files relative to the kubeconfig and a token file again when it changes', async () => {
    writeFileSync(path.join(dir, 'ca.crt'), 'CA-FILE');
    writeFileSync(path.join(dir, 'token'), 'first\n');
    const file = path.join(dir, 'config');
    writeFileSync(file, kubeconfig({ tokenFile: 'token' }, { 'certificate-authority': 'ca.crt' }));
    const config = OperatorKubeConfig.fromFile(file);

    expect((await apply(config)).headers).to.include({ Authorization: 'Bearer first' });
    writeFileSync(path.join(dir, 'token'), 'rotated\n');
    utimesSync(path.join(dir, 'token'), new Date(), new Date(Date.now() + 5_000));
    const options = await apply(config);
    expect(options.headers).to.include({ Authorization: 'Bearer rotated' });
    expect(String(options.ca)).to.equal('CA-FILE');
  });

  it('uses the service account in a cluster', async () => {
    writeFileSync(path.join(dir, 'ca.crt'), 'SA-CA');
    writeFileSync(path.join(dir, 'token'), 'sa-token');
    const config = OperatorKubeConfig.inCluster(
      { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' },
      dir,
    );
    const options = await apply(config);

    expect(config.getCurrentCluster().server).to.equal('https://[fd00::1]:443');
    expect(options.headers).to.include({ Authorization: 'Bearer sa-token' });
    expect(String(options.ca)).to.equal('SA-CA');
  });

  it('refuses exec plugins and a missing context with a clear error', () => {
    const file = path.join(dir, 'config');
    writeFileSync(file, kubeconfig({ exec: { command: 'aws' } }));
    expect(() => OperatorKubeConfig.fromFile(file))
      .to.throw(KubeConfigError)
      .with.property('message')
      .that.matches(/uses exec, which the operator does not support/);
    writeFileSync(file, JSON.stringify({ 'current-context': 'missing' }));
    expect(() => OperatorKubeConfig.fromFile(file)).to.throw(KubeConfigError, /no current context/);
  });
});
