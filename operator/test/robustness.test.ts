import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { BatchV1Api } from '@kubernetes/client-node';
import {
  ownerEnvironment,
  spawnTs,
  startOwnPostgres,
  waitUntil,
  type OwnPostgres,
  type SpawnedProcess,
} from '@vextrus/devkit';
import { findTenant, tenantSchema } from '@vextrus/migrations';
import { migrationJobName, setupSecretName, type RunningOperator } from '@vextrus/operator';
import {
  MIGRATIONS_IMAGE,
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

/*
 * Robustness of the tenant operator against a real kube-apiserver (with kube-controller-manager
 * and etcd) and a real PostgreSQL of its own, which these tests stop and start again. The one
 * simulated part is devkit's local node, which runs the migration Jobs' Pods as local processes.
 */

/** The in-process replicas resync every 5 s. */
const RESYNC_MS = 5_000;

describe('tenant operator robustness (real API server, real PostgreSQL, local node)', function () {
  this.timeout(300_000);
  let postgres: OwnPostgres;
  let h: Harness;

  const traefikObject = (plural: string, name: string) =>
    h.custom.getNamespacedCustomObject({ ...TRAEFIK, plural, name }).then(
      () => 'present',
      (err: { code?: number }) => (err.code === 404 ? 'absent' : `error ${err.code}`),
    );
  /** Whether the token in the tenant's setup Secret is one the database still accepts. */
  const hasValidSetupToken = async (slug: string): Promise<boolean> => {
    const secret = await h.cluster.core.readNamespacedSecret({
      name: setupSecretName(slug),
      namespace: NAMESPACE,
    });
    const token = Buffer.from(secret.data?.token ?? '', 'base64').toString();
    // Tokens are stored as the SHA-256 of their text (services/shared opaque-token).
    const hash = createHash('sha256').update(token).digest();
    const [rows] = await h.plane.db.sequelize.query(
      `SELECT count(*)::int AS n FROM ${tenantSchema(slug)}.one_time_tokens
        WHERE token_hash = $1 AND purpose = 'setup' AND revoked_at IS NULL AND used_at IS NULL`,
      { bind: [hash] },
    );
    return (rows as { n: number }[])[0]?.n === 1;
  };
  const replica = (identity: string): Promise<RunningOperator> =>
    h.startOperator({ identity, settings: { resyncMs: RESYNC_MS } });

  before(async () => {
    h = await startHarness({
      plane: 'robustness',
      // This suite stops and restarts PostgreSQL, so it runs its own instead of the shared one.
      beforePlane: async () => {
        postgres = await startOwnPostgres('operator-pg');
      },
    });
  });

  afterEach(async () => {
    await h?.stopOperators();
  });

  after(async () => {
    await h?.stop();
    await postgres?.dispose();
  });

  it('with two replicas, only the leader reconciles; when it stops, the other takes over', async () => {
    const a = await replica('replica-a');
    const b = await replica('replica-b');
    const first = await Promise.race([a.leading.then(() => a), b.leading.then(() => b)]);
    const second = first === a ? b : a;

    await h.apply('leader-one');
    await h.waitFor('leader-one', 'Ready', ready);
    const byFollower = await reconciles(second);
    const byLeader = await reconciles(first);
    await h.stopOperator(first);
    await second.leading;
    await h.apply('leader-two');
    await h.waitFor('leader-two', 'Ready', ready);

    expect(byLeader).to.be.above(0);
    expect(byFollower).to.equal(0);
    expect(second.leader?.isLeader).to.equal(true);
    expect(await reconciles(second)).to.be.above(0);
  });

  it('survives a restart of the API server: watches resume and a new Tenant becomes Ready', async () => {
    const operator = await replica('restart-a');
    await operator.leading;
    await h.apply('before-restart');
    await h.waitFor('before-restart', 'Ready', ready);

    await h.cluster.plane.restartApiServer();
    await h.apply('after-restart');
    const tenant = await h.waitFor('after-restart', 'Ready', ready);

    expect(tenant.status?.phase).to.equal('Ready');
    expect(operator.leader?.isLeader).to.equal(true);
    // Reconciles that ran while the API server was away must not have issued a new token.
    expect(await hasValidSetupToken('before-restart')).to.equal(true);
  });

  it('reports a stopped PostgreSQL in SchemaReady and an Event, and recovers once it is back', async () => {
    const operator = await replica('database-a');
    await operator.leading;
    await h.apply('db-steady');
    await h.waitFor('db-steady', 'Ready', ready);

    await postgres.stop();
    let restarted = false;
    try {
      await h.apply('db-outage');
      const failing = await h.waitFor(
        'db-outage',
        'SchemaReady False',
        (t) => condition(t, 'SchemaReady')?.status === 'False',
      );
      const events = await waitUntil('a ProvisioningFailed Event', async () => {
        // Events about a cluster-scoped Tenant live in the default namespace.
        const list = await h.cluster.core.listNamespacedEvent({ namespace: 'default' });
        const found = list.items.filter(
          (e) => e.involvedObject.name === 'db-outage' && e.reason === 'ProvisioningFailed',
        );
        return found.length > 0 ? found : undefined;
      });
      await postgres.start();
      restarted = true;

      const recovered = await h.waitFor('db-outage', 'Ready', ready);
      const steady = await h.waitFor('db-steady', 'Ready', ready);

      expect(condition(failing, 'SchemaReady')?.reason).to.equal('ProvisioningFailed');
      expect(condition(failing, 'SchemaReady')?.message).to.include('tenant_db_outage');
      expect(failing.status?.phase).to.equal('Degraded');
      expect(events[0]?.type).to.equal('Warning');
      expect((await operator.metrics.queueRetries.get()).values[0]?.value).to.be.above(0);
      expect(recovered.status?.phase).to.equal('Ready');
      expect(steady.status?.phase).to.equal('Ready');
      expect((await findTenant(h.plane.db, 'db-outage'))?.status).to.equal('active');
    } finally {
      if (!restarted) {
        await postgres.start();
      }
    }
  });

  it('when suspended, removes the routes and suspends the tenant; resumed, it is Ready with routes', async () => {
    const operator = await replica('suspend-a');
    await operator.leading;
    await h.apply('paused');
    await h.waitFor('paused', 'Ready', ready);
    const patch = (value: boolean) =>
      h.custom.patchClusterCustomObject({
        ...TENANT_RESOURCE,
        name: 'paused',
        body: [{ op: 'add', path: '/spec/suspended', value }],
      });

    await patch(true);
    const suspended = await h.waitFor('paused', 'phase Suspended', (t) => {
      return (
        t.status?.phase === 'Suspended' && t.status.observedGeneration === t.metadata?.generation
      );
    });
    const whileSuspended = {
      middleware: await traefikObject('middlewares', 'tenant-paused-context'),
      route: await traefikObject('ingressroutes', 'tenant-paused'),
      registry: (await findTenant(h.plane.db, 'paused'))?.status,
    };
    await patch(false);
    const resumed = await h.waitFor('paused', 'Ready again', (t) => {
      return t.status?.phase === 'Ready' && t.status.observedGeneration === t.metadata?.generation;
    });
    const afterResume = {
      middleware: await traefikObject('middlewares', 'tenant-paused-context'),
      route: await traefikObject('ingressroutes', 'tenant-paused'),
      registry: (await findTenant(h.plane.db, 'paused'))?.status,
    };

    expect(whileSuspended).to.deep.equal({
      middleware: 'absent',
      route: 'absent',
      registry: 'suspended',
    });
    expect(condition(suspended, 'RoutesReady')?.reason).to.equal('Suspended');
    expect(condition(suspended, 'Ready')?.reason).to.equal('Suspended');
    expect(suspended.status?.urls).to.deep.equal([]);
    expect(afterResume).to.deep.equal({
      middleware: 'present',
      route: 'present',
      registry: 'active',
    });
    expect(ready(resumed)).to.equal(true);
    expect(resumed.status?.urls).to.deep.equal(['http://paused.localhost']);
  });

  /*
   * The issue asks for 20 tenants and 10 trials: that took 13 minutes here (2 shared cores), so
   * `make test` runs 5 tenants and 3 trials (about 40 s), one SIGKILL per trial at a random
   * moment within 5 s of the trial's tenants being applied. VEXTRUS_CHAOS_FULL=1 runs the full
   * size: VEXTRUS_CHAOS_FULL=1 npx mocha operator/test/robustness.test.ts --grep killed
   */
  const full = process.env.VEXTRUS_CHAOS_FULL === '1';
  const TENANTS = full ? 20 : 5;
  const TRIALS = full ? 10 : 3;

  it(`killed at a random moment while ${TENANTS} tenants provision (${TRIALS} trials), converges with one schema, Job and valid setup token per tenant`, async function () {
    this.timeout(full ? 3_600_000 : 300_000);
    const env = {
      KUBECONFIG: h.cluster.plane.kubeconfig,
      ...ownerEnvironment(h.plane),
      OPERATOR_NAMESPACE: NAMESPACE,
      MIGRATIONS_IMAGE,
      PROBE_PORT: '0',
      // The full size ends with 200 tenants: a slower resync keeps the machine responsive.
      RESYNC_SECONDS: full ? '30' : '5',
      // A restarted Pod of a StatefulSet keeps its name: it takes the Lease over at once.
      POD_NAME: 'chaos-operator',
      LOG_LEVEL: 'info',
    };
    const spawnOperator = async (): Promise<SpawnedProcess> => {
      const child = spawnTs('operator/src/main.ts', env);
      await child.waitForOutput((out) => out.includes('operator started'), 60_000);
      return child;
    };
    const all: string[] = [];
    const kills: number[] = [];

    // Each trial: new tenants appear, the running operator is SIGKILLed at a random moment while
    // it provisions them, a new one starts and must bring every tenant to Ready.
    let operator = await spawnOperator();
    try {
      for (let trial = 1; trial <= TRIALS; trial++) {
        const slugs = Array.from({ length: TENANTS }, (_, i) => `chaos-${trial}-${i + 1}`);
        all.push(...slugs);
        await Promise.all(slugs.map((slug) => h.apply(slug)));
        const killAfterMs = Math.floor(Math.random() * 5_000);
        kills.push(killAfterMs);
        await sleep(killAfterMs);
        operator.child.kill('SIGKILL');
        await operator.exited;

        operator = await spawnOperator();
        for (const slug of all) {
          await h.waitFor(slug, `Ready (trial ${trial}, killed after ${killAfterMs} ms)`, ready);
        }
      }
    } catch (err) {
      throw new Error(`${(err as Error).message}\noperator log:\n${operator.output()}`, {
        cause: err,
      });
    } finally {
      operator.child.kill('SIGTERM');
      await operator.exited;
    }

    const [schemaRows] = await h.plane.db.sequelize.query(
      "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant\\_chaos\\_%' ORDER BY nspname",
    );
    const schemas = (schemaRows as { nspname: string }[]).map((r) => r.nspname);
    const jobList = await h.cluster.kubeConfig.makeApiClient(BatchV1Api).listNamespacedJob({
      namespace: NAMESPACE,
      labelSelector: 'app.kubernetes.io/component=tenant-migration',
    });
    const chaosJobs = jobList.items.filter((j) => j.metadata?.name?.startsWith('migrate-chaos-'));
    const validTokens: string[] = [];
    for (const slug of all) if (await hasValidSetupToken(slug)) validTokens.push(slug);
    const tenantUids = new Map<string, string>();
    for (const slug of all) tenantUids.set(slug, (await h.read(slug)).metadata?.uid ?? '');

    expect(schemas, `kills after ${kills.join(', ')} ms`).to.deep.equal(
      all.map((slug) => tenantSchema(slug)).sort(),
    );
    expect(chaosJobs.map((j) => j.metadata?.name).sort()).to.deep.equal(
      all.map((slug) => migrationJobName(slug, MIGRATIONS_IMAGE)).sort(),
    );
    for (const job of chaosJobs) {
      const slug = job.metadata?.labels?.['platform.vextrus.dev/tenant'] ?? '';
      expect(job.metadata?.ownerReferences?.[0]?.uid, job.metadata?.name).to.equal(
        tenantUids.get(slug),
      );
      expect(job.status?.succeeded, job.metadata?.name).to.equal(1);
    }
    expect(validTokens).to.deep.equal(all);
  });
});
