import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import {
  BatchV1Api,
  CustomObjectsApi,
  Watch,
  type V1Job,
  type V1CustomResourceDefinition,
} from '@kubernetes/client-node';
import {
  createNamespace,
  installCrds,
  startCluster,
  startControlPlane,
  toolPath,
  waitUntil,
  type Cluster,
} from '@vextrus/devkit';

const run = promisify(execFile);

/** Test-only image: the local node runs it as `/bin/sh -c <args>`. */
const SHELL_IMAGE = { 'vextrus-test/shell': { entrypoint: ['/bin/sh', '-c'] } };

const widgetCrd: V1CustomResourceDefinition = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'widgets.example.test' },
  spec: {
    group: 'example.test',
    scope: 'Namespaced',
    names: { plural: 'widgets', singular: 'widget', kind: 'Widget' },
    versions: [
      {
        name: 'v1',
        served: true,
        storage: true,
        schema: {
          openAPIV3Schema: {
            type: 'object',
            properties: {
              spec: {
                type: 'object',
                properties: { size: { type: 'integer', minimum: 1 } },
              },
            },
          },
        },
      },
    ],
  },
};

function job(name: string, script: string): V1Job {
  return {
    metadata: { name },
    spec: {
      backoffLimit: 0,
      template: {
        spec: {
          restartPolicy: 'Never',
          containers: [
            {
              name: 'main',
              image: 'vextrus-test/shell:1',
              args: [script],
              env: [
                {
                  name: 'GREETING',
                  valueFrom: { secretKeyRef: { name: 'greeting', key: 'text' } },
                },
              ],
            },
          ],
        },
      },
    },
  };
}

async function jobCondition(batch: BatchV1Api, namespace: string, name: string, type: string) {
  return waitUntil(
    `job ${name} to be ${type}`,
    async () => {
      const current = await batch.readNamespacedJobStatus({ name, namespace });
      return current.status?.conditions?.find((c) => c.type === type && c.status === 'True')
        ? current
        : undefined;
    },
    60_000,
  );
}

