import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { BatchV1Api, Watch, type V1Job } from '@kubernetes/client-node';
import { waitUntil, type Cluster } from '@vextrus/devkit';
import { LATEST_MIGRATION, migrationJobName, type Tenant } from '@vextrus/operator';
import { NAMESPACE, condition, ready, startHarness, type Harness } from './support/harness.js';

/**
 * Fleet migrations (issue 8): N tenants Ready with migrations image v1; the operator restarted
 * with image v2 migrates them with a bounded number of Jobs at once, each Tenant's status showing
 * its progress; one tenant whose Job fails gets a condition with the reason and the log tail
 * while the others finish, and converges by itself once its cause is gone.
 *
 * The test image `vextrus-test/fleet-migrate` (run by the local node like every image) waits a
 * second, so that Jobs overlap, then fails for a tenant whose marker file exists (the "cause",
 * written and removed by the test) and otherwise runs the real migrations CLI against PostgreSQL.
 */
const IMAGE = 'vextrus-test/fleet-migrate';
const V1 = `${IMAGE}:v1`;
const V2 = `${IMAGE}:v2`;
const BOUND = 2;
const SLUGS = ['fleet-a', 'fleet-b', 'fleet-c', 'fleet-d', 'fleet-e'];
const BROKEN = 'fleet-c';
const CAUSE = 'simulated outage: tenant database fleet-c refuses connections';

/** Follows every migration Job through a watch: how many ran at once, at most. */
class JobObserver {
  private readonly running = new Set<string>();
  readonly uids = new Map<string, Set<string>>();
  peak = 0;
  /** Why the watch ended, when it ended before the test stopped it. */
  ended?: string;
  private abort?: AbortController;

  constructor(private readonly cluster: Cluster) {}

