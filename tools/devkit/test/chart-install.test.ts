import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { BatchV1Api, type V1CustomResourceDefinition } from '@kubernetes/client-node';
import {
  createNamespace,
  createTestDatabase,
  installCrds,
  silent,
  startCluster,
  type Cluster,
  type TestDatabase,
} from '@vextrus/devkit';
import { openDatabase, platformStatus } from '@vextrus/migrations';
import { CHART, helm } from './chart-helpers.js';

/*
 * `helm install` of the chart into a real control plane (etcd, kube-apiserver,
 * kube-controller-manager). The one simulated part is the local node: it runs the migration hook
 * Job's containers (vextrus/migrations) as local processes from the sources, against a real
 * PostgreSQL. The services and the operator are turned off here: as processes on this machine
 * they would listen on fixed ports shared with other runs.
 */
describe('helm install of the vextrus chart into the local control plane', function () {
  // The control plane starts in up to a minute; the hook Job runs two CLI processes.
  this.timeout(420_000);
  let cluster: Cluster;
  let database: TestDatabase;
  let namespace: string;
  let kubeconfig: string;
  const tag = `c${randomBytes(3).toString('hex')}_`;

  before(async () => {
    cluster = await startCluster();
    kubeconfig = cluster.plane.kubeconfig;
    namespace = await createNamespace(cluster.core, 'helm-');
    database = await createTestDatabase('chart_install');
    const crd = parse(
      readFileSync(path.join(CHART, 'crds', 'tenants.platform.vextrus.dev.yaml'), 'utf8'),
    ) as V1CustomResourceDefinition;
    await installCrds(cluster.kubeConfig, [crd]);
  });
  after(async () => {
    await cluster?.stop();
    await database?.drop();
  });

  it('runs the migration hook (roles, then platform migrations) and the release reaches deployed', async () => {
    const url = new URL(database.url);
    const outcome = await helm([
      'install',
      'vextrus',
      CHART,
      '--kubeconfig',
      kubeconfig,
      '--namespace',
      namespace,
      '--timeout',
      '5m',
      '--set',
      `database.host=${url.hostname}`,
      '--set',
      `database.port=${url.port}`,
      '--set',
      `database.name=${database.name}`,
      '--set',
      `database.roles.admin.username=${decodeURIComponent(url.username)}`,
      '--set',
      `database.roles.admin.password=${decodeURIComponent(url.password)}`,
      '--set',
      `database.roles.owner.username=${tag}owner`,
      '--set',
      `database.roles.app.username=${tag}app`,
      '--set',
      `database.roles.retention.username=${tag}retention`,
      '--set',
      `database.tenantRolePrefix=${tag}tenant_`,
      '--set',
      'auth.enabled=false',
      '--set',
      'organization.enabled=false',
      '--set',
      'operator.enabled=false',
    ]);
    expect(outcome.code, outcome.stdout + outcome.stderr).to.equal(0);

    const status = await helm([
      'status',
      'vextrus',
      '--kubeconfig',
      kubeconfig,
      '--namespace',
      namespace,
      '-o',
      'json',
    ]);
    const release = JSON.parse(status.stdout) as { info: { status: string } };
    expect(release.info.status).to.equal('deployed');

    // The hook Job succeeded and was deleted (hook-succeeded); the schema it made is there.
    const batch = cluster.kubeConfig.makeApiClient(BatchV1Api);
    const jobs = await batch.listNamespacedJob({ namespace });
    expect(jobs.items.map((j) => j.metadata?.name)).to.not.include('vextrus-migrate-platform');
    const db = openDatabase({
      url: database.url,
      roles: { owner: `${tag}owner`, app: `${tag}app`, retention: `${tag}retention` },
      logger: silent,
    });
    try {
      const applied = await platformStatus(db);
      expect(applied.executed).to.have.length.greaterThan(0);
      expect(applied.pending).to.deep.equal([]);
      const [rows] = await db.sequelize.query(
        `SELECT rolname FROM pg_roles WHERE rolname LIKE '${tag}%' ORDER BY rolname`,
      );
      expect((rows as { rolname: string }[]).map((r) => r.rolname)).to.deep.equal([
        `${tag}app`,
        `${tag}owner`,
        `${tag}retention`,
      ]);
    } finally {
      await db.close();
    }
  });
});
