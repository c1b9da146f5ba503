/* eslint-disable @typescript-eslint/no-unsafe-member-access --
   response bodies are untyped JSON, and the assertions are what check their shape. */
import { expect } from 'chai';
import { ENTITIES, ROUTES } from '../src/index.js';
import {
  createBody,
  createTree,
  patchBody,
  startHarness,
  type Harness,
  type Response,
  type Tree,
} from './support.js';

describe('organization service: tenant isolation', function () {
  this.timeout(60_000);
  let h: Harness;
  let bravo: Tree;

  before(async () => {
    h = await startHarness('org_isolation');
    await createTree(h, h.alpha, 'A');
    bravo = await createTree(h, h.bravo, 'B');
  });
  after(async () => {
    await h?.close();
  });

  it('when tenant A names an id of tenant B, every route with an id answers 404', async () => {
    const withIds = ROUTES.filter((route) => route.path.includes(':'));
    expect(withIds.length).to.be.greaterThan(30);

    const answers: string[] = [];
    for (const route of withIds) {
      const entity = Object.values(ENTITIES).find((e) =>
        route.path.startsWith(`/org/${e.plural}/`),
      );
      if (!entity) throw new Error(`no entity for ${route.path}`);
      const path = route.path
        .replace(':id', bravo[entity.name])
        .replace(':parentId', bravo[entity.name]);
      const child = Object.values(ENTITIES).find((e) => route.path.endsWith(`/${e.plural}`));
      const body =
        route.method === 'post' && child && route.path.includes(':parentId')
          ? createBody(child.name, 'NEW')
          : route.method === 'patch'
            ? patchBody(entity.name)
            : undefined;
      const response = await h.call(route.method.toUpperCase(), path, {
        tenant: h.alpha,
        body,
        headers: { 'If-Match': '"0"' },
      });
      answers.push(`${route.method} ${route.path} → ${response.status} ${response.body?.code}`);
      expect(response.status, answers.at(-1)).to.equal(404);
      expect(response.body.code).to.equal('NOT_FOUND');
    }

    const untouched = await h.call('GET', `/org/organizations/${bravo.organization}`, {
      tenant: h.bravo,
    });
    expect(untouched.body.version).to.equal(0);
    expect(untouched.body.status).to.equal('active');
  });

  it('when a member or an auditor calls any write route, it answers 403; every read route answers 200', async () => {
    const own = await createTree(h, h.alpha, 'R');
    const answers: string[] = [];
    for (const route of ROUTES) {
      const entity = Object.values(ENTITIES).find((e) => route.path.startsWith(`/org/${e.plural}`));
      if (!entity) throw new Error(`no entity for ${route.path}`);
      const path = route.path
        .replace(':id', own[entity.name])
        .replace(':parentId', own[entity.name]);
      for (const role of ['member', 'auditor']) {
        const response = await h.call(route.method.toUpperCase(), path, {
          roles: [role],
          body: route.method === 'patch' ? patchBody(entity.name) : undefined,
          headers: { 'If-Match': '"0"' },
        });
        const expected = route.access === 'write' ? 403 : 200;
        answers.push(`${role} ${route.method} ${route.path} → ${response.status}`);
        expect(response.status, answers.at(-1)).to.equal(expected);
      }
    }
    const untouched = await h.call('GET', `/org/organizations/${own.organization}`);
    expect(untouched.body.version).to.equal(0);
  });

  it("when tenant A's body refers to a branch of tenant B, it answers 404 and creates nothing", async () => {
    const own = await h.call('GET', '/org/organizations', { tenant: h.alpha });
    const organization = own.body.items[0].id as string;

    const response = await h.call('POST', `/org/organizations/${organization}/projects`, {
      body: { code: 'X1', name: 'X', branchId: bravo.branch },
    });

    expect(response.status).to.equal(404);
    expect(response.body.field).to.equal('branchId');
    const projects = await h.call('GET', `/org/projects?code=X1`);
    expect(projects.body.items).to.have.length(0);
  });

  it('when X-Project-ID or X-Site-ID names a record of tenant B, a list answers 404 as for a missing id', async () => {
    const project = await h.call('GET', '/org/sites', {
      headers: { 'X-Project-ID': bravo.project },
    });
    const site = await h.call('GET', '/org/sites', { headers: { 'X-Site-ID': bravo.site } });
    const missing = await h.call('GET', '/org/sites', {
      headers: { 'X-Project-ID': '6f1d3f9c-1111-4e2a-9c3e-0a1b2c3d4e5f' },
    });

    expect([project.status, site.status]).to.deep.equal([404, 404]);
    expect(project.body.code).to.equal(missing.body.code);
    expect(project.body.title).to.equal(missing.body.title);
  });

  it('when tenant A lists, it sees only its own records', async () => {
    for (const entity of Object.values(ENTITIES)) {
      const list = await h.call('GET', `/org/${entity.plural}`, { tenant: h.alpha });
      expect(list.status).to.equal(200);
      const items = list.body.items as { code: string }[];
      const prefixes = new Set(items.map((item) => item.code[0]));
      expect(prefixes.has('B')).to.equal(false);
      expect(prefixes.has('A')).to.equal(true);
    }
  });
});

describe('organization service: two tenants on one database connection', function () {
  this.timeout(60_000);
  let h: Harness;
  let alpha: Tree;
  let bravo: Tree;

  before(async () => {
    h = await startHarness('org_one_connection', { DATABASE_POOL_MAX: '1' });
    alpha = await createTree(h, h.alpha, 'A');
    bravo = await createTree(h, h.bravo, 'B');
  });
  after(async () => {
    await h?.close();
  });

  it('when requests of both tenants, failing and succeeding, take turns on it, none sees or touches the other', async () => {
    const calls: Promise<string>[] = [];
    for (let i = 0; i < 48; i++) {
      const [tenant, own, other] = i % 2 ? [h.alpha, alpha, bravo] : [h.bravo, bravo, alpha];
      const kind = Math.floor(i / 2) % 4;
      // What an answer shows: its code, or for a list whether each site is the tenant's own.
      const outcome = (what: string) => (r: Response) => {
        const items = r.body?.items as { id: string }[] | undefined;
        const shown: unknown = r.body?.code ?? JSON.stringify(items?.map((s) => s.id === own.site));
        return `${what} ${r.status} ${String(shown)}`;
      };
      if (kind === 0) {
        const body = createBody('organization', `${own === alpha ? 'A' : 'B'}-ORG`);
        calls.push(h.call('POST', '/org/organizations', { tenant, body }).then(outcome('dup')));
      } else if (kind === 1) {
        calls.push(h.call('GET', '/org/sites', { tenant }).then(outcome('list')));
      } else if (kind === 2) {
        calls.push(
          h
            .call('POST', `/org/projects/${other.project}/sites`, {
              tenant,
              body: { code: `X${i}`, name: 'x' },
            })
            .then(outcome('foreign-parent')),
        );
      } else {
        calls.push(
          h
            .call('GET', `/org/projects/${own.project}`, {
              tenant,
              headers: { 'X-Site-ID': other.site },
            })
            .then(outcome('foreign-site')),
        );
      }
    }

    const answers = new Set(await Promise.all(calls));

    expect([...answers].sort()).to.deep.equal([
      'dup 409 CODE_TAKEN',
      'foreign-parent 404 NOT_FOUND',
      'foreign-site 404 NOT_FOUND',
      'list 200 [true]',
    ]);
  });
});
