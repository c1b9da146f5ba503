import { expect } from 'chai';
import type { V1Job } from '@kubernetes/client-node';
import { resyncDelay } from '../src/runtime/controller.js';
import type { Informer } from '../src/runtime/informer.js';
import { MigrationSlots } from '../src/tenant/migration-job.js';
import { contains, desiredRoutes, upToDate } from '../src/tenant/routes.js';
import type { Tenant } from '../src/tenant/types.js';

const tenant: Tenant = {
  apiVersion: 'platform.vextrus.dev/v1alpha1',
  kind: 'Tenant',
  metadata: { name: 'acme', uid: 'u-1' },
  spec: {
    slug: 'acme',
    displayName: 'Acme',
    hosts: ['acme.localhost'],
    firstAdministrator: { email: 'a@acme.test', name: 'A' },
    firstOrganization: { name: 'Acme Ltd', code: 'ACME' },
  },
};
const targets = {
  namespace: 'vextrus',
  auth: { name: 'vextrus-auth', port: 3001 },
  organization: { name: 'vextrus-organization', port: 3002 },
  entryPoints: ['web'],
};

describe('steady state: resync spread and cached gateway objects', () => {
  it('spreads a resync over the last fifth of its period, never beyond it', () => {
    expect(resyncDelay(300_000, () => 0)).to.equal(300_000);
    expect(resyncDelay(300_000, () => 0.999_999)).to.equal(240_000);
    const delays = Array.from({ length: 1000 }, () => resyncDelay(300_000));
    expect(Math.min(...delays)).to.be.at.least(240_000);
    expect(Math.max(...delays)).to.be.at.most(300_000);
    // A wave of keys does not come back as one: they spread over the whole last fifth.
    expect(Math.max(...delays) - Math.min(...delays)).to.be.above(50_000);
  });

  it('compares desired fields only, but lists element by element and whole', () => {
    expect(contains({ a: 1, b: { c: 2, d: 3 } }, { b: { c: 2 } })).to.equal(true);
    expect(contains({ a: [{ x: 1, y: 2 }] }, { a: [{ x: 1 }] })).to.equal(true);
    expect(contains({ a: [1, 2] }, { a: [1] })).to.equal(false);
    expect(contains({ a: '1' }, { a: 1 })).to.equal(false);
    expect(contains(undefined, { a: 1 })).to.equal(false);
    expect(contains({ a: [1] }, { a: { 0: 1 } })).to.equal(false);
  });

  it('takes a cached gateway object as up to date only when it has the desired spec and owner', () => {
    const { route, middleware } = desiredRoutes(tenant, ['acme.localhost'], targets);
    // As the API server returns it: defaults and fields of other managers besides.
    const cached = {
      metadata: {
        ...route.metadata,
        uid: 'r-1',
        labels: { ...route.metadata.labels, team: 'x' },
      },
      spec: { ...route.spec, tls: {} },
    };
    const otherHosts = desiredRoutes(tenant, ['acme.localhost', 'acme.test'], targets).route;

    expect(upToDate(cached, route)).to.equal(true);
    expect(upToDate(cached, otherHosts)).to.equal(false);
    expect(upToDate(cached, middleware)).to.equal(false);
    expect(upToDate(undefined, route)).to.equal(false);
    expect(
      upToDate({ ...cached, metadata: { ...cached.metadata, ownerReferences: [] } }, route),
    ).to.equal(false);
    const deleting = { ...cached, metadata: { ...cached.metadata, deletionTimestamp: new Date() } };
    expect(upToDate(deleting, route)).to.equal(false);
  });

  it('wakes the tenants waiting longest for a migration slot, as many as are free', () => {
    const job = (name: string, done: boolean): V1Job => ({
      metadata: { name, labels: { 'app.kubernetes.io/component': 'tenant-migration' } },
      status: done ? { conditions: [{ type: 'Complete', status: 'True' }] } : {},
    });
    let jobs = [job('migrate-a', false), job('migrate-b', false)];
    const slots = new MigrationSlots({ list: () => jobs } as unknown as Informer<V1Job>);
    for (const tenant of ['c', 'd', 'e']) slots.wait(tenant);

    expect(slots.nextWaiting(2)).to.deep.equal([]);
    jobs = [job('migrate-a', true), job('migrate-b', false)];
    expect(slots.nextWaiting(2)).to.deep.equal(['c']);
    jobs = [job('migrate-a', true), job('migrate-b', true)];
    slots.stopWaiting('c');
    expect(slots.nextWaiting(2)).to.deep.equal(['d', 'e']);
  });
});
