import { createPrivateKey } from 'node:crypto';
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseDocument, isMap, isScalar, type YAMLMap } from 'yaml';
import {
  CHART,
  VALUES_FILES,
  containersOf,
  helm,
  podSpecOf,
  render,
  type Manifest,
} from './chart-helpers.js';

const MINIMAL = VALUES_FILES[0] ?? '';

function byKind(manifests: Manifest[], kind: string): Manifest[] {
  return manifests.filter((m) => m.kind === kind);
}

describe('the vextrus Helm chart', function () {
  // Helm renders in about a second; building it the first time is `make test-tools`' job.
  this.timeout(120_000);
  const rendered = new Map<string, Manifest[]>();

  before(async () => {
    for (const file of VALUES_FILES) rendered.set(file, await render(['-f', file]));
  });

  it('passes helm lint --strict with every values file of ci/', async () => {
    for (const file of VALUES_FILES) {
      const outcome = await helm(['lint', '--strict', CHART, '-f', file]);
      expect(outcome.code, `${path.basename(file)}: ${outcome.stdout}${outcome.stderr}`).to.equal(
        0,
      );
    }
  });

  it('when a value is of the wrong kind or unknown, the schema refuses it naming the key', async () => {
    const outcome = await helm([
      'template',
      'vextrus',
      CHART,
      '-f',
      MINIMAL,
      '--set',
      'database.sslmode=maybe',
      '--set',
      'auth.port=0',
      '--set',
      'operator.logLevel=loud',
      '--set',
      'database.roles.app.username=Robert-Tables',
      '--set',
      'auth.replicas=3',
    ]);
    expect(outcome.code).to.not.equal(0);
    expect(outcome.stderr).to.include('/database/sslmode');
    expect(outcome.stderr).to.include("'disable', 'require', 'verify-ca', 'verify-full'");
    expect(outcome.stderr).to.include('/auth/port');
    expect(outcome.stderr).to.include('/operator/logLevel');
    expect(outcome.stderr).to.include('/database/roles/app/username');
    expect(outcome.stderr).to.include("'replicas' not allowed");
  });

  it('accepts an image repository on a registry with a port, and refuses a URL', async () => {
    // A registry with a port is what `skaffold --default-repo localhost:5001` (kind's local
    // registry) writes into the image values.
    const key = 'auth.image.repository';
    const manifests = await render(['-f', MINIMAL, '--set', `${key}=localhost:5001/dev/auth`]);
    const auth = manifests.find(
      (m) => m.kind === 'Deployment' && m.metadata.name === 'vextrus-auth',
    );
    const images = containersOf(podSpecOf(auth ?? ({} as Manifest)) ?? {}).map((c) => c.image);
    expect(images).to.have.length.greaterThan(0);
    for (const image of images) expect(image).to.match(/^localhost:5001\/dev\/auth:/);

    const url = ['--set', `${key}=https://localhost:5001/dev/auth`];
    const outcome = await helm(['template', 'vextrus', CHART, '-f', MINIMAL, ...url]);
    expect(outcome.code).to.not.equal(0);
    expect(outcome.stderr).to.include('/auth/image/repository');
  });

  it('when no database host is given, it refuses to render and says what to set', async () => {
    const outcome = await helm(['template', 'vextrus', CHART]);
    expect(outcome.code).to.not.equal(0);
    expect(outcome.stderr).to.include('database.host is required');
  });

  it('when an existing PostgreSQL has no admin credentials, it says the hook needs them', async () => {
    const outcome = await helm(['template', 'vextrus', CHART, '--set', 'database.host=db']);
    expect(outcome.code).to.not.equal(0);
    expect(outcome.stderr).to.include('database.roles.admin.password');
  });

  it('grants the operator no wildcard verb, resource or API group, and what it needs', () => {
    const manifests = rendered.get(MINIMAL) ?? [];
    const roles = [...byKind(manifests, 'ClusterRole'), ...byKind(manifests, 'Role')];
    expect(roles.map((r) => r.kind).sort()).to.deep.equal(['ClusterRole', 'Role', 'Role']);
    // Events about Tenants (cluster-scoped) go to `default`; that Role may only record them.
    const inDefault = roles.filter((r) => r.metadata?.namespace === 'default');
    expect(inDefault.flatMap((r) => r.rules ?? [])).to.deep.equal([
      { apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create', 'patch'] },
    ]);
    type Rule = { apiGroups: string[]; resources: string[]; verbs: string[] };
    const rules = roles.flatMap((role) => (role.rules ?? []) as Rule[]);
    for (const rule of rules) {
      for (const value of [...rule.apiGroups, ...rule.resources, ...rule.verbs]) {
        expect(value, JSON.stringify(rule)).to.not.include('*');
      }
    }
    const grants = (resource: string, verb: string): boolean =>
      rules.some((r) => r.resources.includes(resource) && r.verbs.includes(verb));
    for (const [resource, verb] of [
      ['tenants', 'watch'],
      ['tenants/status', 'patch'],
      ['tenants/finalizers', 'update'],
      ['jobs', 'create'],
      ['secrets', 'create'],
      ['events', 'create'],
      ['leases', 'update'],
      ['middlewares', 'patch'],
      ['ingressroutes', 'delete'],
      ['pods/log', 'get'],
    ]) {
      expect(grants(resource ?? '', verb ?? ''), `${verb} ${resource}`).to.equal(true);
    }
    expect(grants('secrets', 'update'), 'secrets are created and deleted, never updated').to.equal(
      false,
    );
  });

  it('runs every container non-root, read-only, unprivileged, without capabilities, under RuntimeDefault', () => {
    let checked = 0;
    for (const [file, manifests] of rendered) {
      for (const manifest of manifests) {
        const spec = podSpecOf(manifest);
        if (!spec) continue;
        const where = `${path.basename(file)} ${manifest.kind}/${manifest.metadata.name}`;
        const pod = spec.securityContext as Record<string, unknown> | undefined;
        expect(pod?.runAsNonRoot, where).to.equal(true);
        expect(pod?.seccompProfile, where).to.deep.equal({ type: 'RuntimeDefault' });
        for (const container of containersOf(spec)) {
          const context = container.securityContext ?? {};
          const at = `${where} container ${container.name}`;
          expect(context.runAsNonRoot, at).to.equal(true);
          expect(context.readOnlyRootFilesystem, at).to.equal(true);
          expect(context.allowPrivilegeEscalation, at).to.equal(false);
          expect(context.capabilities, at).to.deep.equal({ drop: ['ALL'] });
          expect(context.seccompProfile, at).to.deep.equal({ type: 'RuntimeDefault' });
          checked += 1;
        }
      }
    }
    // auth, organization, operator, hook (2), CronJob, test Pod, PostgreSQL at the least.
    expect(checked).to.be.greaterThan(8);
  });

  it('labels every object with app.kubernetes.io/*, and selects Pods only by stable labels', () => {
    for (const manifests of rendered.values()) {
      for (const manifest of manifests) {
        const labels = manifest.metadata.labels ?? {};
        const what = `${manifest.kind}/${manifest.metadata.name}`;
        for (const key of ['name', 'instance', 'component', 'version', 'managed-by', 'part-of']) {
          expect(labels, what).to.have.property(`app.kubernetes.io/${key}`);
        }
        const selector = (manifest.spec?.selector ?? undefined) as
          { matchLabels?: Record<string, string> } | Record<string, string> | undefined;
        if (!selector || manifest.kind === 'ServiceMonitor') continue;
        const keys = Object.keys(
          'matchLabels' in selector ? (selector.matchLabels ?? {}) : selector,
        ).sort();
        expect(keys, what).to.deep.equal([
          'app.kubernetes.io/component',
          'app.kubernetes.io/instance',
          'app.kubernetes.io/name',
        ]);
      }
    }
  });

  it('when the configuration changes, the Deployments get a new checksum and so roll', async () => {
    const checksums = async (logLevel: string): Promise<string[]> => {
      const manifests = await render(['-f', MINIMAL, '--set', `auth.logLevel=${logLevel}`]);
      return byKind(manifests, 'Deployment').map((d) => {
        const template = d.spec?.template as { metadata: { annotations: Record<string, string> } };
        return template.metadata.annotations['checksum/config'] ?? 'none';
      });
    };
    const [before, after] = [await checksums('info'), await checksums('debug')];
    expect(before.filter((c) => c !== 'none')).to.have.length(2);
    expect(after).to.not.deep.equal(before);
  });

  it('passes the app credentials to the services and the owner Secret to the operator', () => {
    const manifests = rendered.get(MINIMAL) ?? [];
    const secrets = byKind(manifests, 'Secret').map((s) => s.metadata.name);
    expect(secrets).to.include.members([
      'vextrus-database-admin',
      'vextrus-database-owner',
      'vextrus-database-app',
      'vextrus-database-retention',
      'vextrus-auth-signing-keys',
    ]);
    const owner = byKind(manifests, 'Secret').find((s) => s.metadata.name.endsWith('-owner'));
    expect(Object.keys(owner?.stringData ?? {}).sort()).to.deep.equal([
      'DATABASE_HOST',
      'DATABASE_NAME',
      'DATABASE_PASSWORD',
      'DATABASE_PORT',
      'DATABASE_SSLMODE',
      'DATABASE_USERNAME',
    ]);
    const keys = byKind(manifests, 'Secret').find((s) => s.metadata.name.endsWith('signing-keys'));
    const pem = Object.values((keys?.stringData ?? {}) as Record<string, string>)[0] ?? '';
    // An RSA key of 2048 bits (RS256): what the auth service accepts and verifies fastest.
    const signingKey = createPrivateKey(pem);
    expect(signingKey.asymmetricKeyType).to.equal('rsa');
    expect(signingKey.asymmetricKeyDetails?.modulusLength).to.equal(2048);
    const env = (name: string): { name: string; valueFrom?: unknown; value?: string }[] => {
      const deployment = byKind(manifests, 'Deployment').find((d) => d.metadata.name === name);
      const spec = deployment ? podSpecOf(deployment) : undefined;
      const [container] = spec ? containersOf(spec) : [];
      return (container as { env?: [] } | undefined)?.env ?? [];
    };
    expect(JSON.stringify(env('vextrus-auth'))).to.include('vextrus-database-app');
    expect(JSON.stringify(env('vextrus-operator'))).to.include('vextrus-database-owner');
    const secretEnv = env('vextrus-operator').find((e) => e.name === 'MIGRATIONS_DATABASE_SECRET');
    expect(secretEnv?.value).to.equal('vextrus-database-owner');
  });

  it('with existing Secrets, makes none of its own and refers to the given ones', () => {
    const manifests = rendered.get(VALUES_FILES[2] ?? '') ?? [];
    expect(byKind(manifests, 'Secret')).to.have.length(0);
    const text = JSON.stringify(manifests);
    for (const name of [
      'vextrus-db-admin',
      'vextrus-db-owner',
      'vextrus-db-app',
      'vextrus-jwt-keys',
    ]) {
      expect(text).to.include(`"${name}"`);
    }
  });

  it('with components off, renders only the operator and what it needs', () => {
    const manifests = rendered.get(VALUES_FILES[3] ?? '') ?? [];
    const workloads = manifests
      .filter((m) => podSpecOf(m))
      .map((m) => `${m.kind}/${m.metadata.name}`);
    expect(workloads).to.deep.equal(['Deployment/vextrus-operator', 'Pod/vextrus-test-health']);
    expect(byKind(manifests, 'PodDisruptionBudget')).to.have.length(0);
  });

  it('documents every value with a `# --` comment, in the schema and in the README', () => {
    const document = parseDocument(readFileSync(path.join(CHART, 'values.yaml'), 'utf8'));
    const schema = JSON.parse(readFileSync(path.join(CHART, 'values.schema.json'), 'utf8')) as {
      properties: Record<string, unknown>;
    };
    const readme = readFileSync(path.join(CHART, 'README.md'), 'utf8');
    const undocumented: string[] = [];
    const walk = (map: YAMLMap, prefix: string, schemaNode: unknown): void => {
      for (const [index, pair] of map.items.entries()) {
        const key = isScalar(pair.key) ? String(pair.key.value) : '';
        const name = prefix ? `${prefix}.${key}` : key;
        // The comment above a map's first key belongs to the map in the YAML library's tree; the
        // file's header comes with the first key's comment (its last paragraph is the key's).
        const comment =
          (
            (isScalar(pair.key) ? pair.key.commentBefore : undefined) ??
            (index === 0 ? map.commentBefore : undefined) ??
            ''
          )
            .split('\n\n')
            .pop() ?? '';
        if (!comment.trimStart().startsWith('--')) undocumented.push(`${name} (no # -- comment)`);
        const node = (schemaNode as { properties?: Record<string, unknown> } | undefined)
          ?.properties?.[key] as { description?: string; properties?: unknown } | undefined;
        if (!node?.description) undocumented.push(`${name} (no schema description)`);
        // Resource requests and limits are documented as a whole, as Kubernetes defines them.
        if (isMap(pair.value) && node?.properties && key !== 'resources') {
          walk(pair.value, name, node);
        } else if (!readme.includes(`\`${name}\``)) undocumented.push(`${name} (not in README)`);
      }
    };
    if (isMap(document.contents)) walk(document.contents, '', schema);
    expect(undocumented).to.deep.equal([]);
  });
});