  async start(): Promise<void> {
    const watch = new Watch(this.cluster.kubeConfig);
    this.abort = await watch.watch(
      `/apis/batch/v1/namespaces/${NAMESPACE}/jobs`,
      { labelSelector: 'app.kubernetes.io/component=tenant-migration' },
      (type: string, job: V1Job) => {
        const name = job.metadata?.name ?? '';
        const done = job.status?.conditions?.some(
          (c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True',
        );
        if (type === 'DELETED' || done) this.running.delete(name);
        else this.running.add(name);
        const uids = this.uids.get(name) ?? new Set<string>();
        uids.add(job.metadata?.uid ?? '');
        this.uids.set(name, uids);
        this.peak = Math.max(this.peak, this.running.size);
      },
      (err: unknown) => {
        if (this.abort) this.ended = String(err);
      },
    );
  }

  resetPeak(): void {
    this.peak = this.running.size;
  }

  stop(): void {
    const abort = this.abort;
    this.abort = undefined;
    abort?.abort();
  }
}

describe('fleet migrations (real API server, real PostgreSQL, local node)', function () {
  this.timeout(420_000);
  let h: Harness;
  let jobs: JobObserver;
  const markers = mkdtempSync(path.join(tmpdir(), 'vextrus-fleet-'));

  const script = [
    'sleep 1',
    `marker=${JSON.stringify(markers)}/"$2"`,
    'if [ -e "$marker" ]; then echo "migrate $2: $(cat "$marker")" >&2; exit 3; fi',
    `exec ${JSON.stringify(process.execPath)} --import tsx --conditions=vextrus-source ` +
      'migrations/src/cli.ts "$@"',
  ].join('\n');

  const migratedTo = (tenant: Tenant, image: string) =>
    tenant.status?.migrationImage === image &&
    condition(tenant, 'MigrationsApplied')?.status === 'True' &&
    ready(tenant);

  const start = async (image: string) => {
    const running = await h.startOperator({
      identity: `fleet-${image}`,
      leaderElection: false,
      settings: { migrations: { image, concurrency: BOUND, retryBaseMs: 2_000 } },
    });
    await running.leading;
    return running;
  };

  before(async () => {
    h = await startHarness({
      plane: 'fleet',
      cluster: { images: { [IMAGE]: { entrypoint: ['bash', '-c', script, 'fleet-migrate'] } } },
    });
    jobs = new JobObserver(h.cluster);
    await jobs.start();
  });

  after(async () => {
    jobs?.stop();
    await h?.stop();
    rmSync(markers, { recursive: true, force: true });
  });

  it('migrates every tenant to a new image, at most the bound at once, past a failing tenant', async () => {
    const v1 = await start(V1);
    for (const slug of SLUGS) await h.apply(slug);
    await waitUntil(
      `${SLUGS.length} tenants Ready at ${V1}`,
      async () =>
        (await h.list()).filter((t) => migratedTo(t, V1)).length === SLUGS.length
          ? true
          : undefined,
      240_000,
    );
    expect(jobs.peak, 'migration Jobs at once while provisioning').to.be.at.most(BOUND);

    // The new release: the operator restarted with the v2 image, one tenant's database "down".
    await h.stopOperator(v1);
    writeFileSync(path.join(markers, BROKEN), CAUSE);
    jobs.resetPeak();
    await start(V2);

    const reasons = new Set<string>();
    const phases = new Set<string>();
    const others = SLUGS.filter((slug) => slug !== BROKEN);
    const failed = await waitUntil(
      `the other tenants at ${V2} and ${BROKEN} reporting its failed Job`,
      async () => {
        const tenants = await h.list();
        for (const tenant of tenants) {
          const reason = condition(tenant, 'MigrationsApplied')?.reason;
          if (reason) reasons.add(reason);
          if (tenant.status?.phase) phases.add(tenant.status.phase);
        }
        const done = tenants.filter(
          (t) => others.includes(t.metadata?.name ?? '') && migratedTo(t, V2),
        );
        const broken = tenants.find((t) => t.metadata?.name === BROKEN);
        const failure = broken && condition(broken, 'MigrationsApplied');
        return done.length === others.length && failure?.reason === 'MigrationJobFailed'
          ? broken
          : undefined;
      },
      240_000,
    );

    // Progress was visible in status while Jobs queued for a slot.
    expect([...reasons]).to.include.members(['WaitingForMigrationSlot', 'MigrationRunning']);
    expect([...phases]).to.include('Migrating');
    // The failing tenant: reason, the log tail of its Job, and still at v1.
    const failure = condition(failed, 'MigrationsApplied');
    expect(failure?.status).to.equal('False');
    expect(failure?.message).to.include(migrationJobName(BROKEN, V2)).and.include(CAUSE);
    expect(failed.status?.migrationImage).to.equal(V1);
    expect(failed.status?.phase).to.equal('Degraded');

    // The cause is fixed; nobody deletes a Job: the operator replaces the failed one itself.
    rmSync(path.join(markers, BROKEN));
    const recovered = await waitUntil(
      `${BROKEN} migrated to ${V2} after its cause was fixed`,
      async () => {
        const tenant = await h.read(BROKEN);
        return migratedTo(tenant, V2) ? tenant : undefined;
      },
      180_000,
    );
    expect(recovered.status?.migrationVersion).to.equal(LATEST_MIGRATION);
    expect(
      jobs.uids.get(migrationJobName(BROKEN, V2))?.size,
      'Jobs created for the broken tenant',
    ).to.be.at.least(2);

    // Never more than the bound at once, and the bound was used.
    expect(jobs.ended, 'the test watched every Job event').to.equal(undefined);
    expect(jobs.peak, 'migration Jobs at once during the fleet migration').to.equal(BOUND);

    for (const slug of SLUGS) {
      const tenant = await h.read(slug);
      expect(tenant.status?.migrationImage, slug).to.equal(V2);
      expect(tenant.status?.migrationVersion, slug).to.equal(LATEST_MIGRATION);
    }
    // The v1 Jobs did their work and were removed once each tenant's v2 Job completed.
    await waitUntil('only the v2 Jobs left', async () => {
      const names = (
        await h.cluster.kubeConfig.makeApiClient(BatchV1Api).listNamespacedJob({
          namespace: NAMESPACE,
          labelSelector: 'app.kubernetes.io/component=tenant-migration',
        })
      ).items
        .map((job) => job.metadata?.name)
        .sort();
      const wanted = SLUGS.map((slug) => migrationJobName(slug, V2)).sort();
      return JSON.stringify(names) === JSON.stringify(wanted) ? true : undefined;
    });
  });
});
