import { expect } from 'chai';
import { stripMetadata } from '../src/runtime/informer.js';

describe('informer cache trimming', () => {
  it('drops managedFields and kubectl last-applied-configuration, keeps the rest', () => {
    const tenant = {
      apiVersion: 'platform.vextrus.dev/v1alpha1',
      kind: 'Tenant',
      metadata: {
        name: 'acme',
        resourceVersion: '42',
        labels: { team: 'a' },
        annotations: {
          'kubectl.kubernetes.io/last-applied-configuration': '{"spec":{"slug":"acme"}}',
          note: 'kept',
        },
        managedFields: [{ manager: 'kubectl', operation: 'Apply', fieldsV1: { f: {} } }],
      },
      spec: { slug: 'acme' },
    };

    const trimmed = stripMetadata(tenant);

    expect(trimmed.metadata).to.deep.equal({
      name: 'acme',
      resourceVersion: '42',
      labels: { team: 'a' },
      annotations: { note: 'kept' },
    });
    expect(trimmed.spec).to.equal(tenant.spec);
    // The object from the wire is not changed in place.
    expect(tenant.metadata.managedFields).to.have.length(1);
  });

  it('returns an object without either as it is', () => {
    const job = { metadata: { name: 'migrate-acme-1', annotations: { a: 'b' } } };
    expect(stripMetadata(job)).to.equal(job);
  });
});