describe('local Kubernetes control plane', function () {
  // Building the binaries is done by `make tools` before the tests; starting takes seconds.
  this.timeout(180_000);
  let cluster: Cluster;
  let namespace: string;

  before(async () => {
    cluster = await startCluster({ images: SHELL_IMAGE });
    namespace = await createNamespace(cluster.core);
    await cluster.core.createNamespacedSecret({
      namespace,
      body: { metadata: { name: 'greeting' }, stringData: { text: 'hello from a secret' } },
    });
  });
  after(() => cluster?.stop());

  it('installs a CRD, and a custom resource can be created, watched and deleted', async () => {
    await installCrds(cluster.kubeConfig, [structuredClone(widgetCrd)]);
    const custom = cluster.kubeConfig.makeApiClient(CustomObjectsApi);
    const events: string[] = [];
    const watch = new Watch(cluster.kubeConfig);
    const abort = await watch.watch(
      `/apis/example.test/v1/namespaces/${namespace}/widgets`,
      {},
      (type: string) => events.push(type),
      () => {},
    );

    await custom.createNamespacedCustomObject({
      group: 'example.test',
      version: 'v1',
      namespace,
      plural: 'widgets',
      body: {
        apiVersion: 'example.test/v1',
        kind: 'Widget',
        metadata: { name: 'w1' },
        spec: { size: 3 },
      },
    });
    const invalid: unknown = await custom
      .createNamespacedCustomObject({
        group: 'example.test',
        version: 'v1',
        namespace,
        plural: 'widgets',
        body: {
          apiVersion: 'example.test/v1',
          kind: 'Widget',
          metadata: { name: 'w2' },
          spec: { size: 0 },
        },
      })
      .catch((err: unknown) => err);
    await custom.deleteNamespacedCustomObject({
      group: 'example.test',
      version: 'v1',
      namespace,
      plural: 'widgets',
      name: 'w1',
    });
    await waitUntil('ADDED and DELETED events', () =>
      Promise.resolve(events.includes('DELETED') ? true : undefined),
    );
    abort.abort();

    expect(events).to.include.members(['ADDED', 'DELETED']);
    expect((invalid as { code?: number }).code).to.equal(422);
  });

  it('runs a Job on the local node as a real process until the Job controller marks it Complete', async () => {
    const batch = cluster.kubeConfig.makeApiClient(BatchV1Api);
    await batch.createNamespacedJob({ namespace, body: job('greet', 'echo "$GREETING"; exit 0') });

    const done = await jobCondition(batch, namespace, 'greet', 'Complete');
    const pods = await cluster.core.listNamespacedPod({
      namespace,
      labelSelector: 'job-name=greet',
    });
    const pod = pods.items[0];
    const logs = await cluster.core.readNamespacedPodLog({
      name: pod?.metadata?.name ?? '',
      namespace,
      container: 'main',
    });

    expect(done.status?.succeeded).to.equal(1);
    expect(pod?.status?.phase).to.equal('Succeeded');
    expect(logs).to.equal('hello from a secret\n');
  });

  it('marks a failing Job Failed and reports the exit code in the Pod status', async () => {
    const batch = cluster.kubeConfig.makeApiClient(BatchV1Api);
    await batch.createNamespacedJob({ namespace, body: job('fail', 'echo broken >&2; exit 3') });

    const failed = await jobCondition(batch, namespace, 'fail', 'Failed');
    const pods = await cluster.core.listNamespacedPod({
      namespace,
      labelSelector: 'job-name=fail',
    });
    const terminated = pods.items[0]?.status?.containerStatuses?.[0]?.state?.terminated;

    expect(failed.status?.failed).to.equal(1);
    expect(terminated?.exitCode).to.equal(3);
    expect(terminated?.message).to.include('broken');
  });

  it('fails a Pod whose image it cannot run, with a clear reason', async () => {
    await cluster.core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name: 'unknown-image' },
        spec: { restartPolicy: 'Never', containers: [{ name: 'c', image: 'nginx:1.27' }] },
      },
    });

    const pod = await waitUntil('the pod to fail', async () => {
      const current = await cluster.core.readNamespacedPod({ name: 'unknown-image', namespace });
      return current.status?.phase === 'Failed' ? current : undefined;
    });

    expect(pod.status?.reason).to.equal('UnknownImage');
    expect(pod.status?.message).to.include('nginx:1.27');
  });

  it('garbage-collects dependents when their owner is deleted', async () => {
    const owner = await cluster.core.createNamespacedConfigMap({
      namespace,
      body: { metadata: { name: 'owner' } },
    });
    await cluster.core.createNamespacedConfigMap({
      namespace,
      body: {
        metadata: {
          name: 'dependent',
          ownerReferences: [
            { apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata?.uid ?? '' },
          ],
        },
      },
    });

    await cluster.core.deleteNamespacedConfigMap({ name: 'owner', namespace });
    await waitUntil(
      'the dependent to be collected',
      async () => {
        const found = await cluster.core
          .readNamespacedConfigMap({ name: 'dependent', namespace })
          .then(() => true)
          .catch(() => false);
        return found ? undefined : true;
      },
      60_000,
    );
  });

  it('works with kubectl through the written kubeconfig', async () => {
    const kubectl = await toolPath('kubectl');
    const { stdout } = await run(kubectl, [
      '--kubeconfig',
      cluster.plane.kubeconfig,
      'get',
      'nodes',
      '-o',
      'jsonpath={.items[*].metadata.name}',
    ]);

    expect(stdout).to.equal('local-node');
  });
});

describe('control plane start and stop', function () {
  this.timeout(180_000);

  it('starts and stops, leaving no process and no files behind', async () => {
    const started = Date.now();
    const plane = await startControlPlane();
    const startMs = Date.now() - started;
    const { dir } = plane;
    const pids = await run('pgrep', ['-f', dir]).then(
      (r) => r.stdout.trim().split('\n'),
      () => [],
    );

    const stopping = Date.now();
    await plane.stop();
    const stopMs = Date.now() - stopping;
    const left = await run('pgrep', ['-f', dir]).then(
      (r) => r.stdout.trim(),
      () => '',
    );

    console.log(`      control plane: start ${startMs} ms, stop ${stopMs} ms`);
    expect(pids.length).to.be.at.least(2);
    expect(left).to.equal('');
    expect(existsSync(dir)).to.equal(false);
  });
});
