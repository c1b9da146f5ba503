import { expect } from 'chai';
import path from 'node:path';
import {
  CHART,
  VALUES_FILES,
  containersOf,
  helm,
  podSpecOf,
  render,
  type HelmOutcome,
  type Manifest,
} from './chart-helpers.js';

const MINIMAL = VALUES_FILES[0] ?? '';
const FULL = VALUES_FILES[1] ?? '';

/** `helm template` of the chart with the minimal values and more, as a user would run it. */
async function template(args: string[], release = 'vextrus'): Promise<HelmOutcome> {
  return helm(['template', release, CHART, '--namespace', 'vextrus', '-f', MINIMAL, ...args]);
}

/*
 * Values a platform engineer gets wrong. Each must be refused when the chart renders (by the
 * values schema, or a `fail` naming the value), never rendered into a manifest that the API
 * server or the Pods reject later, and never silently ignored.
 */
describe('the vextrus chart refuses values a user gets wrong', function () {
  // Each render takes about a second; building Helm the first time is `make test-tools`' job.
  this.timeout(300_000);

  const refused: [string, string[], string][] = [
    ['a negative replica count', ['--set', 'auth.replicaCount=-1'], '/auth/replicaCount'],
    [
      'the organization service without the auth service whose keys it needs',
      ['--set', 'auth.enabled=false'],
      'organization.enabled needs auth.enabled',
    ],
    ['a replica count as a string', ['--set-string', 'auth.replicaCount=2'], '/auth/replicaCount'],
    ['an image tag with a space', ['--set', 'auth.image.tag=bad tag'], '/auth/image/tag'],
    ['an upper-case repository', ['--set', 'auth.image.repository=Vextrus/Auth'], '/auth/image'],
    [
      'an upper-case migrations repository',
      ['--set', 'migrations.image.repository=Vextrus/Migrations'],
      '/migrations/image/repository',
    ],
    [
      'a migrations tag with a space',
      ['--set', 'migrations.image.tag=bad tag'],
      '/migrations/image/tag',
    ],
    [
      'a PostgreSQL repository with a space',
      ['--set', 'postgresql.image.repository=Post Gres'],
      '/postgresql/image/repository',
    ],
    [
      'a PostgreSQL tag with a colon',
      ['--set', 'postgresql.image.tag=17:alpine'],
      '/postgresql/image/tag',
    ],
    [
      'a test image repository with a space',
      ['--set', 'tests.image.repository=Busy Box'],
      '/tests/image/repository',
    ],
    ['a test image tag of spaces', ['--set', 'tests.image.tag=  '], '/tests/image/tag'],
    [
      'a registry given as a URL',
      ['--set', 'global.imageRegistry=https://registry.example'],
      '/global/imageRegistry',
    ],
    [
      'a pull secret name with a space',
      ['--set', 'global.imagePullSecrets[0]=Bad Name'],
      '/global/imagePullSecrets/0',
    ],
    [
      'a database Secret name of spaces',
      ['--set', 'database.roles.app.existingSecret=  '],
      '/database/roles/app/existingSecret',
    ],
    [
      'a database Secret name with upper case and an underscore',
      ['--set', 'database.roles.owner.existingSecret=Owner_Secret'],
      '/database/roles/owner/existingSecret',
    ],
    [
      'a signing keys Secret name with a space',
      ['--set', 'auth.signingKeys.existingSecret=my keys'],
      '/auth/signingKeys/existingSecret',
    ],
    [
      'a ServiceAccount name with upper case',
      ['--set', 'operator.serviceAccount.name=Operator'],
      '/operator/serviceAccount/name',
    ],
    [
      'a schedule of five words that are not cron fields',
      ['--set', 'auditRetention.schedule=not a cron at all'],
      '/auditRetention/schedule',
    ],
    [
      'a schedule with minute 99 and hour 99',
      ['--set', 'auditRetention.schedule=99 99 * * *'],
      '/auditRetention/schedule',
    ],
    [
      'a schedule with six fields',
      ['--set', 'auditRetention.schedule=0 17 3 * * *'],
      '/auditRetention/schedule',
    ],
    [
      'a schedule with a time zone, which Kubernetes refuses in the schedule',
      ['--set', 'auditRetention.schedule=TZ=UTC 17 3 * * *'],
      '/auditRetention/schedule',
    ],
    [
      'a negative history limit',
      ['--set', 'auditRetention.successfulJobsHistoryLimit=-1'],
      '/auditRetention/successfulJobsHistoryLimit',
    ],
    [
      'a negative failed history limit',
      ['--set', 'auditRetention.failedJobsHistoryLimit=-5'],
      '/auditRetention/failedJobsHistoryLimit',
    ],
    [
      'a negative CPU request',
      ['--set', 'auth.resources.requests.cpu=-1'],
      '/auth/resources/requests/cpu',
    ],
    [
      'a memory request that is not a quantity',
      ['--set', 'auth.resources.requests.memory=lots'],
      '/auth/resources/requests/memory',
    ],
    [
      'a memory limit as a plain number (bytes)',
      ['--set', 'organization.resources.limits.memory=512'],
      '/organization/resources/limits/memory',
    ],
    [
      'a misspelt resource name',
      ['--set', 'operator.resources.requests.cpuu=1'],
      '/operator/resources/requests',
    ],
    [
      'a misspelt migrations resource name',
      ['--set', 'migrations.resources.limits.memroy=1Gi'],
      '/migrations/resources/limits',
    ],
    ['a misspelt top-level key', ['--set', 'operater.enabled=false'], "'operater' not allowed"],
    ['a namespace override, which the chart has not', ['--set', 'namespace=other'], "'namespace'"],
    ['a host with an empty label', ['--set', 'database.host=db..example'], '/database/host'],
    ['a host starting with a hyphen', ['--set', 'database.host=-db'], '/database/host'],
    ['a host of colons', ['--set', 'database.host=:::'], '/database/host'],
    ['a host with a URL scheme', ['--set', 'database.host=postgres://db'], '/database/host'],
    ['a nameOverride that is not a DNS label', ['--set', 'nameOverride=Bad_Name'], '/nameOverride'],
    [
      'a fullnameOverride that is not a DNS label',
      ['--set', 'fullnameOverride=Bad_Name'],
      '/fullnameOverride',
    ],
    [
      'a common label whose value has spaces',
      ['--set', 'commonLabels.team=platform team'],
      '/commonLabels/team',
    ],
    [
      'a common label key with a space',
      ['--set', 'commonLabels.Bad Key=x'],
      "invalid propertyName 'Bad Key'",
    ],
    [
      'a common label that replaces a selector label',
      ['--set', 'commonLabels.app\\.kubernetes\\.io/name=other'],
      'commonLabels may not set app.kubernetes.io/name',
    ],
    [
      'a ServiceMonitor label that replaces a chart label',
      ['--set', 'serviceMonitor.labels.app\\.kubernetes\\.io/instance=other'],
      'serviceMonitor.labels may not set app.kubernetes.io/instance',
    ],
    ['an empty token issuer', ['--set', 'auth.tokens.issuer='], '/auth/tokens/issuer'],
    ['an empty token audience', ['--set', 'auth.tokens.audience='], '/auth/tokens/audience'],
    [
      'an extra environment variable with a number as value',
      ['--set', 'auth.extraEnv[0].name=LIMIT,auth.extraEnv[0].value=5'],
      '/auth/extraEnv/0/value',
    ],
    [
      'an extra environment variable with a misspelt key',
      ['--set', 'operator.extraEnv[0].name=LIMIT,operator.extraEnv[0].valeu=5'],
      '/operator/extraEnv/0',
    ],
    [
      'an entry point with a comma, which the operator would split',
      ['--set', 'operator.gatewayEntryPoints[0]=web\\,websecure'],
      '/operator/gatewayEntryPoints/0',
    ],
    [
      'an autoscaler whose minimum is above its maximum',
      ['--set', 'auth.autoscaling.enabled=true,auth.autoscaling.minReplicas=5'],
      'auth.autoscaling.minReplicas',
    ],
    [
      'a disruption budget that keeps every replica, so no node can be drained',
      ['--set', 'organization.replicaCount=1'],
      'organization.pdb.minAvailable',
    ],
  ];
  // The autoscaler case above needs its maximum below 5.
  const autoscaler = refused.find(([what]) => what.startsWith('an autoscaler'));
  if (autoscaler) autoscaler[1].push('--set', 'auth.autoscaling.maxReplicas=2');

  for (const [what, args, named] of refused) {
    it(`refuses ${what}, naming the value`, async () => {
      const outcome = await template(args);
      expect(outcome.code, `rendered:\n${outcome.stdout.slice(0, 400)}`).to.not.equal(0);
      expect(outcome.stderr).to.include(named);
      expect(outcome.stderr).to.not.include('nil pointer');
    });
  }

  // `--set key=null` deletes a default; a required part must then be named, not crash a template.
  const nulled: [string, string][] = [
    ['auth', 'auth'],
    ['database.roles', 'roles'],
    ['database.roles.app', 'app'],
    ['auth.image', 'image'],
    ['image', 'image'],
    ['global', 'global'],
    ['auth.autoscaling', 'autoscaling'],
    ['auth.resources', 'resources'],
    ['auditRetention.schedule', 'schedule'],
    ['operator.gatewayEntryPoints', 'gatewayEntryPoints'],
    ['auth.pdb.minAvailable', 'minAvailable'],
    ['database.port', 'port'],
    ['migrations.hook', 'hook'],
  ];
  for (const [key, property] of nulled) {
    it(`refuses ${key} set to null, naming the missing value`, async () => {
      const outcome = await template(['--set', `${key}=null`]);
      expect(outcome.code, `rendered:\n${outcome.stdout.slice(0, 400)}`).to.not.equal(0);
      expect(outcome.stderr).to.match(new RegExp(`missing propert[a-z]* .*'${property}'`));
      expect(outcome.stderr).to.not.include('nil pointer');
    });
  }

  it('accepts what Kubernetes accepts: cron names and steps, quantities, hosts and addresses', async () => {
    for (const args of [
      ['--set', 'auditRetention.schedule=*/15 2-4 1\\,15 JAN-MAR mon-fri'],
      ['--set', 'auditRetention.schedule=0 0 ? * 0'],
      ['--set', 'auditRetention.schedule=@daily'],
      ['--set', 'auth.resources.requests.cpu=1,auth.resources.limits.cpu=1.5'],
      ['--set', 'auth.resources.requests.cpu=250m,auth.resources.requests.memory=1.5Gi'],
      ['--set', 'auth.resources.limits.ephemeral-storage=1G'],
      ['--set', 'auth.resources.limits.nvidia\\.com/gpu=1'],
      ['--set', 'database.host=10.0.0.12'],
      ['--set', 'database.host=fd00::12'],
      ['--set', 'database.host=Postgres.DB-1.example.internal.'],
      ['--set', 'database.roles.app.existingSecret=app.credentials-1'],
      ['--set', 'global.imageRegistry=registry.example.com:5000/mirror'],
      ['--set', 'commonLabels.example\\.com/team=platform_1'],
      ['--set', 'auth.replicaCount=1,auth.pdb.enabled=false'],
      ['--set', 'auth.replicaCount=3,auth.pdb.minAvailable=2'],
      ['--set', 'fullnameOverride=platform'],
      ['--set', 'auditRetention.successfulJobsHistoryLimit=0'],
    ]) {
      const outcome = await template(args);
      expect(outcome.code, `${args.join(' ')}: ${outcome.stderr}`).to.equal(0);
    }
  });

  it('refuses a release whose resource names would be too long for Kubernetes, naming the fix', async () => {
    const longest = 'r'.repeat(53);
    const outcome = await template([], longest);
    expect(outcome.code, `rendered:\n${outcome.stdout.slice(0, 400)}`).to.not.equal(0);
    expect(outcome.stderr).to.include('fullnameOverride');
    // The same release renders with a shorter prefix, and every name fits.
    const manifests = await render(['-f', MINIMAL, '--set', 'fullnameOverride=platform']);
    expect(manifests.map((m) => m.metadata.name)).to.include('platform-auth');
  });

  it('refuses a name prefix starting with a digit, which Service names may not, naming the fix', async () => {
    // Helm accepts release names such as 2026-erp; the API server refuses a Service named so.
    for (const [args, release] of [
      [[], '2026-erp'],
      [['--set', 'fullnameOverride=9platform'], 'vextrus'],
    ] as const) {
      const outcome = await template([...args], release);
      expect(outcome.code, `${release} ${args.join(' ')} rendered`).to.not.equal(0);
      expect(outcome.stderr).to.include('must start with a letter');
      expect(outcome.stderr).to.include('fullnameOverride');
    }
    const renamed = await render(['-f', MINIMAL, '--set', 'fullnameOverride=erp-2026']);
    expect(renamed.map((m) => m.metadata.name)).to.include('erp-2026-auth');
  });

  it('keeps every name within its Kubernetes limit for the longest prefix it accepts', async () => {
    // Services are DNS labels (63); a CronJob's Jobs add 11 characters (52); a StatefulSet's Pods
    // carry a revision hash label (52); a Job's name is a label value (63).
    const limits: Record<string, number> = { Service: 63, CronJob: 52, StatefulSet: 52, Job: 63 };
    let prefix = 'p'.repeat(63);
    let manifests: Manifest[] | undefined;
    while (!manifests && prefix.length > 0) {
      const outcome = await helm([
        'template',
        'vextrus',
        CHART,
        '-f',
        FULL,
        '--set',
        `fullnameOverride=${prefix}`,
      ]);
      if (outcome.code === 0)
        manifests = await render(['-f', FULL, '--set', `fullnameOverride=${prefix}`]);
      else prefix = prefix.slice(1);
    }
    expect(prefix.length, 'some prefix renders').to.be.greaterThan(20);
    for (const manifest of manifests ?? []) {
      const limit = limits[manifest.kind] ?? 253;
      expect(
        manifest.metadata.name.length,
        `${manifest.kind}/${manifest.metadata.name}`,
      ).to.be.at.most(limit);
    }
  });

  it('refers, with any part switched off, only to Secrets, ConfigMaps and accounts it renders or was given', async () => {
    const parts = [
      'auth.enabled',
      'organization.enabled',
      'operator.enabled',
      'migrations.hook.enabled',
      'auditRetention.enabled',
      'postgresql.enabled',
    ];
    const off = (part: string): string[] =>
      part === 'postgresql.enabled'
        ? [`${part}=true`]
        : // The organization service needs the auth service (refused above): both go together.
          part === 'auth.enabled'
          ? [`${part}=false`, 'organization.enabled=false']
          : [`${part}=false`];
    const cases = [
      ...parts.map(off),
      parts.map((part) => (part === 'postgresql.enabled' ? `${part}=true` : `${part}=false`)),
    ];
    for (const set of cases) {
      const args = ['-f', MINIMAL, ...set.flatMap((s) => ['--set', s])];
      const manifests = await render(args);
      const names = new Set(manifests.map((m) => `${m.kind}/${m.metadata.name}`));
      for (const manifest of manifests) {
        const spec = podSpecOf(manifest);
        if (!spec) continue;
        const where = `${set.join(' ')}: ${manifest.kind}/${manifest.metadata.name}`;
        const text = JSON.stringify(spec);
        for (const [, name] of text.matchAll(/"secretKeyRef":\{"name":"([^"]+)"/g)) {
          expect(names.has(`Secret/${name}`), `${where} reads Secret ${name}`).to.equal(true);
        }
        for (const [, name] of text.matchAll(/"secretName":"([^"]+)"/g)) {
          expect(names.has(`Secret/${name}`), `${where} mounts Secret ${name}`).to.equal(true);
        }
        for (const [, name] of text.matchAll(/"configMapRef":\{"name":"([^"]+)"/g)) {
          expect(names.has(`ConfigMap/${name}`), `${where} reads ConfigMap ${name}`).to.equal(true);
        }
        const account = spec.serviceAccountName as string | undefined;
        if (account) expect(names.has(`ServiceAccount/${account}`), where).to.equal(true);
      }
    }
  });

  it('renders every workload within the restricted Pod Security Standard by default', async () => {
    for (const file of [MINIMAL, FULL]) {
      let checked = 0;
      for (const manifest of await render(['-f', file])) {
        const spec = podSpecOf(manifest);
        if (!spec) continue;
        const where = `${path.basename(file)} ${manifest.kind}/${manifest.metadata.name}`;
        for (const host of ['hostNetwork', 'hostPID', 'hostIPC', 'hostUsers']) {
          expect(spec[host], `${where} ${host}`).to.not.equal(true);
        }
        const pod = (spec.securityContext ?? {}) as Record<string, unknown>;
        expect(pod.runAsNonRoot, where).to.equal(true);
        expect(pod.runAsUser, where).to.not.equal(0);
        expect(pod.sysctls, where).to.equal(undefined);
        expect(pod.seccompProfile, where).to.deep.equal({ type: 'RuntimeDefault' });
        const allowed = ['configMap', 'emptyDir', 'projected', 'secret', 'persistentVolumeClaim'];
        for (const volume of (spec.volumes ?? []) as Record<string, unknown>[]) {
          const kinds = Object.keys(volume).filter((k) => k !== 'name');
          expect(allowed, `${where} volume ${String(volume.name)}`).to.include.members(kinds);
        }
        for (const container of containersOf(spec)) {
          const at = `${where} container ${container.name}`;
          const context = container.securityContext ?? {};
          expect(context.privileged, at).to.not.equal(true);
          expect(context.allowPrivilegeEscalation, at).to.equal(false);
          expect(context.capabilities, at).to.deep.equal({ drop: ['ALL'] });
          expect(context.runAsUser, at).to.not.equal(0);
          expect(context.readOnlyRootFilesystem, at).to.equal(true);
          const ports = ((container as Record<string, unknown>).ports ?? []) as {
            hostPort?: number;
          }[];
          for (const port of ports) expect(port.hostPort, at).to.equal(undefined);
          checked += 1;
        }
      }
      expect(checked, file).to.be.greaterThan(5);
    }
  });
});
