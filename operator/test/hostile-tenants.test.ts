import { expect } from 'chai';
import {
  ApiextensionsV1Api,
  BatchV1Api,
  EventsV1Api,
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import { waitUntil } from '@vextrus/devkit';
import { findTenant } from '@vextrus/migrations';
import { FINALIZER, type RunningOperator, type Tenant } from '@vextrus/operator';
import { specProblems } from '../src/tenant/spec.js';
import {
  NAMESPACE,
  TENANT_RESOURCE,
  TRAEFIK,
  condition,
  ready,
  sleep,
  startHarness,
  tenantBody,
  type Harness,
} from './support/harness.js';

/*
 * Hostile and mistaken Tenants against a real kube-apiserver (with etcd and
 * kube-controller-manager) and a real PostgreSQL. The one simulated part is devkit's local node,
 * a fake kubelet that runs the migration Jobs' Pods as local processes. The promise under test:
 * the API server refuses what the CRD schema can express; anything else that is wrong ends in a
 * condition with a stable reason and an Event, never a crash, a hot retry loop, a stack trace or
 * a half-provisioned tenant, and other tenants are not affected.
 */

/** What the API server answered to a create: 'created', or the status code and its message. */
type Answer = 'created' | { code: number; message: string };

describe('hostile tenants (real API server, real PostgreSQL, local node)', function () {
  this.timeout(240_000);
  let h: Harness;
  let operator: RunningOperator;

  const sql = async (text: string, bind: unknown[] = []) =>
    (await h.plane.db.sequelize.query(text, { bind }))[0] as Record<string, unknown>[];
  const schemaExists = async (schema: string) =>
    (await sql('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema])).length === 1;

  /** Creates a Tenant from a raw body and reports what the API server said. */
  const create = async (body: unknown, fieldValidation?: string): Promise<Answer> => {
    try {
      await h.custom.createClusterCustomObject({ ...TENANT_RESOURCE, body, fieldValidation });
      return 'created';
    } catch (err) {
      const { code, body: text } = err as { code?: number; body?: unknown };
      const message = typeof text === 'string' ? text : JSON.stringify(text);
      return { code: code ?? 0, message: (JSON.parse(message) as { message: string }).message };
    }
  };
  const remove = (name: string) =>
    h.custom.deleteClusterCustomObject({ ...TENANT_RESOURCE, name }).catch(() => undefined);
  const events = async (name: string) =>
    (
      await h.cluster.kubeConfig
        .makeApiClient(EventsV1Api)
        .listNamespacedEvent({ namespace: 'default' })
    ).items.filter((e) => e.regarding?.kind === 'Tenant' && e.regarding.name === name);
  const healthy = async () =>
    (await fetch(`http://127.0.0.1:${operator.probePort}/healthz`)).status;

  before(async () => {
    h = await startHarness({ plane: 'hostile' });
    operator = await h.startOperator({ identity: 'hostile-operator', probePort: 0 });
    await operator.leading;
    // A well-behaved tenant that every test below expects to stay Ready.
    await h.apply('bystander');
    await h.waitFor('bystander', 'Ready', ready);
  });

  afterEach(async () => {
    expect(await healthy()).to.equal(200);
    expect(ready(await h.read('bystander')), 'the bystander tenant stays Ready').to.equal(true);
  });

  after(async () => {
    await h?.stop();
  });

  it('has the API server refuse, with the field named, what the CRD schema forbids', async () => {
    const long = `a${'b'.repeat(40)}`;
    const cases: [string, Tenant, string][] = [
      ['a 41-character slug', tenantBody(long), 'spec.slug'],
      ['an uppercase slug', tenantBody('Acme'), 'spec.slug'],
      ['an underscore (pg_catalog)', tenantBody('pg_catalog'), 'spec.slug'],
      ['a slug ending in a hyphen', tenantBody('acme-'), 'spec.slug'],
      ['two hyphens in a row', tenantBody('a--b'), 'spec.slug'],
      [
        'a name that is not the slug',
        { ...tenantBody('acme'), metadata: { name: 'other' } },
        'spec.slug: Invalid value: metadata.name must equal spec.slug',
      ],
      ['a wildcard host', tenantBody('wild', { hosts: ['*.wild.test'] }), 'spec.hosts'],
      ['an uppercase host', tenantBody('upper', { hosts: ['Upper.test'] }), 'spec.hosts'],
      ['a host with a port', tenantBody('port', { hosts: ['port.test:443'] }), 'spec.hosts'],
      ['a host twice', tenantBody('twice', { hosts: ['a.test', 'a.test'] }), 'spec.hosts'],
      ['no host', tenantBody('none', { hosts: [] }), 'spec.hosts'],
      ['0 retention days', tenantBody('zero', { auditRetentionDays: 0 }), 'auditRetentionDays'],
      [
        'a century of retention',
        tenantBody('century', { auditRetentionDays: 36_500 }),
        'auditRetentionDays',
      ],
      [
        'a malformed email',
        tenantBody('mail', { firstAdministrator: { email: 'not-an-email', name: 'A' } }),
        'spec.firstAdministrator.email',
      ],
      [
        'an unknown deletion policy',
        tenantBody('policy', { deletionPolicy: 'Shred' as 'Delete' }),
        'spec.deletionPolicy',
      ],
      [
        'a blank administrator name',
        tenantBody('blank-admin', { firstAdministrator: { email: 'a@b.test', name: '   ' } }),
        'spec.firstAdministrator.name',
      ],
      [
        'a blank organization name',
        tenantBody('blank-org', { firstOrganization: { name: ' \t ', code: 'ORG' } }),
        'spec.firstOrganization.name',
      ],
      ['a blank display name', tenantBody('blank-display', { displayName: '  ' }), 'displayName'],
    ];

    const answers = await Promise.all(cases.map(([, body]) => create(body)));
    // Whatever got through is removed again, so that no later test meets it.
    const through = cases.filter((_, i) => answers[i] === 'created');
    await Promise.all(through.map(([, body]) => remove(body.metadata?.name ?? '')));

    const wrong = cases.flatMap(([what, , field], i) => {
      const answer = answers[i] ?? 'created';
      if (answer === 'created') return [`${what}: created`];
      return answer.message.includes(field) ? [] : [`${what}: ${answer.message}`];
    });
    expect(wrong).to.deep.equal([]);
    expect(answers.every((a) => a !== 'created' && a.code === 422)).to.equal(true);
  });

  it('refuses unknown fields under strict validation and drops them otherwise', async () => {
    const body = { ...tenantBody('extra'), spec: { ...tenantBody('extra').spec, sudo: true } };

    const strict = await create(body, 'Strict');
    const lax = await create(body);

    expect(strict).to.deep.include({ code: 400 });
    expect((strict as { message: string }).message).to.include('unknown field "spec.sudo"');
    expect(lax).to.equal('created');
    expect((await h.read('extra')).spec).to.not.have.property('sudo');
    await remove('extra');
    await h.waitGone('extra');
  });

  it('keeps the slug and the name immutable, and a second Tenant of a slug is AlreadyExists', async () => {
    await h.apply('fixed');
    const again = await create(tenantBody('fixed'));
    let patched: unknown;
    try {
      await h.custom.patchClusterCustomObject({
        ...TENANT_RESOURCE,
        name: 'fixed',
        body: [{ op: 'replace', path: '/spec/slug', value: 'renamed' }],
      });
    } catch (err) {
      patched = (err as { body?: string }).body;
    }

    expect(again).to.deep.include({ code: 409 });
    expect(String(patched)).to.include('slug is immutable');
    expect((await h.read('fixed')).spec.slug).to.equal('fixed');
    await remove('fixed');
    await h.waitGone('fixed');
  });

  it('provisions slugs at the length limit and named like reserved schemas under their prefix', async () => {
    const longest = `l${'0123456789'.repeat(3)}abcdefghi`;
    const slugs = [longest, 'platform', 'public', 'information-schema'];
    expect(longest).to.have.length(40);

    try {
      // The organization code, derived from the slug by default, has a limit of its own.
      await Promise.all(
        slugs.map((slug) => h.apply(slug, { firstOrganization: { name: 'Org', code: 'ORG' } })),
      );
      const tenants = await Promise.all(slugs.map((slug) => h.waitFor(slug, 'Ready', ready)));

      expect(tenants.map((t) => t.status?.schema)).to.deep.equal([
        `tenant_${longest}`,
        'tenant_platform',
        'tenant_public',
        'tenant_information_schema',
      ]);
      // The role name is the longest identifier: it must reach PostgreSQL whole, not truncated.
      const roleName = (await findTenant(h.plane.db, longest))?.roleName ?? '';
      const [role] = await sql('SELECT rolname FROM pg_roles WHERE rolname = $1', [roleName]);
      expect(roleName).to.match(new RegExp(`${longest}$`));
      expect(Buffer.byteLength(roleName)).to.be.at.most(63);
      expect(role?.rolname).to.equal(roleName);
      // The platform's own schema is untouched and the registry keeps them apart.
      expect(await schemaExists('platform')).to.equal(true);
      expect((await findTenant(h.plane.db, 'platform'))?.schemaName).to.equal('tenant_platform');
    } finally {
      await Promise.all(slugs.map(remove));
      await Promise.all(slugs.map((slug) => h.waitGone(slug)));
    }
  });

  it('reports an administrator email the schema lets through but provisioning refuses, and provisions nothing', async () => {
    // A no-break space: outside the ASCII \s of the API server's patterns, inside JavaScript's.
    const email = 'ada\u00a0admin@bad-mail.test';
    expect(
      await create(tenantBody('bad-mail', { firstAdministrator: { email, name: 'Ada' } })),
    ).to.equal('created');

    const tenant = await h.waitFor(
      'bad-mail',
      'InvalidSpec',
      (t) => condition(t, 'Ready')?.reason === 'InvalidSpec',
      30_000,
    );
    // Errors of any tenant, counted while nothing else fails: a retry loop would add to them.
    const errors = async () =>
      (await operator.metrics.reconcileErrors.get()).values.reduce((sum, v) => sum + v.value, 0);
    const errorsBefore = await errors();
    await sleep(4_000);
    const errorsAfter = await errors();
    const later = await h.read('bad-mail');
    const event = await waitUntil('an InvalidSpec Event', async () =>
      (await events('bad-mail')).find((e) => e.reason === 'InvalidSpec'),
    );

    const message = condition(tenant, 'Ready')?.message ?? '';
    expect(message).to.include('spec.firstAdministrator: invalid email');
    expect(message).to.not.match(/\n\s+at /);
    expect(tenant.status?.phase).to.equal('Degraded');
    expect(event.type).to.equal('Warning');
    expect(event.note).to.include('spec.firstAdministrator: invalid email');
    // Nothing half-written: no schema, no registry row, no migration Job.
    expect(await schemaExists('tenant_bad_mail')).to.equal(false);
    expect(await findTenant(h.plane.db, 'bad-mail')).to.equal(undefined);
    const jobs = await h.cluster.kubeConfig.makeApiClient(BatchV1Api).listNamespacedJob({
      namespace: NAMESPACE,
      labelSelector: 'platform.vextrus.dev/tenant=bad-mail',
    });
    expect(jobs.items).to.have.length(0);
    // No retry loop: no reconcile failed, the refused Tenant was neither written again nor
    // reported twice, and it got no finalizer (nothing to clean up).
    expect(errorsAfter).to.equal(errorsBefore);
    expect(later.metadata?.resourceVersion).to.equal(tenant.metadata?.resourceVersion);
    expect((await events('bad-mail')).filter((e) => e.reason === 'InvalidSpec')).to.have.length(1);
    expect(later.metadata?.finalizers ?? []).to.deep.equal([]);

    // Correcting the spec is all it takes.
    await h.custom.patchClusterCustomObject({
      ...TENANT_RESOURCE,
      name: 'bad-mail',
      body: [{ op: 'replace', path: '/spec/firstAdministrator/email', value: 'ada@bad.test' }],
    });
    const fixed = await h.waitFor('bad-mail', 'Ready', ready);
    expect(condition(fixed, 'Ready')?.reason).to.equal('Provisioned');

    // Provisioned, the tenant keeps its upkeep when the (seed-only) email is edited back.
    await h.custom.patchClusterCustomObject({
      ...TENANT_RESOURCE,
      name: 'bad-mail',
      body: [{ op: 'replace', path: '/spec/firstAdministrator/email', value: email }],
    });
    const edited = await h.waitFor(
      'bad-mail',
      'the edit observed',
      (t) => condition(t, 'Ready')?.observedGeneration === t.metadata?.generation,
    );
    expect(condition(edited, 'Ready')).to.include({ status: 'True', reason: 'Provisioned' });
    await remove('bad-mail');
  });

  it('survives creating and deleting the same Tenant in a quick loop, then provisions it', async () => {
    for (let i = 0; i < 8; i++) {
      await h.apply('churn', { deletionPolicy: 'Delete' });
      await sleep(50 + 100 * (i % 4));
      await remove('churn');
      await h.waitGone('churn');
    }
    await h.apply('churn', { deletionPolicy: 'Delete' });

    const tenant = await h.waitFor('churn', 'Ready', ready);

    expect(tenant.status?.schema).to.equal('tenant_churn');
    expect((await findTenant(h.plane.db, 'churn'))?.status).to.equal('active');
  });

  it('routes a host that two Tenants claim at the same moment for one of them only', async () => {
    const shared = 'race.localhost';
    await Promise.all(
      ['race-a', 'race-b'].map((slug) => h.apply(slug, { hosts: [shared, `${slug}.localhost`] })),
    );
    const conflicted = (t: Tenant) => condition(t, 'HostConflict')?.status === 'True';

    const settled = await waitUntil(
      'one Tenant Ready and the other in HostConflict',
      async () => {
        const both = await Promise.all(['race-a', 'race-b'].map((name) => h.read(name)));
        return both.filter(ready).length === 1 && both.filter(conflicted).length === 1
          ? both
          : undefined;
      },
      60_000,
    );
    const routes = (await h.custom.listNamespacedCustomObject({
      ...TRAEFIK,
      plural: 'ingressroutes',
    })) as { items: { metadata: { name: string }; spec: { routes: { match: string }[] } }[] };
    const routing = routes.items.filter((r) => r.spec.routes.some((x) => x.match.includes(shared)));
    const winner = settled.find(ready)?.metadata?.name ?? '';
    const loser = settled.find(conflicted)?.metadata?.name ?? '';

    expect(routing.map((r) => r.metadata.name)).to.deep.equal([`tenant-${winner}`]);
    // Once the winner is gone, the other one gets the host.
    await remove(winner);
    await h.waitFor(loser, 'Ready after the winner left', ready, 60_000);
    await remove(loser);
  });

  it('under a CRD of an older chart, reports a slug provisioning refuses and lets it be deleted', async () => {
    // Helm installs a chart's CRDs once and never upgrades them: a cluster may still run a CRD
    // without the two-hyphen rule. Drop that rule for this test, as such a CRD would have it.
    const crds = h.cluster.kubeConfig.makeApiClient(ApiextensionsV1Api);
    const rules =
      '/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/slug/x-kubernetes-validations';
    const crd = await crds.readCustomResourceDefinition({ name: 'tenants.platform.vextrus.dev' });
    const slugRules =
      crd.spec.versions[0]?.schema?.openAPIV3Schema?.properties?.spec?.properties?.slug
        ?.x_kubernetes_validations;
    expect(slugRules).to.have.length(2);
    const patchRules = (value: unknown) =>
      crds.patchCustomResourceDefinition(
        { name: 'tenants.platform.vextrus.dev', body: [{ op: 'replace', path: rules, value }] },
        setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
      );
    await patchRules([{ rule: 'self == oldSelf', message: 'slug is immutable' }]);
    try {
      // A finalizer of its own, as an operator release without the spec check would have added.
      const body = { ...tenantBody('a--b'), metadata: { name: 'a--b', finalizers: [FINALIZER] } };
      await waitUntil('the relaxed CRD to be served', async () =>
        (await create(body)) === 'created' ? true : undefined,
      );

      const tenant = await h.waitFor(
        'a--b',
        'InvalidSpec',
        (t) => condition(t, 'Ready')?.reason === 'InvalidSpec',
        30_000,
      );
      expect(condition(tenant, 'Ready')?.message).to.include('two hyphens in a row');
      expect(await schemaExists('tenant_a__b')).to.equal(false);

      await remove('a--b');
      await h.waitGone('a--b');
    } finally {
      await patchRules(slugRules?.map(({ rule, message }) => ({ rule, message })));
    }
  });

  it('deletes a Tenant whose migration Job is still running, and leaves nothing behind with Delete', async () => {
    await remove('churn');
    await h.waitGone('churn');
    await h.apply('midway', { deletionPolicy: 'Delete' });
    await h.waitFor(
      'midway',
      'its migration Job to run',
      (t) => condition(t, 'SchemaReady')?.status === 'True' && !ready(t),
    );

    await remove('midway');
    await h.waitGone('midway');

    expect(await findTenant(h.plane.db, 'midway')).to.equal(undefined);
    // A Job still running against the dropped schema must not bring it back.
    await sleep(3_000);
    expect(await schemaExists('tenant_midway')).to.equal(false);
    expect(await findTenant(h.plane.db, 'midway')).to.equal(undefined);
  });
});

describe('the spec check before provisioning (no cluster)', () => {
  const spec = (changes: Partial<Tenant['spec']>) => tenantBody('acme', changes).spec;

  it('passes a spec that provisioning accepts', () => {
    expect(specProblems(spec({}), false)).to.deep.equal([]);
    // 200 characters that take two UTF-16 units each: as long as the schema and the registry allow.
    expect(specProblems(spec({ displayName: '\u{1F3D7}'.repeat(200) }), false)).to.deep.equal([]);
  });

  it('names each field that provisioning would refuse, as an older CRD may let them through', () => {
    const bad = spec({
      slug: 'a--b',
      displayName: '\u2003',
      firstAdministrator: { email: 'ada\u00a0admin@acme.test', name: 'Ada' },
      firstOrganization: { name: '\u00a0', code: 'ACME' },
    });
    const problems = specProblems(bad, false);

    expect(problems).to.have.length(4);
    expect(problems[0]).to.match(/^spec\.slug: .*two hyphens in a row/);
    expect(problems[1]).to.match(/^spec\.displayName: /);
    // The no-break space is shown as what it is: printed, it would look like a space.
    expect(problems[2]).to.equal(
      'spec.firstAdministrator: invalid email "ada\\u{A0}admin@acme.test"',
    );
    expect(problems[3]).to.match(/^spec\.firstOrganization: the name must have/);
    // Once provisioned, the seed fields have no effect: only slug and display name count.
    expect(specProblems(bad, true)).to.deep.equal(problems.slice(0, 2));
  });
});
