/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-call --
   response bodies are untyped JSON, and the assertions are what check their shape. */
import { request } from 'node:http';
import { connect } from 'node:net';
import { gzipSync } from 'node:zlib';
import { expect } from 'chai';
import { QueryTypes } from 'sequelize';
import {
  createTree,
  organizationBody,
  startHarness,
  type Harness,
  type Response,
  type TestTenant,
  type Tree,
} from './support.js';
import { knownTimeZoneCount, timeZone } from '../src/domain/fields.js';

interface AuditRow {
  action: string;
  outcome: string;
  resource_id: string | null;
  details: Record<string, unknown> | null;
}

describe('organization service: hostile input and races', function () {
  this.timeout(120_000);
  let h: Harness;
  let alphaTree: Tree;
  let bravoTree: Tree;

  before(async () => {
    h = await startHarness('org_adversarial');
    alphaTree = await createTree(h, h.alpha, 'ADV');
    bravoTree = await createTree(h, h.bravo, 'ADV');
  });
  after(async () => {
    await h?.close();
  });

  /** A request with raw header lines (repeated names allowed) and a raw path. */
  function raw(
    method: string,
    path: string,
    headers: [string, string][],
    body?: string,
  ): Promise<Response & { contentType: string }> {
    const typed: [string, string][] =
      body === undefined ? headers : [...headers, ['Content-Type', 'application/json']];
    return rawBytes(method, path, typed, body);
  }

  /** As raw, with the body's bytes and every header (Content-Type too) as given. */
  function rawBytes(
    method: string,
    path: string,
    headers: [string, string][],
    body?: string | Buffer,
    tenant: TestTenant = h.alpha,
  ): Promise<Response & { contentType: string }> {
    const url = new URL(h.service.url);
    const lines: string[] = [
      'Host',
      url.host,
      'X-Tenant-ID',
      tenant.slug,
      'Authorization',
      `Bearer ${h.token(tenant)}`,
      ...headers.flat(),
    ];
    return new Promise((resolve, reject) => {
      const req = request(
        { host: url.hostname, port: url.port, method, path, headers: lines },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            resolve({
              status: res.statusCode ?? 0,
              headers: new Headers(res.headers as Record<string, string>),
              contentType: String(res.headers['content-type'] ?? ''),
              body: text ? (JSON.parse(text) as unknown) : undefined,
            });
          });
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  async function post(path: string, body: unknown, tenant: TestTenant = h.alpha): Promise<string> {
    const response = await h.call('POST', path, { body, tenant });
    expect(response.status, JSON.stringify(response.body)).to.equal(201);
    return response.body.id as string;
  }

  async function division(
    organization: string,
    code: string,
    parentId?: string,
    tenant: TestTenant = h.alpha,
  ): Promise<string> {
    return post(
      `/org/organizations/${organization}/divisions`,
      { code, name: code, parentId },
      tenant,
    );
  }

  async function etagOf(path: string, tenant: TestTenant = h.alpha): Promise<string> {
    const current = await h.call('GET', path, { tenant });
    expect(current.status, JSON.stringify(current.body)).to.equal(200);
    return current.headers.get('etag') ?? '';
  }

  async function audit(schema: string, resourceId: string): Promise<AuditRow[]> {
    await h.plane.sealAudit(schema);
    return h.plane.db.sequelize.query<AuditRow>(
      `SELECT action, outcome, resource_id, details FROM ${schema}.audit_events
        WHERE resource_id = $1 ORDER BY sequence`,
      { bind: [resourceId], type: QueryTypes.SELECT, transaction: null },
    );
  }

  function expectProblem(response: Response, status: number, code: string): void {
    expect(response.status, JSON.stringify(response.body)).to.equal(status);
    expect(response.headers.get('content-type') ?? '').to.match(/^application\/problem\+json/);
    expect(response.body.code, JSON.stringify(response.body)).to.equal(code);
  }

  describe('division tree', () => {
    it('when the path names the division in upper case, a move beneath its own descendant still answers 409 DIVISION_CYCLE', async () => {
      const organization = await post('/org/organizations', organizationBody('UPCASE'));
      const top = await division(organization, 'TOP');
      const middle = await division(organization, 'MID', top);
      const leaf = await division(organization, 'LEAF', middle);
      const path = `/org/divisions/${top.toUpperCase()}`;

      const moved = await h.call('PATCH', path, {
        body: { parentId: leaf },
        headers: { 'If-Match': await etagOf(path) },
      });

      expectProblem(moved, 409, 'DIVISION_CYCLE');
      expect((await h.call('GET', `/org/divisions/${top}`)).body.parentId).to.equal(null);
    });

    it('when three moves race to close a ring, the tree stays acyclic', async () => {
      const organization = await post('/org/organizations', organizationBody('RING'));
      const a = await division(organization, 'A');
      const b = await division(organization, 'B');
      const c = await division(organization, 'C');
      const tags = await Promise.all([a, b, c].map((id) => etagOf(`/org/divisions/${id}`)));

      const moves = await Promise.all(
        [
          [a, b],
          [b, c],
          [c, a],
        ].map(([id, parentId], i) =>
          h.call('PATCH', `/org/divisions/${id}`, {
            body: { parentId },
            headers: { 'If-Match': tags[i] ?? '' },
          }),
        ),
      );

      expect(moves.map((m) => m.status).sort()).to.deep.equal([200, 200, 409]);
      const list = await h.call('GET', `/org/organizations/${organization}/divisions`);
      const parents = new Map<string, string | null>(
        list.body.items.map((d: { id: string; parentId: string | null }) => [d.id, d.parentId]),
      );
      for (const start of [a, b, c]) {
        const seen = new Set<string>();
        let at: string | null | undefined = start;
        while (at) {
          expect(seen.has(at), 'a cycle').to.equal(false);
          seen.add(at);
          at = parents.get(at);
        }
      }
    });

    it('when a division moves beneath a division of another organization, it answers 404 for parentId', async () => {
      const other = await post('/org/organizations', organizationBody('OTHERORG'));
      const foreign = await division(other, 'FOREIGN');
      const path = `/org/divisions/${alphaTree.division}`;

      const moved = await h.call('PATCH', path, {
        body: { parentId: foreign },
        headers: { 'If-Match': await etagOf(path) },
      });

      expectProblem(moved, 404, 'NOT_FOUND');
      expect(moved.body.field).to.equal('parentId');
    });

    it("when tenant A names tenant B's organization while B changes its division tree, A is answered 404 at once, not held by B's lock", async () => {
      const organization = await post('/org/organizations', organizationBody('TREE-B'), h.bravo);
      const moved = await division(organization, 'B-MOVED', undefined, h.bravo);
      const parent = await division(organization, 'B-PARENT', undefined, h.bravo);
      const tag = await etagOf(`/org/divisions/${moved}`, h.bravo);
      const db = h.plane.db.sequelize;
      // B's move takes its tree's turn, then waits for its new parent, held here.
      const holder = await db.transaction();
      await db.query(`SELECT 1 FROM tenant_bravo.divisions WHERE id = $1 FOR UPDATE`, {
        bind: [parent],
        transaction: holder,
      });
      const moving = h.call('PATCH', `/org/divisions/${moved}`, {
        tenant: h.bravo,
        body: { parentId: parent },
        headers: { 'If-Match': tag },
      });
      await new Promise((resolve) => setTimeout(resolve, 300));

      const probe = h.call('POST', `/org/organizations/${organization}/divisions`, {
        body: { code: 'PROBE', name: 'Probe' },
      });
      const first = await Promise.race([
        probe,
        new Promise<'waiting'>((resolve) => setTimeout(() => resolve('waiting'), 2000)),
      ]);
      await holder.commit();

      expect(first).to.not.equal('waiting');
      expectProblem(await probe, 404, 'NOT_FOUND');
      expect((await moving).status).to.equal(200);
    });

    it('when a division of tenant A names a division or branch of tenant B, it answers 404 and changes nothing', async () => {
      const path = `/org/divisions/${alphaTree.division}`;
      const tag = await etagOf(path);

      const asParent = await h.call('PATCH', path, {
        body: { parentId: bravoTree.division },
        headers: { 'If-Match': tag },
      });
      const asBranch = await h.call('PATCH', path, {
        body: { branchId: bravoTree.branch },
        headers: { 'If-Match': tag },
      });
      const created = await h.call(
        'POST',
        `/org/organizations/${alphaTree.organization}/divisions`,
        {
          body: { code: 'XT', name: 'XT', parentId: bravoTree.division },
        },
      );

      expectProblem(asParent, 404, 'NOT_FOUND');
      expectProblem(asBranch, 404, 'NOT_FOUND');
      expectProblem(created, 404, 'NOT_FOUND');
      expect(await etagOf(path)).to.equal(tag);
    });

    it('when a parent with active children is archived, they follow; restoring a child first answers 409 PARENT_ARCHIVED; every change is audited', async () => {
      const organization = await post('/org/organizations', organizationBody('ARCH'));
      const top = await division(organization, 'TOP');
      const child = await division(organization, 'CHILD', top);

      const archived = await h.call('POST', `/org/divisions/${top}/archive`);
      const childFirst = await h.call('POST', `/org/divisions/${child}/restore`);
      const under = await h.call('POST', `/org/organizations/${organization}/divisions`, {
        body: { code: 'NEW', name: 'New', parentId: top },
      });
      const restored = await h.call('POST', `/org/divisions/${top}/restore`);

      expect(archived.status).to.equal(200);
      expect(archived.body.cascaded).to.deep.equal({ divisions: 1 });
      expectProblem(childFirst, 409, 'PARENT_ARCHIVED');
      expectProblem(under, 409, 'PARENT_ARCHIVED');
      expect(restored.body.cascaded).to.deep.equal({ divisions: 1 });
      expect((await h.call('GET', `/org/divisions/${child}`)).body.status).to.equal('active');
      const actions = (await audit('tenant_alpha', top)).map((r) => `${r.action}:${r.outcome}`);
      expect(actions).to.deep.equal([
        'division.created:success',
        'division.archived:success',
        'division.restored:success',
      ]);
    });
  });

  describe('archive races', () => {
    /** Active records beneath an archived one, read past RLS: there must never be any. */
    async function activeBeneathArchived(): Promise<unknown[]> {
      return h.plane.db.sequelize.query(
        `SELECT 'branch' AS kind, b.id FROM tenant_alpha.branches b
           JOIN tenant_alpha.organizations o ON o.id = b.organization_id
          WHERE b.status = 'active' AND o.status = 'archived'
         UNION ALL
         SELECT 'division', d.id FROM tenant_alpha.divisions d
           JOIN tenant_alpha.organizations o ON o.id = d.organization_id
           LEFT JOIN tenant_alpha.divisions p ON p.id = d.parent_id
          WHERE d.status = 'active' AND (o.status = 'archived' OR p.status = 'archived')
         UNION ALL
         SELECT 'project', p.id FROM tenant_alpha.projects p
           JOIN tenant_alpha.organizations o ON o.id = p.organization_id
          WHERE p.status <> 'archived' AND o.status = 'archived'
         UNION ALL
         SELECT 'site', s.id FROM tenant_alpha.sites s
           JOIN tenant_alpha.projects p ON p.id = s.project_id
          WHERE s.status = 'active' AND p.status = 'archived'`,
        { type: QueryTypes.SELECT, transaction: null },
      );
    }

    it('when an organization is archived while sites, divisions and moves are added beneath it, nothing active is left beneath it', async () => {
      for (let round = 0; round < 4; round++) {
        const organization = await post('/org/organizations', organizationBody(`AR${round}`));
        const project = await post(`/org/organizations/${organization}/projects`, {
          code: 'P',
          name: 'P',
        });
        const top = await division(organization, 'TOP');
        const loose = await division(organization, 'LOOSE');
        const looseTag = await etagOf(`/org/divisions/${loose}`);

        const answers = await Promise.all([
          h.call('POST', `/org/projects/${project}/sites`, { body: { code: 'S', name: 'S' } }),
          h.call('POST', `/org/organizations/${organization}/divisions`, {
            body: { code: 'UNDER', name: 'Under', parentId: top },
          }),
          h.call('PATCH', `/org/divisions/${loose}`, {
            body: { parentId: top },
            headers: { 'If-Match': looseTag },
          }),
          h.call('POST', `/org/organizations/${organization}/archive`),
        ]);

        for (const answer of answers) {
          expect(answer.status, JSON.stringify(answer.body)).to.be.oneOf([200, 201, 409, 412]);
        }
        expect(await activeBeneathArchived()).to.deep.equal([]);
        const restored = await h.call('POST', `/org/organizations/${organization}/restore`);
        expect(restored.status, JSON.stringify(restored.body)).to.equal(200);
        expect(await activeBeneathArchived()).to.deep.equal([]);
      }
    });

    it('when a site is created after an archive of its organization began, the archive still takes it', async () => {
      const organization = await post('/org/organizations', organizationBody('LATE'));
      const project = await post(`/org/organizations/${organization}/projects`, {
        code: 'P',
        name: 'P',
      });
      const db = h.plane.db.sequelize;
      // A share lock on the project holds the archive's cascade while a site commits after the
      // archive's transaction began.
      const holder = await db.transaction();
      await db.query(`SELECT 1 FROM tenant_alpha.projects WHERE id = $1 FOR SHARE`, {
        bind: [project],
        transaction: holder,
      });
      const archiving = h.call('POST', `/org/organizations/${organization}/archive`);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await db.query(
        `INSERT INTO tenant_alpha.sites (tenant_id, project_id, code, name)
         VALUES ($1, $2, 'LATE', 'Late site')`,
        { bind: [h.alpha.tenantId, project], transaction: null },
      );
      await holder.commit();

      const archived = await archiving;

      expect(archived.status, JSON.stringify(archived.body)).to.equal(200);
      expect(archived.body.cascaded).to.deep.equal({ projects: 1, sites: 1 });
    });

    it('when an organization is archived while a division moves beneath another, both succeed without a deadlock', async () => {
      const organization = await post('/org/organizations', organizationBody('DEADLOCK'));
      // Created first and first by code, so that the archive's cascade reaches it first.
      const loose = await division(organization, 'A-LOOSE');
      const top = await division(organization, 'B-TOP');
      const tag = await etagOf(`/org/divisions/${loose}`);
      const db = h.plane.db.sequelize;
      const pause = () => new Promise((resolve) => setTimeout(resolve, 300));
      // The new parent is held, so that the move waits for it before the archive starts.
      const holder = await db.transaction();
      await db.query(`SELECT 1 FROM tenant_alpha.divisions WHERE id = $1 FOR UPDATE`, {
        bind: [top],
        transaction: holder,
      });
      const moving = h.call('PATCH', `/org/divisions/${loose}`, {
        body: { parentId: top },
        headers: { 'If-Match': tag },
      });
      await pause();
      const archiving = h.call('POST', `/org/organizations/${organization}/archive`);
      await pause();
      await holder.commit();

      const [moved, archived] = await Promise.all([moving, archiving]);

      expect(moved.status, JSON.stringify(moved.body)).to.equal(200);
      expect(archived.status, JSON.stringify(archived.body)).to.equal(200);
      expect(archived.body.cascaded).to.deep.equal({ divisions: 2 });
    });

    it('when a branch is deleted while a division and a project name it, either the delete or the references lose', async () => {
      for (let round = 0; round < 4; round++) {
        const branch = await post(`/org/organizations/${alphaTree.organization}/branches`, {
          code: `DEL-${round}`,
          name: 'Doomed',
        });

        const [removed, divisionMade, projectMade] = await Promise.all([
          h.call('DELETE', `/org/branches/${branch}`),
          h.call('POST', `/org/organizations/${alphaTree.organization}/divisions`, {
            body: { code: `DREF-${round}`, name: 'Ref', branchId: branch },
          }),
          h.call('POST', `/org/organizations/${alphaTree.organization}/projects`, {
            body: { code: `PREF-${round}`, name: 'Ref', branchId: branch },
          }),
        ]);

        const made = [divisionMade, projectMade].filter((a) => a.status === 201).length;
        if (removed.status === 204) {
          expect(made).to.equal(0);
          for (const lost of [divisionMade, projectMade]) expectProblem(lost, 404, 'NOT_FOUND');
        } else {
          expectProblem(removed, 409, 'DEPENDENTS_EXIST');
          expect(made).to.be.greaterThan(0);
        }
      }
    });

    it('when a record of tenant B is patched with an If-Match by tenant A, it answers 404, not 412', async () => {
      const response = await h.call('PATCH', `/org/branches/${bravoTree.branch}`, {
        body: { name: 'Stolen' },
        headers: { 'If-Match': '"7"' },
      });

      expectProblem(response, 404, 'NOT_FOUND');
      expect(response.headers.get('etag')).to.equal(null);
    });

    it('when a branch is archived, nothing new may name it, but records that name it can still change and be restored', async () => {
      const branch = await post(`/org/organizations/${alphaTree.organization}/branches`, {
        code: 'ARCH-BR',
        name: 'Archived branch',
      });
      const tied = await post(`/org/organizations/${alphaTree.organization}/divisions`, {
        code: 'TIED',
        name: 'Tied',
        branchId: branch,
      });
      await h.call('POST', `/org/branches/${branch}/archive`);

      const named = await h.call('PATCH', `/org/divisions/${alphaTree.division}`, {
        body: { branchId: branch },
        headers: { 'If-Match': await etagOf(`/org/divisions/${alphaTree.division}`) },
      });
      const renamed = await h.call('PATCH', `/org/divisions/${tied}`, {
        body: { name: 'Still tied' },
        headers: { 'If-Match': await etagOf(`/org/divisions/${tied}`) },
      });
      const archived = await h.call('POST', `/org/divisions/${tied}/archive`);
      const restored = await h.call('POST', `/org/divisions/${tied}/restore`);
      const again = await h.call('POST', `/org/divisions/${tied}/restore`);

      expectProblem(named, 409, 'PARENT_ARCHIVED');
      expect(named.body.field).to.equal('branchId');
      expect([renamed.status, archived.status, restored.status]).to.deep.equal([200, 200, 200]);
      expectProblem(again, 409, 'NOT_ARCHIVED');
    });
  });

  describe('context headers', () => {
    it('when X-Project-ID is given in upper case with a site of that project, the site list answers 200', async () => {
      const listed = await h.call('GET', '/org/sites', {
        headers: {
          'X-Project-ID': alphaTree.project.toUpperCase(),
          'X-Site-ID': alphaTree.site,
        },
      });

      expect(listed.status, JSON.stringify(listed.body)).to.equal(200);
      expect(listed.body.items.map((s: { id: string }) => s.id)).to.deep.equal([alphaTree.site]);
    });

    it('when X-Project-ID names one project, a path naming another answers 404 and a filter naming it lists nothing', async () => {
      const other = await post(`/org/organizations/${alphaTree.organization}/projects`, {
        code: 'CTX-OTHER',
        name: 'Other',
      });
      await post(`/org/projects/${other}/sites`, { code: 'CTX-SITE', name: 'Other site' });

      const byPath = await h.call('GET', `/org/projects/${other}/sites`, {
        headers: { 'X-Project-ID': alphaTree.project },
      });
      const byFilter = await h.call('GET', `/org/sites?projectId=${other}`, {
        headers: { 'X-Project-ID': alphaTree.project },
      });

      expectProblem(byPath, 404, 'NOT_FOUND');
      expect(byFilter.status).to.equal(200);
      expect(byFilter.body.items).to.deep.equal([]);
    });

    it('when X-Project-ID names one project, records of another project cannot be read, changed or created', async () => {
      const other = await post(`/org/organizations/${alphaTree.organization}/projects`, {
        code: 'CTX-NARROW',
        name: 'Outside',
      });
      const headers = { 'X-Project-ID': alphaTree.project };

      const read = await h.call('GET', `/org/projects/${other}`, { headers });
      const changed = await h.call('PATCH', `/org/projects/${other}`, {
        body: { name: 'Changed from outside' },
        headers: { ...headers, 'If-Match': '"0"' },
      });
      const created = await h.call('POST', `/org/projects/${other}/sites`, {
        body: { code: 'OUT', name: 'Outside site' },
        headers,
      });

      expectProblem(read, 404, 'NOT_FOUND');
      expectProblem(changed, 404, 'NOT_FOUND');
      expectProblem(created, 404, 'NOT_FOUND');
    });

    it('when X-Site-ID names a site of another project than X-Project-ID, or of tenant B, it answers 404', async () => {
      const other = await post(`/org/organizations/${alphaTree.organization}/projects`, {
        code: 'CTX-THIRD',
        name: 'Third',
      });

      const mixed = await h.call('GET', '/org/sites', {
        headers: { 'X-Project-ID': other, 'X-Site-ID': alphaTree.site },
      });
      const foreign = await h.call('GET', '/org/sites', {
        headers: { 'X-Site-ID': bravoTree.site },
      });

      expectProblem(mixed, 404, 'NOT_FOUND');
      expectProblem(foreign, 404, 'NOT_FOUND');
    });

    it('when X-Site-ID alone names a site, other projects are outside the context: not read, listed, changed or added to', async () => {
      const other = await post(`/org/organizations/${alphaTree.organization}/projects`, {
        code: 'CTX-SITE-ONLY',
        name: 'Beside the site',
      });
      const headers = { 'X-Site-ID': alphaTree.site.toUpperCase() };

      const read = await h.call('GET', `/org/projects/${other}`, { headers });
      const listed = await h.call('GET', '/org/projects', { headers });
      const changed = await h.call('PATCH', `/org/projects/${other}`, {
        body: { name: 'Changed from a site' },
        headers: { ...headers, 'If-Match': '"0"' },
      });
      const added = await h.call('POST', `/org/projects/${other}/sites`, {
        body: { code: 'FROM-SITE', name: 'Added from a site' },
        headers,
      });
      const own = await h.call('GET', `/org/projects/${alphaTree.project}`, { headers });

      expectProblem(read, 404, 'NOT_FOUND');
      expect(listed.status, JSON.stringify(listed.body)).to.equal(200);
      expect(listed.body.items.map((p: { id: string }) => p.id)).to.deep.equal([alphaTree.project]);
      expectProblem(changed, 404, 'NOT_FOUND');
      expectProblem(added, 404, 'NOT_FOUND');
      expect((await h.call('GET', `/org/sites?projectId=${other}`)).body.items).to.deep.equal([]);
      expect(own.status, JSON.stringify(own.body)).to.equal(200);
    });

    const malformed: [string, [string, string][]][] = [
      [
        'a repeated X-Project-ID',
        [
          ['X-Project-ID', '00000000-0000-4000-8000-000000000001'],
          ['X-Project-ID', '00000000-0000-4000-8000-000000000001'],
        ],
      ],
      ['an X-Project-ID that is not a uuid', [['X-Project-ID', "1' OR '1'='1"]]],
      ['an empty X-Site-ID', [['X-Site-ID', '']]],
      ['a 4000-character X-Project-ID', [['X-Project-ID', 'a'.repeat(4000)]]],
    ];
    for (const [what, headers] of malformed) {
      it(`when a request has ${what}, it answers 400 VALIDATION_FAILED`, async () => {
        const response = await raw('GET', '/org/projects', headers);

        expectProblem(response, 400, 'VALIDATION_FAILED');
        expect(response.body.errors[0].in).to.equal('header');
      });
    }

    it('when a header is larger than the server takes, it answers 431 problem+json', async () => {
      const response = await raw('GET', '/org/projects', [['X-Project-ID', 'a'.repeat(20_000)]]);

      expect(response.status).to.equal(431);
      expect(response.contentType).to.match(/^application\/problem\+json/);
      expect(response.body.code).to.equal('HEADERS_TOO_LARGE');
    });

    it('when the request is not HTTP at all, it answers 400 problem+json', async () => {
      const url = new URL(h.service.url);
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = connect(Number(url.port), url.hostname, () => {
          socket.end('GARBAGE \u0001 /org/projects\r\n\r\n');
        });
        const chunks: Buffer[] = [];
        socket.on('data', (chunk: Buffer) => chunks.push(chunk));
        socket.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        socket.on('error', reject);
      });

      expect(answer).to.match(/^HTTP\/1\.1 400 /);
      expect(answer).to.match(/content-type: application\/problem\+json/i);
      expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)).code).to.equal(
        'MALFORMED_REQUEST',
      );
    });

    it('when X-Tenant-ID is repeated, it answers 403 TENANT_MISMATCH', async () => {
      const response = await raw('GET', '/org/projects', [['X-Tenant-ID', 'alpha']]);

      expectProblem(response, 403, 'TENANT_MISMATCH');
    });
  });

  describe('paths', () => {
    for (const path of [
      '/org/organizations/%E0%A4%A',
      '/org/organizations/%ZZ/branches',
      '/org/divisions/%/archive',
    ]) {
      it(`when the path ${path} has a broken percent-encoding, it answers 400 problem+json`, async () => {
        const response = await raw('GET', path, []);

        expect(response.status, JSON.stringify(response.body)).to.equal(400);
        expect(response.contentType).to.match(/^application\/problem\+json/);
        expect(response.body.code).to.equal('VALIDATION_FAILED');
      });
    }
  });

  describe('optimistic concurrency', () => {
    for (const [what, value] of [
      ['a weak ETag', 'W/"0"'],
      ['*', '*'],
      ['an unquoted version', '0'],
      ['a list of ETags', '"0", "1"'],
      ['a negative version', '"-1"'],
      ['a ten-digit version', '"1234567890"'],
    ]) {
      it(`when If-Match is ${what}, PATCH answers 400 and changes nothing`, async () => {
        const path = `/org/branches/${alphaTree.branch}`;
        const before = await etagOf(path);

        const response = await h.call('PATCH', path, {
          body: { name: 'Changed' },
          headers: { 'If-Match': value as string },
        });

        expectProblem(response, 400, 'VALIDATION_FAILED');
        expect(await etagOf(path)).to.equal(before);
      });
    }

    it('when two moves of one division arrive with the same ETag, exactly one wins and one record is audited', async () => {
      const organization = await post('/org/organizations', organizationBody('TWOMOVE'));
      const moving = await division(organization, 'MOVING');
      const p1 = await division(organization, 'P1');
      const p2 = await division(organization, 'P2');
      const tag = await etagOf(`/org/divisions/${moving}`);

      const answers = await Promise.all(
        [p1, p2].map((parentId) =>
          h.call('PATCH', `/org/divisions/${moving}`, {
            body: { parentId },
            headers: { 'If-Match': tag },
          }),
        ),
      );

      expect(answers.map((a) => a.status).sort()).to.deep.equal([200, 412]);
      const lost = answers.find((a) => a.status === 412);
      expect(lost?.body.code).to.equal('PRECONDITION_FAILED');
      expect(lost?.headers.get('etag')).to.equal('"1"');
      const updates = (await audit('tenant_alpha', moving)).filter(
        (r) => r.action === 'division.updated',
      );
      expect(updates).to.have.length(1);
    });

    it('when archive races a PATCH on the same ETag, exactly one of them wins', async () => {
      const id = await post(`/org/organizations/${alphaTree.organization}/branches`, {
        code: 'RACE-BR',
        name: 'Race',
      });
      const tag = await etagOf(`/org/branches/${id}`);

      const [patched, archived] = await Promise.all([
        h.call('PATCH', `/org/branches/${id}`, {
          body: { name: 'Patched' },
          headers: { 'If-Match': tag },
        }),
        h.call('POST', `/org/branches/${id}/archive`, { headers: { 'If-Match': tag } }),
      ]);

      expect([patched.status, archived.status].sort()).to.deep.equal([200, 412]);
      expect((await h.call('GET', `/org/branches/${id}`)).body.version).to.equal(1);
    });
  });

  describe('idempotency keys', () => {
    it('when concurrent creates share a key with different bodies, one creates and the others answer 422', async () => {
      const headers = { 'Idempotency-Key': 'race-different-bodies' };
      const answers = await Promise.all(
        ['RB1', 'RB2', 'RB3'].map((code) =>
          h.call('POST', '/org/organizations', { body: organizationBody(code), headers }),
        ),
      );

      expect(answers.map((a) => a.status).sort()).to.deep.equal([201, 422, 422]);
      for (const lost of answers.filter((a) => a.status === 422)) {
        expectProblem(lost, 422, 'IDEMPOTENCY_KEY_REUSED');
      }
      const codes = await Promise.all(
        ['RB1', 'RB2', 'RB3'].map(
          async (code): Promise<number> =>
            (await h.call('GET', `/org/organizations?code=${code}`)).body.items.length as number,
        ),
      );
      expect(codes.reduce((a: number, b: number) => a + b, 0)).to.equal(1);
    });

    it("when tenant B uses tenant A's key, it creates its own record", async () => {
      const headers = { 'Idempotency-Key': 'shared-between-tenants' };
      const first = await h.call('POST', '/org/organizations', {
        body: organizationBody('SHARED'),
        headers,
      });
      const second = await h.call('POST', '/org/organizations', {
        body: organizationBody('SHARED'),
        headers,
        tenant: h.bravo,
      });

      expect([first.status, second.status]).to.deep.equal([201, 201]);
      expect(second.body.id).to.not.equal(first.body.id);
      expect(second.headers.get('idempotent-replayed')).to.equal(null);
    });

    it('when a keyed create is retried with X-Project-ID naming another project, it answers 422 instead of replaying a site outside the context', async () => {
      const other = await post(`/org/organizations/${alphaTree.organization}/projects`, {
        code: 'KEY-CTX',
        name: 'Other context',
      });
      const path = `/org/projects/${alphaTree.project}/sites`;
      const body = { code: 'KEY-CTX-SITE', name: 'Keyed site' };
      const key = { 'Idempotency-Key': 'retried-in-another-context' };

      const first = await h.call('POST', path, { body, headers: key });
      const narrowed = await h.call('POST', path, {
        body,
        headers: { ...key, 'X-Project-ID': other },
      });
      const bySite = await h.call('POST', path, {
        body,
        headers: { ...key, 'X-Site-ID': alphaTree.site },
      });
      const again = await h.call('POST', path, { body, headers: key });

      expect(first.status, JSON.stringify(first.body)).to.equal(201);
      expectProblem(narrowed, 422, 'IDEMPOTENCY_KEY_REUSED');
      expect(JSON.stringify(narrowed.body)).to.not.include(first.body.id);
      expectProblem(bySite, 422, 'IDEMPOTENCY_KEY_REUSED');
      expect(again.status).to.equal(201);
      expect(again.headers.get('idempotent-replayed')).to.equal('true');
      expect(again.body.id).to.equal(first.body.id);
    });

    it('when a key is used on another route of the same tenant, it answers 422', async () => {
      const headers = { 'Idempotency-Key': 'cross-route' };
      const body = { code: 'XR', name: 'Cross route' };
      const first = await h.call('POST', `/org/organizations/${alphaTree.organization}/branches`, {
        body,
        headers,
      });
      const second = await h.call(
        'POST',
        `/org/organizations/${alphaTree.organization}/divisions`,
        {
          body,
          headers,
        },
      );

      expect(first.status).to.equal(201);
      expectProblem(second, 422, 'IDEMPOTENCY_KEY_REUSED');
    });

    for (const [what, key] of [
      ['201 characters long', 'k'.repeat(201)],
      ['holding a space', 'a b'],
      ['holding non-ASCII', 'clé'],
    ]) {
      it(`when the key is ${what}, it answers 400 and creates nothing`, async () => {
        const response = await raw(
          'POST',
          '/org/organizations',
          [['Idempotency-Key', key as string]],
          JSON.stringify(organizationBody('BADKEY')),
        );

        expectProblem(response, 400, 'VALIDATION_FAILED');
        const list = await h.call('GET', '/org/organizations?code=BADKEY');
        expect(list.body.items).to.have.length(0);
      });
    }

    it('when a keyed create fails, its retry with a fixed body runs again', async () => {
      const headers = { 'Idempotency-Key': 'failed-then-fixed' };
      const failed = await h.call('POST', `/org/organizations/${alphaTree.organization}/projects`, {
        body: { code: 'FAILED', name: 'P', branchId: bravoTree.branch },
        headers,
      });
      const fixed = await h.call('POST', `/org/organizations/${alphaTree.organization}/projects`, {
        body: { code: 'FAILED', name: 'P', branchId: alphaTree.branch },
        headers,
      });

      expectProblem(failed, 404, 'NOT_FOUND');
      expect(fixed.status, JSON.stringify(fixed.body)).to.equal(201);
      expect(fixed.headers.get('idempotent-replayed')).to.equal(null);
    });
  });

  describe('cursors and limits', () => {
    const cursor = (parts: unknown): string =>
      Buffer.from(JSON.stringify(parts)).toString('base64url');
    const id = '00000000-0000-4000-8000-000000000000';
    const forged: [string, string][] = [
      ['a timestamp with month 13', cursor(['createdAt', '2026-13-01T00:00:00.000000Z', id])],
      ['a timestamp of year 0', cursor(['createdAt', '0000-01-01T00:00:00.000000Z', id])],
      ['a text value holding NUL', cursor(['code', 'A\u0000B', id])],
      ['a truncated cursor', cursor(['code', 'ABC', id]).slice(0, 20)],
      ['a cursor whose id is not a uuid', cursor(['code', 'ABC', "x' OR 1=1 --"])],
      ['a cursor of another shape', cursor({ sort: 'code', value: 'A', id })],
      ['a cursor of a sort not allowed', cursor(['legal_name', 'A', id])],
      ['a cursor of __proto__', cursor(['__proto__', 'A', id])],
    ];
    for (const [what, text] of forged) {
      const sort = text.length > 0 && what.includes('timestamp') ? 'createdAt' : 'code';
      it(`when the cursor is ${what}, it answers 400 invalid_cursor`, async () => {
        const response = await h.call(
          'GET',
          `/org/organizations?sort=${sort}&cursor=${encodeURIComponent(text)}`,
        );

        expectProblem(response, 400, 'VALIDATION_FAILED');
        expect(response.body.errors).to.deep.equal([
          {
            in: 'query',
            field: 'cursor',
            code: 'invalid_cursor',
            message: 'is not a cursor of this list; pass nextCursor of a page with the same sort',
          },
        ]);
      });
    }

    it('when a cursor of an ascending sort is used with the descending one, it answers 400 for the cursor', async () => {
      await post('/org/organizations', organizationBody('FLIP1'));
      await post('/org/organizations', organizationBody('FLIP2'));
      const page = await h.call('GET', '/org/organizations?limit=1&sort=code');
      expect(page.body.nextCursor).to.be.a('string');

      const flipped = await h.call(
        'GET',
        `/org/organizations?sort=-code&cursor=${page.body.nextCursor as string}`,
      );

      expectProblem(flipped, 400, 'VALIDATION_FAILED');
      expect(flipped.body.errors[0].field).to.equal('cursor');
    });

    it("when tenant B's cursor is used by tenant A, it pages A's rows only", async () => {
      await post('/org/organizations', organizationBody('BCUR1'), h.bravo);
      const page = await h.call('GET', '/org/organizations?limit=1', { tenant: h.bravo });
      expect(page.body.nextCursor).to.be.a('string');

      const replayed = await h.call(
        'GET',
        `/org/organizations?limit=100&cursor=${page.body.nextCursor as string}`,
      );

      expect(replayed.status).to.equal(200);
      const tenantsOf = await h.call('GET', '/org/organizations?limit=100', { tenant: h.bravo });
      const bravoIds = new Set(tenantsOf.body.items.map((o: { id: string }) => o.id));
      for (const item of replayed.body.items) expect(bravoIds.has(item.id)).to.equal(false);
    });

    for (const limit of ['0', '-1', '101', '1e2', 'abc', '', '99999999999999999999', '1.5']) {
      it(`when limit is ${JSON.stringify(limit)}, it answers 400 for limit`, async () => {
        const response = await h.call('GET', `/org/organizations?limit=${limit}`);

        expectProblem(response, 400, 'VALIDATION_FAILED');
        expect(response.body.errors.map((e: { field: string }) => e.field)).to.deep.equal([
          'limit',
        ]);
      });
    }

    for (const sort of ['legal_name', 'id', '--code', 'code;DROP TABLE x', '__proto__']) {
      it(`when sort is ${JSON.stringify(sort)}, it answers 400 for sort`, async () => {
        const response = await h.call('GET', `/org/organizations?sort=${encodeURIComponent(sort)}`);

        expectProblem(response, 400, 'VALIDATION_FAILED');
      });
    }

    it('when a query parameter is named __proto__ or repeated, it answers 400', async () => {
      const proto = await h.call('GET', '/org/organizations?__proto__=x');
      const repeated = await h.call('GET', '/org/organizations?limit=1&limit=2');

      expectProblem(proto, 400, 'VALIDATION_FAILED');
      expectProblem(repeated, 400, 'VALIDATION_FAILED');
    });
  });

  describe('the audit API', () => {
    const hostile = [
      'from=not-a-date',
      'from=0000-01-01T00:00:00Z',
      'from=2026-02-30T00:00:00Z',
      'to=294277-01-01T00:00:00Z',
      'from=2026-01-01T00:00:00%2B99:00',
      'limit=0',
      'limit=100000000000000000000',
      'cursor=%00',
      'cursor=' + 'A'.repeat(2000),
      'cursor=-1',
      'cursor=9223372036854775808',
      'actor=' + encodeURIComponent('a\u0000b'),
      'resourceType=a%00',
      'resourceId=%00',
      'resourceId=' + 'x'.repeat(5000),
      'outcome=exploded',
      'action=a&action=b',
      '__proto__=1',
    ];
    for (const query of hostile) {
      it(`when /audit/events is asked ${query.slice(0, 60)}, it answers 400 problem+json`, async () => {
        const response = await h.call('GET', `/audit/events?${query}`);

        expect(response.status, JSON.stringify(response.body)).to.equal(400);
        expect(response.headers.get('content-type') ?? '').to.match(/^application\/problem\+json/);
      });
    }
  });

  describe('bodies', () => {
    it('when the body is nested 50,000 levels deep, it answers 4xx problem+json', async () => {
      const deep = `{"code":"DEEP","name":"n","address":${'['.repeat(50_000)}${']'.repeat(50_000)}}`;

      const response = await raw(
        'POST',
        `/org/organizations/${alphaTree.organization}/branches`,
        [],
        deep,
      );

      expect(response.status).to.be.within(400, 499);
      expect(response.contentType).to.match(/^application\/problem\+json/);
    });

    it('when the body is larger than the limit, it answers 413 PAYLOAD_TOO_LARGE', async () => {
      const response = await h.call('POST', '/org/organizations', {
        body: organizationBody('HUGE', { legalName: 'x'.repeat(2_000_000) }),
      });

      expectProblem(response, 413, 'PAYLOAD_TOO_LARGE');
    });

    for (const [what, headers, body, status, code] of [
      ['a gzip bomb', [['Content-Encoding', 'gzip']], 'bomb', 413, 'PAYLOAD_TOO_LARGE'],
      ['an unknown encoding', [['Content-Encoding', 'x-zip']], '{}', 415, 'UNSUPPORTED_MEDIA_TYPE'],
      ['a JSON string', [], '"branch"', 400, 'MALFORMED_JSON'],
      ['a truncated JSON object', [], '{"code":"X","name":', 400, 'MALFORMED_JSON'],
    ] as [string, [string, string][], string, number, string][]) {
      it(`when the body is ${what}, it answers ${status} ${code}`, async () => {
        const payload =
          body === 'bomb'
            ? gzipSync(Buffer.from(`{"code":"BOMB","name":"${' '.repeat(5_000_000)}x"}`))
            : body;

        const response = await rawBytes(
          'POST',
          `/org/organizations/${alphaTree.organization}/branches`,
          [['Content-Type', 'application/json'], ...headers],
          payload,
        );

        expectProblem(response, status, code);
      });
    }

    it('when the body is sent as text/plain or as Latin-1 JSON, it answers 415 UNSUPPORTED_MEDIA_TYPE', async () => {
      const body = JSON.stringify({ code: 'TEXT', name: 'n' });
      const path = `/org/organizations/${alphaTree.organization}/branches`;

      const text = await rawBytes('POST', path, [['Content-Type', 'text/plain']], body);
      const latin1 = await rawBytes(
        'POST',
        path,
        [['Content-Type', 'application/json; charset=latin1']],
        Buffer.from(body, 'latin1'),
      );

      expectProblem(text, 415, 'UNSUPPORTED_MEDIA_TYPE');
      expectProblem(latin1, 415, 'UNSUPPORTED_MEDIA_TYPE');
    });

    it('when the body has __proto__ or constructor keys, it answers 400 naming them and creates nothing', async () => {
      const body = `{"code":"PROTO","name":"n","__proto__":{"status":"archived"},"constructor":1}`;

      const response = await raw(
        'POST',
        `/org/organizations/${alphaTree.organization}/branches`,
        [],
        body,
      );

      expectProblem(response, 400, 'VALIDATION_FAILED');
      expect(response.body.errors.map((e: { field: string }) => e.field).sort()).to.deep.equal([
        '__proto__',
        'constructor',
      ]);
    });

    it('when a name holds a lone surrogate, it answers 400 for that field instead of storing a replacement character', async () => {
      const response = await raw(
        'POST',
        `/org/organizations/${alphaTree.organization}/branches`,
        [],
        '{"code":"SURR","name":"bad \\ud800 name"}',
      );

      expectProblem(response, 400, 'VALIDATION_FAILED');
      expect(response.body.errors.map((e: { field: string }) => e.field)).to.deep.equal(['name']);
    });

    it('when a project date is year 0, it answers 400 naming the field', async () => {
      const response = await h.call(
        'POST',
        `/org/organizations/${alphaTree.organization}/projects`,
        {
          body: { code: 'YEAR0', name: 'Year zero', startDate: '0000-01-01' },
        },
      );

      expectProblem(response, 400, 'VALIDATION_FAILED');
      expect(response.body.errors.map((e: { field: string }) => e.field)).to.deep.equal([
        'startDate',
      ]);
    });

    for (const [what, body] of [
      ['a NUL in a name', { code: 'NUL', name: 'a\u0000b' }],
      ['a code with a trailing newline', { code: 'CODE\n', name: 'n' }],
      ['a code in full-width letters', { code: 'ＡＢＣ', name: 'n' }],
      ['a code with a combining accent', { code: 'E\u0301', name: 'n' }],
      ['a name of only spaces and tabs', { code: 'SPACE', name: ' \t \u3000' }],
      ['a name of 201 characters', { code: 'LONG', name: 'x'.repeat(201) }],
      ['an organizationId in the body', { code: 'ORGID', name: 'n', organizationId: bravoId() }],
      ['a status in the body', { code: 'STAT', name: 'n', status: 'archived' }],
      ['an array body', [{ code: 'ARR', name: 'n' }]],
      ['a phone as a number', { code: 'PHONE', name: 'n', phone: 12345 }],
    ] as [string, unknown][]) {
      it(`when a branch body has ${what}, it answers 400 and creates nothing`, async () => {
        const count = async (): Promise<number> =>
          (await h.call('GET', `/org/organizations/${alphaTree.organization}/branches?limit=100`))
            .body.items.length as number;
        const before = await count();
        const response = await h.call(
          'POST',
          `/org/organizations/${alphaTree.organization}/branches`,
          { body },
        );

        expectProblem(response, 400, 'VALIDATION_FAILED');
        expect(await count()).to.equal(before);
      });
    }

    it('when a time zone arrives in thousands of letter cases, the cache of checked zones grows by one', () => {
      const zone = 'America/Argentina/ComodRivadavia';
      const before = knownTimeZoneCount();
      for (let variant = 0; variant < 2000; variant++) {
        const spelled = [...zone]
          .map((c, i) => ((variant >> (i % 11)) & 1 ? c.toUpperCase() : c.toLowerCase()))
          .join('');
        expect(timeZone.safeParse(spelled).success).to.equal(true);
      }

      expect(knownTimeZoneCount() - before).to.be.at.most(1);
    });

    it('when a unicode name is stored, it comes back exactly as sent', async () => {
      const name = 'শাখা 𝔘𝔫𝔦 \u200d👩‍👩‍👧 ﷽';
      const id = await post(`/org/organizations/${alphaTree.organization}/branches`, {
        code: 'UNI',
        name,
      });

      expect((await h.call('GET', `/org/branches/${id}`)).body.name).to.equal(name);
      const found = await h.call('GET', `/org/branches?name=${encodeURIComponent('𝔘𝔫𝔦')}`);
      expect(found.body.items.map((b: { id: string }) => b.id)).to.deep.equal([id]);
    });
  });

  function bravoId(): string {
    return '00000000-0000-4000-8000-00000000000b';
  }
});
