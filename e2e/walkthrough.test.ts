/**
 * The README walkthrough, end to end: the local platform as `make up` brings it up (embedded
 * PostgreSQL, a real control plane, the operator, the services and Traefik as the gateway), in a
 * temporary folder on free ports, and then every step of the walkthrough with the same kubectl
 * commands and the same requests, sent to the gateway with the tenant's Host header. The one
 * simulated part is the control plane's local node, which runs the operator's migration Jobs as
 * local processes because no kubelet can run here.
 */
import { request } from 'node:http';
import { expect } from 'chai';
import pg from 'pg';
import { runMigrationsCli } from '../tools/devkit/src/testing/process.js';
import { waitUntil } from '../tools/devkit/src/kube/cluster.js';
import { kubectl } from '../tools/devkit/src/local/kubectl.js';
import { readSetupToken, type LocalPlatform } from '../tools/devkit/src/local/platform.js';
import { skipWithoutGateway, startTestPlatform, type TestPlatform } from './test-platform.js';

const PASSWORD = 'correct horse battery staple';
const MEMBER_PASSWORD = 'a member reads the plans';

/** The Tenant of the walkthrough, as the README applies it. */
const INITECH = `apiVersion: platform.vextrus.dev/v1alpha1
kind: Tenant
metadata:
  name: initech
spec:
  slug: initech
  displayName: Initech Builders
  hosts: [initech.localhost]
  firstAdministrator: { email: admin@initech.test, name: Ian Admin }
  firstOrganization: { name: Initech Holdings, code: INITECH }
  deletionPolicy: Retain
`;

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

interface Call {
  host: string;
  token?: string;
  body?: unknown;
  headers?: Record<string, string>;
}

