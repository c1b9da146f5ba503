import { expect } from 'chai';
import {
  CustomObjectsApi,
  EventsV1Api,
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import {
  createPlane,
  prepareForOperator,
  silent,
  startCluster,
  waitUntil,
  type Cluster,
  type TestPlane,
} from '@vextrus/devkit';
import { findTenant } from '@vextrus/migrations';
import {
  FINALIZER,
  setupSecretName,
  startOperator,
  type RunningOperator,
  type Tenant,
} from '@vextrus/operator';

const NAMESPACE = 'vextrus';
const GROUP = { group: 'platform.vextrus.dev', version: 'v1alpha1', plural: 'tenants' };

function tenantBody(slug: string, extra: Partial<Tenant['spec']> = {}): Tenant {
  return {
    apiVersion: 'platform.vextrus.dev/v1alpha1',
    kind: 'Tenant',
    metadata: { name: slug },
    spec: {
      slug,
      displayName: `${slug} Construction`,
      hosts: [`${slug}.localhost`],
      firstAdministrator: { email: `admin@${slug}.test`, name: 'Ada Admin' },
      firstOrganization: { name: `${slug} Ltd`, code: slug.toUpperCase() },
      ...extra,
    },
  };
}

describe('tenant operator (real API server, real PostgreSQL, local node)', function () {
  this.timeout(240_000);
  let cluster: Cluster;
  let plane: TestPlane;
  let operator: RunningOperator;
  let custom: CustomObjectsApi;

  const read = (name: string) =>
    custom.getClusterCustomObject({ ...GROUP, name }) as Promise<Tenant>;
  const condition = (tenant: Tenant, type: string) =>
    tenant.status?.conditions?.find((c) => c.type === type);
  const waitFor = (name: string, what: string, test: (t: Tenant) => boolean, ms = 120_000) =>
    waitUntil(
      `tenant ${name}: ${what}`,
      async () => {
        const tenant = await read(name).catch(() => undefined);
        return tenant && test(tenant) ? tenant : undefined;
      },
      ms,
    );
  const ready = (t: Tenant) => condition(t, 'Ready')?.status === 'True';
  const sql = (text: string) => plane.db.sequelize.query(text);

  before(async () => {
    [cluster, plane] = await Promise.all([startCluster(), createPlane('operator')]);
    await prepareForOperator(cluster, plane, NAMESPACE);
    custom = cluster.kubeConfig.makeApiClient(CustomObjectsApi);
    operator = await startOperator({
      kubeConfig: cluster.kubeConfig,
      db: plane.open(),
      logger: silent,
      identity: 'test-operator',
      settings: {
        namespace: NAMESPACE,
        migrations: {
          namespace: NAMESPACE,
          image: 'vextrus/migrations:test',
          databaseSecret: 'vextrus-database-owner',
          concurrency: 4,
        },
        routes: {
          namespace: NAMESPACE,
          auth: { name: 'vextrus-auth', port: 3001 },
          organization: { name: 'vextrus-organization', port: 3002 },
          entryPoints: ['web'],
        },
        resyncMs: 2_000,
        urlScheme: 'http',
      },
      probePort: 0,
    });
    await operator.leading;
  });

  after(async () => {
    await operator?.stop();
    await cluster?.stop();
    await plane?.close();
  });

  it('takes an applied Tenant to Ready with every condition true, its Job run on the local node', async () => {
    await custom.createClusterCustomObject({ ...GROUP, body: tenantBody('acme') });

    const tenant = await waitFor('acme', 'Ready', ready);
    const job = await cluster.core
      .listNamespacedPod({
        namespace: NAMESPACE,
        labelSelector: 'platform.vextrus.dev/tenant=acme',
      })
      .then((pods) => pods.items.find((p) => p.metadata?.name?.startsWith('migrate-acme-')));
    const secret = await cluster.core.readNamespacedSecret({
      name: setupSecretName('acme'),
      namespace: NAMESPACE,
    });
    const route = (await custom.getNamespacedCustomObject({
      group: 'traefik.io',
      version: 'v1alpha1',
      namespace: NAMESPACE,
      plural: 'ingressroutes',
      name: 'tenant-acme',
    })) as { spec: { routes: { match: string; middlewares: { name: string }[] }[] } };
    const middleware = (await custom.getNamespacedCustomObject({
      group: 'traefik.io',
      version: 'v1alpha1',
      namespace: NAMESPACE,
      plural: 'middlewares',
      name: 'tenant-acme-context',
    })) as { spec: { headers: { customRequestHeaders: Record<string, string> } } };

    for (const type of [
      'SchemaReady',
      'MigrationsApplied',
      'RowLevelSecurityEnforced',
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
    expect((await findTenant(plane.db, 'acme'))?.status).to.equal('active');
  });

  const requests = async (verb: string, resource: string) =>
    (await operator.metrics.apiRequests.get()).values.find(
      (v) => v.labels.verb === verb && v.labels.resource === resource,
    )?.value ?? 0;

  it('moves observedGeneration when the spec changes, and counts its status write', async () => {
    const before = await read('acme');
    const statusWrites = await requests('patch', 'tenants/status');
    await custom.patchClusterCustomObject({
      ...GROUP,
      name: 'acme',
      body: [{ op: 'replace', path: '/spec/displayName', value: 'ACME Holdings' }],
    });

    const after = await waitFor(
      'acme',
      'a new observedGeneration',
      (t) =>
        (t.status?.observedGeneration ?? 0) > (before.status?.observedGeneration ?? 0) && ready(t),
    );

    expect(after.status?.observedGeneration).to.equal(after.metadata?.generation);
    // vextrus_operator_api_requests_total counts the operator's writes, not only its watches.
    expect(await requests('patch', 'tenants/status')).to.be.above(statusWrites);
  });

  it('resyncs a Ready tenant without a request to the API server when nothing drifted', async () => {
    const reconciles = async () =>
      (await operator.metrics.reconcileTotal.get()).values.reduce((n, v) => n + v.value, 0);
    // Every request but the watches, lists and the leader's Lease renewals.
    const work = async () =>
      (await operator.metrics.apiRequests.get()).values
        .filter((v) => !['watch', 'list'].includes(String(v.labels.verb)))
        .filter((v) => v.labels.resource !== 'leases')
        .map((v) => `${v.labels.verb} ${v.labels.resource}: ${v.value}`)
        .sort();
    await waitFor('acme', 'Ready', ready);
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    const [requestsBefore, reconcilesBefore] = [await work(), await reconciles()];

    await new Promise((resolve) => setTimeout(resolve, 5_000));

    // At a 2 s resync (spread over 1.6-2 s), at least two resyncs of acme happened.
    expect(await reconciles()).to.be.at.least(reconcilesBefore + 2);
    expect(await work()).to.deep.equal(requestsBefore);
  });

  it('puts back an IngressRoute that someone else edited, at once', async () => {
    const route = {
      group: 'traefik.io',
      version: 'v1alpha1',
      namespace: NAMESPACE,
      plural: 'ingressroutes',
      name: 'tenant-acme',
    };
    await custom.patchNamespacedCustomObject(
      { ...route, body: [{ op: 'replace', path: '/spec/entryPoints', value: ['websecure'] }] },
      setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
    );

    const restored = await waitUntil(
      'the entry points to be restored',
      async () => {
        const current = (await custom.getNamespacedCustomObject(route)) as {
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
    await custom.deleteNamespacedCustomObject({
      group: 'traefik.io',
      version: 'v1alpha1',
      namespace: NAMESPACE,
      plural: 'ingressroutes',
      name: 'tenant-acme',
    });

    await waitUntil('the route to be recreated', () =>
      custom
        .getNamespacedCustomObject({
          group: 'traefik.io',
          version: 'v1alpha1',
          namespace: NAMESPACE,
          plural: 'ingressroutes',
          name: 'tenant-acme',
        })
        .then(() => true),
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
      const { items } = await cluster.kubeConfig
        .makeApiClient(EventsV1Api)
        .listNamespacedEvent({ namespace: 'default' });
      return items.find((e) => e.reason === 'DriftRepaired' && e.note?.includes('RLS_NOT_FORCED'));
    });

    expect(rows).to.have.length(1);
    expect(event.note).to.include('POLICY_MISSING table tenant_acme.organizations');
    expect(event.regarding?.name).to.equal('acme');
  });

  it('gives a later tenant claiming the same host a HostConflict and no route; the first keeps it', async () => {
    await custom.createClusterCustomObject({
      ...GROUP,
      body: tenantBody('beta', { hosts: ['acme.localhost', 'beta.localhost'] }),
    });

    const beta = await waitFor(
      'beta',
      'HostConflict',
      (t) => condition(t, 'HostConflict')?.status === 'True',
    );
    const betaRoute: unknown = await custom
      .getNamespacedCustomObject({
        group: 'traefik.io',
        version: 'v1alpha1',
        namespace: NAMESPACE,
        plural: 'ingressroutes',
        name: 'tenant-beta',
      })
      .catch((err: { code?: number }) => err.code);
    const acme = await read('acme');

    expect(condition(beta, 'HostConflict')?.message).to.include('acme.localhost');
    expect(condition(beta, 'Ready')?.status).to.equal('False');
    expect(betaRoute).to.equal(404);
    expect(ready(acme)).to.equal(true);
  });

  it('on deletion with Retain, removes routes and access and keeps the data', async () => {
    await custom.deleteClusterCustomObject({ ...GROUP, name: 'acme' });

    await waitUntil('acme to be gone', () =>
      read('acme').then(
        () => undefined,
        () => true,
      ),
    );
    const [schemas] = await sql(
      "SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'tenant_acme'",
    );

    expect((schemas as { n: number }[])[0]?.n).to.equal(1);
    expect((await findTenant(plane.db, 'acme'))?.status).to.equal('retained');
  });

  it('keeps the finalizer and reports DeletionBlocked while cleanup fails, then deletes with Delete', async () => {
    // beta got its own route once acme's claim went away; make Delete fail with a foreign table.
    await waitFor('beta', 'Ready', ready);
    await custom.patchClusterCustomObject({
      ...GROUP,
      name: 'beta',
      body: [{ op: 'replace', path: '/spec/deletionPolicy', value: 'Delete' }],
    });
    await waitFor(
      'beta',
      'the new generation',
      (t) => t.status?.observedGeneration === t.metadata?.generation,
    );
    await sql('CREATE TABLE tenant_beta.not_ours (id int)');

    await custom.deleteClusterCustomObject({ ...GROUP, name: 'beta' });
    const blocked = await waitFor(
      'beta',
      'DeletionBlocked',
      (t) => condition(t, 'DeletionBlocked')?.status === 'True',
    );
    expect(blocked.metadata?.finalizers).to.include(FINALIZER);
    expect(condition(blocked, 'DeletionBlocked')?.message).to.include('not_ours');

    await sql('DROP TABLE tenant_beta.not_ours');
    await waitUntil('beta to be gone', () =>
      read('beta').then(
        () => undefined,
        () => true,
      ),
    );
    const [schemas] = await sql(
      "SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'tenant_beta'",
    );
    expect((schemas as { n: number }[])[0]?.n).to.equal(0);
    expect(await findTenant(plane.db, 'beta')).to.equal(undefined);
  });

  it('serves health, readiness and controller-runtime metrics', async () => {
    const base = `http://127.0.0.1:${operator.probePort}`;
    const [healthz, readyz, metrics] = await Promise.all([
      fetch(`${base}/healthz`),
      fetch(`${base}/readyz`),
      fetch(`${base}/metrics`).then((r) => r.text()),
    ]);

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
