import { expect } from 'chai';
import { EventsV1Api, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { waitUntil } from '@vextrus/devkit';
import { findTenant } from '@vextrus/migrations';
import { FINALIZER, setupSecretName, type RunningOperator } from '@vextrus/operator';
import {
  NAMESPACE,
  TENANT_RESOURCE,
  TRAEFIK,
  condition,
  ready,
  reconciles,
  sleep,
  startHarness,
  type Harness,
} from './support/harness.js';

describe('tenant operator (real API server, real PostgreSQL, local node)', function () {
  this.timeout(240_000);
  let h: Harness;
  let operator: RunningOperator;

  const sql = (text: string) => h.plane.db.sequelize.query(text);
  const acmeRoute = { ...TRAEFIK, plural: 'ingressroutes', name: 'tenant-acme' };

  before(async () => {
    h = await startHarness({ plane: 'operator' });
    operator = await h.startOperator({ identity: 'test-operator', probePort: 0 });
    await operator.leading;
  });

  after(async () => {
    await h?.stop();
  });

  it('takes an applied Tenant to Ready with every condition true, its Job run on the local node', async () => {
    await h.apply('acme');

    const tenant = await h.waitFor('acme', 'Ready', ready);
    const job = await h.cluster.core
      .listNamespacedPod({
        namespace: NAMESPACE,
        labelSelector: 'platform.vextrus.dev/tenant=acme',
      })
      .then((pods) => pods.items.find((p) => p.metadata?.name?.startsWith('migrate-acme-')));
    const secret = await h.cluster.core.readNamespacedSecret({
      name: setupSecretName('acme'),
      namespace: NAMESPACE,
    });
    const route = (await h.custom.getNamespacedCustomObject(acmeRoute)) as {
      spec: { routes: { match: string; middlewares: { name: string }[] }[] };
    };
    const middleware = (await h.custom.getNamespacedCustomObject({
      ...TRAEFIK,
      plural: 'middlewares',
      name: 'tenant-acme-context',
    })) as { spec: { headers: { customRequestHeaders: Record<string, string> } } };

    for (const type of [
      'SchemaReady',
      'MigrationsApplied',
      'RowLevelSecurityEnforced',
      'Seeded',
      'RoutesReady',
    ]) {
      expect(condition(tenant, type)?.status, type).to.equal('True');
      expect(condition(tenant, type)?.observedGeneration).to.equal(tenant.metadata?.generation);
    }
    expect(tenant.status?.phase).to.equal('Ready');
    expect(tenant.status?.schema).to.equal('tenant_acme');
    expect(tenant.status?.migrationVersion).to.be.a('string').and.not.equal('');
    expect(tenant.status?.urls).to.deep.equal(['http://acme.localhost']);
    expect(tenant.metadata?.finalizers).to.include(FINALIZER);
    expect(job?.status?.phase).to.equal('Succeeded');
    expect(Buffer.from(secret.data?.token ?? '', 'base64').toString()).to.have.length.above(20);
    expect(middleware.spec.headers.customRequestHeaders).to.deep.equal({ 'X-Tenant-ID': 'acme' });
    expect(route.spec.routes[0]?.match).to.include('Host(`acme.localhost`)');
    expect(route.spec.routes[0]?.middlewares[0]?.name).to.equal('tenant-acme-context');
    expect((await findTenant(h.plane.db, 'acme'))?.status).to.equal('active');
  });

  const requests = async (verb: string, resource: string) =>
    (await operator.metrics.apiRequests.get()).values.find(
      (v) => v.labels.verb === verb && v.labels.resource === resource,
    )?.value ?? 0;

  it('moves observedGeneration when the spec changes, and counts its status write', async () => {
    const before = await h.read('acme');
    const statusWrites = await requests('patch', 'tenants/status');
    await h.custom.patchClusterCustomObject({
      ...TENANT_RESOURCE,
      name: 'acme',
      body: [{ op: 'replace', path: '/spec/displayName', value: 'ACME Holdings' }],
    });

    const after = await h.waitFor(
      'acme',
      'a new observedGeneration',
      (t) =>
        (t.status?.observedGeneration ?? 0) > (before.status?.observedGeneration ?? 0) && ready(t),
    );

    expect(after.status?.observedGeneration).to.equal(after.metadata?.generation);
    // vextrus_operator_api_requests_total counts the operator's writes, not only its watches.
    expect(await requests('patch', 'tenants/status')).to.be.above(statusWrites);
  });

  it('is not Ready while seeding fails: Seeded False, an Event, and Ready once it succeeds', async () => {
    await h.waitFor('acme', 'Ready', ready);
    // The database refuses the new retention window the spec asks for (a fault only a test
    // injects; in life: a lost connection, a full disk, a lock timeout).
    await sql(`CREATE FUNCTION public.refuse_retention() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'retention refused by the test'; END $$`);
    await sql(`CREATE TRIGGER refuse_retention BEFORE UPDATE OF audit_retention_days
      ON platform.tenants FOR EACH ROW EXECUTE FUNCTION public.refuse_retention()`);
    try {
      await h.custom.patchClusterCustomObject({
        ...TENANT_RESOURCE,
        name: 'acme',
        body: [{ op: 'add', path: '/spec/auditRetentionDays', value: 90 }],
      });

      const failing = await h.waitFor(
        'acme',
        'Seeded False for the new generation',
        (t) =>
          condition(t, 'Seeded')?.status === 'False' &&
          t.status?.observedGeneration === t.metadata?.generation,
      );
      expect(condition(failing, 'Seeded')?.reason).to.equal('SeedingFailed');
      expect(condition(failing, 'Seeded')?.message).to.include('retention refused by the test');
      expect(condition(failing, 'Ready')).to.include({ status: 'False', reason: 'NotReady' });
      expect(condition(failing, 'Ready')?.message).to.include('Seeded');
      expect(failing.status?.phase).to.equal('Degraded');
      const event = await waitUntil('a SeedingFailed Event', async () => {
        const { items } = await h.cluster.kubeConfig
          .makeApiClient(EventsV1Api)
          .listNamespacedEvent({ namespace: 'default' });
        return items.find((e) => e.reason === 'SeedingFailed' && e.regarding?.name === 'acme');
      });
      expect(event.note).to.include('retention refused by the test');
    } finally {
      await sql('DROP TRIGGER refuse_retention ON platform.tenants');
      await sql('DROP FUNCTION public.refuse_retention()');
    }

    const healed = await h.waitFor('acme', 'Ready again', ready);
    expect(condition(healed, 'Seeded')).to.include({ status: 'True', reason: 'Seeded' });
    const [rows] = await sql(
      "SELECT audit_retention_days AS days FROM platform.tenants WHERE slug = 'acme'",
    );
    expect((rows as { days: number }[])[0]?.days).to.equal(90);
  });

  it('resyncs a Ready tenant without a request to the API server when nothing drifted', async () => {
    // Every request but the watches, lists and the leader's Lease renewals.
    const work = async () =>
      (await operator.metrics.apiRequests.get()).values
        .filter((v) => !['watch', 'list'].includes(String(v.labels.verb)))
        .filter((v) => v.labels.resource !== 'leases')
        .map((v) => `${v.labels.verb} ${v.labels.resource}: ${v.value}`)
        .sort();
    await h.waitFor('acme', 'Ready', ready);
    await sleep(2_500);
    const [requestsBefore, reconcilesBefore] = [await work(), await reconciles(operator)];

    await sleep(5_000);

    // At a 2 s resync (spread over 1.6-2 s), at least two resyncs of acme happened.
    expect(await reconciles(operator)).to.be.at.least(reconcilesBefore + 2);
    expect(await work()).to.deep.equal(requestsBefore);
  });

  it('puts back an IngressRoute that someone else edited, at once', async () => {
    await h.custom.patchNamespacedCustomObject(
      { ...acmeRoute, body: [{ op: 'replace', path: '/spec/entryPoints', value: ['websecure'] }] },
      setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
    );

    const restored = await waitUntil(
      'the entry points to be restored',
      async () => {
        const current = (await h.custom.getNamespacedCustomObject(acmeRoute)) as {
          spec: { entryPoints: string[] };
        };
        return current.spec.entryPoints[0] === 'web' ? current : undefined;
      },
      10_000,
    );

    expect(restored.spec.entryPoints).to.deep.equal(['web']);
  });

  it('repairs a dropped policy, unforced RLS and a deleted IngressRoute within a resync', async () => {
    await sql('ALTER TABLE tenant_acme.organizations NO FORCE ROW LEVEL SECURITY');
    await sql('DROP POLICY tenant_isolation ON tenant_acme.organizations');
    await h.custom.deleteNamespacedCustomObject(acmeRoute);

    await waitUntil('the route to be recreated', () =>
      h.custom.getNamespacedCustomObject(acmeRoute).then(() => true),
    );
    const [rows] = await waitUntil('RLS to be forced again', async () => {
      const result = await sql(
        `SELECT c.relforcerowsecurity AS forced,
                (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)::int AS policies
           FROM pg_class c WHERE c.oid = 'tenant_acme.organizations'::regclass`,
      );
      const row = (result[0] as { forced: boolean; policies: number }[])[0];
      return row?.forced && row.policies === 1 ? result : undefined;
    });
    // The drift found in PostgreSQL is named in an Event on the Tenant.
    const event = await waitUntil('a DriftRepaired Event naming the drift', async () => {
      const { items } = await h.cluster.kubeConfig
        .makeApiClient(EventsV1Api)
        .listNamespacedEvent({ namespace: 'default' });
      return items.find((e) => e.reason === 'DriftRepaired' && e.note?.includes('RLS_NOT_FORCED'));
    });

    expect(rows).to.have.length(1);
    expect(event.note).to.include('POLICY_MISSING table tenant_acme.organizations');
    expect(event.regarding?.name).to.equal('acme');
  });

  it('gives a later tenant claiming the same host a HostConflict and no route; the first keeps it', async () => {
    await h.apply('beta', { hosts: ['acme.localhost', 'beta.localhost'] });

    const beta = await h.waitFor(
      'beta',
      'HostConflict',
      (t) => condition(t, 'HostConflict')?.status === 'True',
    );
    const betaRoute: unknown = await h.custom
      .getNamespacedCustomObject({ ...TRAEFIK, plural: 'ingressroutes', name: 'tenant-beta' })
      .catch((err: { code?: number }) => err.code);
    const acme = await h.read('acme');

    expect(condition(beta, 'HostConflict')?.message).to.include('acme.localhost');
    expect(condition(beta, 'Ready')?.status).to.equal('False');
    expect(betaRoute).to.equal(404);
    expect(ready(acme)).to.equal(true);
  });

  it('on deletion with Retain, removes routes and access and keeps the data', async () => {
    await h.custom.deleteClusterCustomObject({ ...TENANT_RESOURCE, name: 'acme' });

    await h.waitGone('acme');
    const [schemas] = await sql(
      "SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'tenant_acme'",
    );

    expect((schemas as { n: number }[])[0]?.n).to.equal(1);
    expect((await findTenant(h.plane.db, 'acme'))?.status).to.equal('retained');
  });

  it('keeps the finalizer and reports DeletionBlocked while cleanup fails, then deletes with Delete', async () => {
    // beta got its own route once acme's claim went away; make Delete fail with a foreign table.
    await h.waitFor('beta', 'Ready', ready);
    await h.custom.patchClusterCustomObject({
      ...TENANT_RESOURCE,
      name: 'beta',
      body: [{ op: 'replace', path: '/spec/deletionPolicy', value: 'Delete' }],
    });
    await h.waitFor(
      'beta',
      'the new generation',
      (t) => t.status?.observedGeneration === t.metadata?.generation,
    );
    await sql('CREATE TABLE tenant_beta.not_ours (id int)');

    await h.custom.deleteClusterCustomObject({ ...TENANT_RESOURCE, name: 'beta' });
    const blocked = await h.waitFor(
      'beta',
      'DeletionBlocked',
      (t) => condition(t, 'DeletionBlocked')?.status === 'True',
    );
    expect(blocked.metadata?.finalizers).to.include(FINALIZER);
    expect(condition(blocked, 'DeletionBlocked')?.message).to.include('not_ours');

    await sql('DROP TABLE tenant_beta.not_ours');
    await h.waitGone('beta');
    const [schemas] = await sql(
      "SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'tenant_beta'",
    );
    expect((schemas as { n: number }[])[0]?.n).to.equal(0);
    expect(await findTenant(h.plane.db, 'beta')).to.equal(undefined);
  });

  it('serves health, readiness and controller-runtime metrics', async () => {
    const base = `http://127.0.0.1:${operator.probePort}`;
    const [healthz, readyz, metrics] = await Promise.all([
      fetch(`${base}/healthz`),
      fetch(`${base}/readyz`),
      fetch(`${base}/metrics`).then((r) => r.text()),
    ]);

    const unknown = await fetch(`${base}/status`);
    expect(unknown.status).to.equal(404);
    expect(unknown.headers.get('content-type')).to.equal('application/problem+json');
    expect(await unknown.json()).to.include({ code: 'ROUTE_NOT_FOUND', instance: '/status' });
    expect(healthz.status).to.equal(200);
    expect(readyz.status).to.equal(200);
    expect(metrics).to.match(/controller_runtime_reconcile_total\{controller="tenant",result="/);
    expect(metrics).to.include('workqueue_depth{name="tenant"}');
    expect(metrics).to.include('leader_election_master_status{name="vextrus-operator-leader"} 1');
    for (const [verb, resource] of [
      ['list', 'tenants'],
      ['watch', 'jobs'],
      ['create', 'jobs'],
      ['create', 'secrets'],
      ['get', 'secrets'],
      ['patch', 'ingressroutes'],
      ['update', 'leases'],
    ]) {
      expect(metrics).to.match(
        new RegExp(
          `vextrus_operator_api_requests_total\\{verb="${verb}",resource="${resource}"\\} [1-9]`,
        ),
      );
    }
  });
});