/** One HTTP request to `base` (node:http, because fetch may not set Host). */
function call(base: string, method: string, route: string, options: Call): Promise<Answer> {
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  const headers: Record<string, string> = { host: options.host, ...options.headers };
  if (payload !== undefined) headers['content-type'] = 'application/json';
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  return new Promise((resolve, reject) => {
    const req = request(new URL(route, base), { method, headers }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('error', reject);
      res.on('end', () => {
        let body: Record<string, unknown>;
        try {
          body = JSON.parse(text) as Record<string, unknown>;
        } catch {
          body = { text };
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

function items(answer: Answer): Record<string, unknown>[] {
  return (answer.body.items ?? []) as Record<string, unknown>[];
}

describe('the README walkthrough, through the Traefik gateway', function () {
  this.timeout(240_000);
  let test: TestPlatform | undefined;
  let platform: LocalPlatform;
  const initech = { host: 'initech.localhost' };
  const globex = { host: 'globex.localhost' };
  let adminToken = '';
  let memberToken = '';
  let globexToken = '';
  const ids: Record<string, string> = {};

  /** Through the gateway with the tenant's Host; without Traefik, to the service directly. */
  const send = (method: string, route: string, options: Call): Promise<Answer> => {
    if (platform.gateway) return call(platform.url('gateway'), method, route, options);
    const auth = route.startsWith('/auth') || route.startsWith('/.well-known');
    const slug = options.host.split('.')[0] ?? '';
    const headers = { ...options.headers, 'X-Tenant-ID': slug };
    return call(platform.url(auth ? 'auth' : 'organization'), method, route, {
      ...options,
      headers,
    });
  };

  before(async function () {
    this.timeout(600_000);
    test = await startTestPlatform();
    platform = test.platform;
  });

  after(async function () {
    this.timeout(60_000);
    await test?.stop();
  });

  it('once the platform is up, the gateway already routes every example tenant', async function () {
    if (!platform.gateway) this.skip();
    // No wait here: `make up` prints the curl commands to try once this point is reached.
    for (const host of ['acme.localhost', 'globex.localhost']) {
      const answer = await send('GET', '/.well-known/jwks.json', { host });
      expect(answer.status, host).to.equal(200);
    }
  });

  it('when a Tenant is applied with kubectl, it becomes Ready and delivers a setup token', async () => {
    await kubectl(platform.kubeconfig, ['apply', '-f', '-'], INITECH);
    await kubectl(platform.kubeconfig, [
      'wait',
      '--for=condition=Ready',
      'tenant/initech',
      '--timeout=180s',
    ]);

    const token = await readSetupToken(platform.kubeconfig, 'initech');

    expect(token).to.be.a('string').with.length.greaterThan(10);
    ids.setupToken = token ?? '';
  });

  it('the first administrator sets a password and logs in through the tenant host', async () => {
    // The operator has just written the route; Traefik serves it once its provider synced.
    await waitUntil('the gateway to route initech.localhost', async () =>
      (await send('GET', '/.well-known/jwks.json', initech)).status === 200 ? true : undefined,
    );

    const setup = await send('POST', '/auth/setup', {
      ...initech,
      body: { token: ids.setupToken, password: PASSWORD },
    });
    const login = await send('POST', '/auth/login', {
      ...initech,
      body: { email: 'admin@initech.test', password: PASSWORD },
    });

    expect(setup.status, JSON.stringify(setup.body)).to.equal(200);
    expect(login.status, JSON.stringify(login.body)).to.equal(200);
    adminToken = String(login.body.accessToken);
  });

  it('the administrator creates an organization, a branch, a division, a project and a site', async () => {
    const as = { ...initech, token: adminToken };
    const create = async (route: string, body: object): Promise<string> => {
      const answer = await send('POST', route, { ...as, body });
      expect(answer.status, `${route}: ${JSON.stringify(answer.body)}`).to.equal(201);
      return String(answer.body.id);
    };

    ids.organization = await create('/org/organizations', {
      code: 'INI-BUILD',
      legalName: 'Initech Building Ltd',
      displayName: 'Initech Building',
      country: 'BD',
      currency: 'BDT',
      timeZone: 'Asia/Dhaka',
    });
    const org = `/org/organizations/${ids.organization}`;
    ids.branch = await create(`${org}/branches`, { code: 'DHK', name: 'Dhaka' });
    ids.division = await create(`${org}/divisions`, { code: 'CIVIL', name: 'Civil works' });
    ids.project = await create(`${org}/projects`, { code: 'TOWER-1', name: 'Tower One' });
    ids.site = await create(`/org/projects/${ids.project}/sites`, { code: 'S1', name: 'Plot 7' });

    const sites = await send('GET', `/org/projects/${ids.project}/sites`, as);
    expect(items(sites).map((site) => site.id)).to.deep.equal([ids.site]);
  });

  it('an invited member logs in and can read but not write', async () => {
    const invitation = await send('POST', '/auth/invitations', {
      ...initech,
      token: adminToken,
      body: { email: 'mia@initech.test', name: 'Mia Member', role: 'member' },
    });
    expect(invitation.status, JSON.stringify(invitation.body)).to.equal(201);
    await send('POST', '/auth/invitations/accept', {
      ...initech,
      body: { token: invitation.body.invitationToken, password: MEMBER_PASSWORD },
    });
    const login = await send('POST', '/auth/login', {
      ...initech,
      body: { email: 'mia@initech.test', password: MEMBER_PASSWORD },
    });
    memberToken = String(login.body.accessToken);

    const read = await send('GET', '/org/organizations', {
      ...initech,
      token: memberToken,
    });
    const write = await send('POST', `/org/organizations/${ids.organization}/branches`, {
      ...initech,
      token: memberToken,
      body: { code: 'CTG', name: 'Chattogram' },
    });

    expect(login.status).to.equal(200);
    expect(items(read).map((o) => o.code)).to.include('INI-BUILD');
    expect(write.status).to.equal(403);
  });

  it('the audit log holds what was done, and its chain verifies', async () => {
    const as = { ...initech, token: adminToken };

    const events = await send('GET', '/audit/events?limit=200', as);
    const verify = await send('GET', '/audit/verify', as);

    expect(events.status, JSON.stringify(events.body)).to.equal(200);
    const resources = items(events).map((event) => event.resourceId);
    expect(resources).to.include.members([ids.organization, ids.site]);
    const denied = items(events).filter((event) => event.outcome === 'denied');
    expect(denied, 'the member refused a write').to.have.length.greaterThan(0);
    expect(verify.status).to.equal(200);
    expect(verify.body.valid).to.equal(true);
  });

  it('a second tenant sees none of it', async () => {
    const token = platform.setupTokens.globex ?? '';
    await send('POST', '/auth/setup', { ...globex, body: { token, password: PASSWORD } });
    const login = await send('POST', '/auth/login', {
      ...globex,
      body: { email: 'admin@globex.test', password: PASSWORD },
    });
    globexToken = String(login.body.accessToken);

    const globexOrgs = await send('GET', '/org/organizations', { ...globex, token: globexToken });
    const initechSite = await send('GET', `/org/sites/${ids.site}`, {
      ...globex,
      token: globexToken,
    });
    const audit = await send('GET', '/audit/events?limit=200', { ...globex, token: globexToken });

    expect(login.status, JSON.stringify(login.body)).to.equal(200);
    // What make up prints for globex from now on: no token (its Secret still holds the used one).
    expect(token).not.to.equal('');
    expect(await platform.usableSetupToken('globex')).to.equal(undefined);
    expect(items(globexOrgs).map((o) => o.code)).to.deep.equal(['GLOBEX']);
    expect(initechSite.status).to.equal(404);
    expect(items(audit).map((event) => event.resourceId)).not.to.include(ids.organization);
  });

  it('forging X-Tenant-ID through the gateway does not help: the gateway replaces it', async function () {
    skipWithoutGateway(this, platform);
    const forged = { 'X-Tenant-ID': 'initech' };

    const forgedRead = await send('GET', '/org/organizations', {
      ...globex,
      token: globexToken,
      headers: forged,
    });
    const forgedLogin = await send('POST', '/auth/login', {
      ...globex,
      headers: forged,
      body: { email: 'admin@initech.test', password: PASSWORD },
    });
    const initechTokenAtGlobex = await send('GET', '/org/organizations', {
      ...globex,
      token: adminToken,
      headers: forged,
    });

    expect(items(forgedRead).map((o) => o.code)).to.deep.equal(['GLOBEX']);
    expect(forgedLogin.status, 'initech credentials at globex').to.equal(401);
    expect(initechTokenAtGlobex.status).to.equal(403);
    expect(initechTokenAtGlobex.body.code).to.equal('TENANT_MISMATCH');
  });

  it('when the Retain tenant is deleted, its access ends and its data is kept', async () => {
    await kubectl(platform.kubeconfig, ['delete', 'tenant', 'initech', '--timeout=120s']);

    // Through the gateway the route is gone (404); the auth service itself refuses (401).
    const refused = platform.gateway ? 404 : 401;
    const login = await waitUntil('initech logins to be refused', async () => {
      const answer = await send('POST', '/auth/login', {
        ...initech,
        body: { email: 'admin@initech.test', password: PASSWORD },
      });
      return answer.status === refused ? answer : undefined;
    });
    const status = await runMigrationsCli(['tenant', 'initech', 'status'], {
      DATABASE_URL: platform.ownerUrl,
    });
    // As the superuser: row-level security hides the rows from every other role.
    const client = new pg.Client({ connectionString: platform.postgres?.url('vextrus') });
    await client.connect();
    const kept = await client
      .query<{ code: string }>('SELECT code FROM tenant_initech.organizations ORDER BY code')
      .finally(() => client.end());

    expect(login.status).to.equal(refused);
    expect(status.code, status.stderr).to.equal(0);
    const track = JSON.parse(status.stdout) as { schema: string; executed: string[] };
    expect(track.schema).to.equal('tenant_initech');
    expect(track.executed).to.have.length.greaterThan(0);
    expect(kept.rows.map((row) => row.code)).to.deep.equal(['INI-BUILD', 'INITECH']);
  });
});
