import { expect } from 'chai';
import { KubeConfig } from '@kubernetes/client-node';
import { describeRequest, httpsOptions, observedKubeConfig } from '../src/runtime/http.js';

const at = (path: string) => new URL(`https://127.0.0.1:6443${path}`);

describe('API request metric labels', () => {
  it('names the Kubernetes verb and the resource of every kind of request the operator makes', () => {
    const cases: [string, string, string, string][] = [
      ['GET', '/apis/platform.vextrus.dev/v1alpha1/tenants?limit=500', 'list', 'tenants'],
      [
        'GET',
        '/apis/batch/v1/namespaces/vextrus/jobs?watch=true&resourceVersion=7',
        'watch',
        'jobs',
      ],
      ['GET', '/api/v1/namespaces/vextrus/secrets/tenant-acme-setup-token', 'get', 'secrets'],
      ['GET', '/api/v1/namespaces/vextrus/pods/migrate-acme-1/log?tailLines=10', 'get', 'pods/log'],
      ['POST', '/apis/batch/v1/namespaces/vextrus/jobs', 'create', 'jobs'],
      ['PUT', '/apis/coordination.k8s.io/v1/namespaces/vextrus/leases/leader', 'update', 'leases'],
      [
        'PATCH',
        '/apis/platform.vextrus.dev/v1alpha1/tenants/acme/status',
        'patch',
        'tenants/status',
      ],
      ['DELETE', '/apis/batch/v1/namespaces/vextrus/jobs/migrate-acme-1', 'delete', 'jobs'],
      ['GET', '/api/v1/namespaces/vextrus', 'get', 'namespaces'],
      ['POST', '/api/v1/namespaces/default/events', 'create', 'events'],
    ];
    for (const [method, path, verb, resource] of cases) {
      expect(describeRequest(method, at(path)), `${method} ${path}`).to.deep.equal({
        verb,
        resource,
      });
    }
  });

  it('keeps labels bounded: no names, namespaces or odd paths become a resource', () => {
    expect(describeRequest('GET', at('/healthz')).resource).to.equal('other');
    expect(describeRequest('GET', at('/api/v1/namespaces/a/pods/b/log/extra')).resource).to.equal(
      'other',
    );
    expect(describeRequest('GET', at('/apis/x/v1/Weird_Path')).resource).to.equal('other');
  });

  it('reports requests made through the observed configuration only', async () => {
    const base = new KubeConfig();
    base.loadFromOptions({
      clusters: [{ name: 'c', server: 'https://127.0.0.1:1', skipTLSVerify: true }],
      users: [{ name: 'u', token: 'secret' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    const seen: string[] = [];
    const observed = observedKubeConfig(base, (verb, resource) => seen.push(`${verb} ${resource}`));

    const options = await httpsOptions(observed, 'POST', '/api/v1/namespaces/vextrus/secrets');
    await httpsOptions(base, 'GET', '/api/v1/namespaces/vextrus/secrets');

    expect(seen).to.deep.equal(['create secrets']);
    // The observed configuration still authenticates as the original.
    expect(options.headers).to.have.property('Authorization', 'Bearer secret');
  });
});
