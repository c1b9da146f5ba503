/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-call --
   response bodies are untyped JSON, and the assertions are what check their shape. */
import { expect } from 'chai';
import { MAX_DIVISION_DEPTH } from '../src/index.js';
import { createTree, organizationBody, startHarness, type Harness, type Tree } from './support.js';

describe('organization service: hierarchy, archive and delete', function () {
  this.timeout(60_000);
  let h: Harness;

  before(async () => {
    h = await startHarness('org_hierarchy');
  });
  after(async () => {
    await h?.close();
  });

  async function post(path: string, body: unknown): Promise<string> {
    const response = await h.call('POST', path, { body });
    expect(response.status, JSON.stringify(response.body)).to.equal(201);
    return response.body.id as string;
  }

  async function division(organization: string, code: string, parentId?: string): Promise<string> {
    return post(`/org/organizations/${organization}/divisions`, { code, name: code, parentId });
  }

  async function parentsOf(organization: string): Promise<Record<string, string | null>> {
    const list = await h.call('GET', `/org/organizations/${organization}/divisions?limit=100`);
    return Object.fromEntries(
      list.body.items.map((d: { code: string; parentId: string | null }) => [d.code, d.parentId]),
    );
  }

  async function move(id: string, parentId: string | null) {
    const current = await h.call('GET', `/org/divisions/${id}`);
    return h.call('PATCH', `/org/divisions/${id}`, {
      body: { parentId },
      headers: { 'If-Match': current.headers.get('etag') ?? '' },
    });
  }

  it('when a division would move beneath its own descendant, it answers 409 and the tree is unchanged', async () => {
    const organization = await post('/org/organizations', organizationBody('CYCLE'));
    const top = await division(organization, 'TOP');
    const middle = await division(organization, 'MID', top);
    const leaf = await division(organization, 'LEAF', middle);
    const before = await parentsOf(organization);

    const intoLeaf = await move(top, leaf);
    const intoItself = await move(top, top);

    expect(intoLeaf.status).to.equal(409);
    expect(intoLeaf.body.code).to.equal('DIVISION_CYCLE');
    expect(intoItself.body.code).to.equal('DIVISION_CYCLE');
    expect(await parentsOf(organization)).to.deep.equal(before);
  });

  it('when a division moves beneath another branch of the tree, it answers 200 and its subtree follows', async () => {
    const organization = await post('/org/organizations', organizationBody('MOVE'));
    const a = await division(organization, 'A');
    const b = await division(organization, 'B');
    const a1 = await division(organization, 'A1', a);

    const moved = await move(a, b);

    expect(moved.status).to.equal(200);
    expect(moved.body.parentId).to.equal(b);
    expect((await parentsOf(organization)).A1).to.equal(a);
    const back = await move(a, null);
    expect(back.body.parentId).to.equal(null);
    expect(a1).to.be.a('string');
  });

  it(`when the tree would grow deeper than ${MAX_DIVISION_DEPTH} levels, it answers 409`, async () => {
    const organization = await post('/org/organizations', organizationBody('DEEP'));
    let parent: string | undefined;
    for (let level = 1; level <= MAX_DIVISION_DEPTH; level++) {
      parent = await division(organization, `L${level}`, parent);
    }
    const other = await division(organization, 'OTHER');
    await division(organization, 'OTHER-CHILD', other);

    const tooDeep = await h.call('POST', `/org/organizations/${organization}/divisions`, {
      body: { code: 'L9', name: 'L9', parentId: parent },
    });
    const subtreeTooDeep = await move(other, parent as string);

    expect(tooDeep.status).to.equal(409);
    expect(tooDeep.body.code).to.equal('DIVISION_TOO_DEEP');
    expect(subtreeTooDeep.body.code).to.equal('DIVISION_TOO_DEEP');
  });

  it('when two moves would together build a cycle, at most one succeeds', async () => {
    const organization = await post('/org/organizations', organizationBody('RACE'));
    const x = await division(organization, 'X');
    const y = await division(organization, 'Y');

    const [first, second] = await Promise.all([move(x, y), move(y, x)]);

    expect([first.status, second.status].sort()).to.deep.equal([200, 409]);
    const parents = await parentsOf(organization);
    expect(parents.X === y && parents.Y === x).to.equal(false);
  });

  it('when an organization is archived, its branches, divisions, projects and sites are archived; restore brings back exactly those', async () => {
    const tree: Tree = await createTree(h, h.alpha, 'ARC');
    const earlier = await post(`/org/projects/${tree.project}/sites`, { code: 'OLD', name: 'Old' });
    await h.call('POST', `/org/sites/${earlier}/archive`);

    const archived = await h.call('POST', `/org/organizations/${tree.organization}/archive`);

    expect(archived.status).to.equal(200);
    expect(archived.body.item.status).to.equal('archived');
    expect(archived.body.cascaded).to.deep.equal({
      branches: 1,
      divisions: 1,
      projects: 1,
      sites: 1,
    });
    for (const [path, id] of [
      ['branches', tree.branch],
      ['divisions', tree.division],
      ['projects', tree.project],
      ['sites', tree.site],
    ]) {
      expect((await h.call('GET', `/org/${path}/${id}`)).body.status).to.equal('archived');
    }
    const childRestore = await h.call('POST', `/org/projects/${tree.project}/restore`);
    expect(childRestore.status).to.equal(409);
    expect(childRestore.body.code).to.equal('PARENT_ARCHIVED');
    const underArchived = await h.call('POST', `/org/projects/${tree.project}/sites`, {
      body: { code: 'NEW', name: 'New' },
    });
    expect(underArchived.body.code).to.equal('PARENT_ARCHIVED');

    const restored = await h.call('POST', `/org/organizations/${tree.organization}/restore`);

    expect(restored.status).to.equal(200);
    expect(restored.body.cascaded).to.deep.equal({
      branches: 1,
      divisions: 1,
      projects: 1,
      sites: 1,
    });
    const project = await h.call('GET', `/org/projects/${tree.project}`);
    expect(project.body.status).to.equal('planned');
    expect((await h.call('GET', `/org/sites/${tree.site}`)).body.status).to.equal('active');
    expect((await h.call('GET', `/org/sites/${earlier}`)).body.status).to.equal('archived');
  });

  it('when a project with an active lifecycle is archived and restored, it returns to that lifecycle', async () => {
    const tree = await createTree(h, h.alpha, 'LIFE');
    const read = await h.call('GET', `/org/projects/${tree.project}`);
    await h.call('PATCH', `/org/projects/${tree.project}`, {
      body: { status: 'on_hold' },
      headers: { 'If-Match': read.headers.get('etag') ?? '' },
    });

    await h.call('POST', `/org/projects/${tree.project}/archive`);
    const again = await h.call('POST', `/org/projects/${tree.project}/archive`);
    const restored = await h.call('POST', `/org/projects/${tree.project}/restore`);
    const twice = await h.call('POST', `/org/projects/${tree.project}/restore`);

    expect(again.body.code).to.equal('ALREADY_ARCHIVED');
    expect(restored.body.item.status).to.equal('on_hold');
    expect(restored.body.cascaded).to.deep.equal({ sites: 1 });
    expect(twice.body.code).to.equal('NOT_ARCHIVED');
  });

  it('when an archived record is patched, it answers 409 ARCHIVED', async () => {
    const tree = await createTree(h, h.alpha, 'FROZEN');
    const archived = await h.call('POST', `/org/sites/${tree.site}/archive`);

    const patched = await h.call('PATCH', `/org/sites/${tree.site}`, {
      body: { name: 'Changed' },
      headers: { 'If-Match': archived.headers.get('etag') ?? '' },
    });

    expect(patched.status).to.equal(409);
    expect(patched.body.code).to.equal('ARCHIVED');
  });

  it('when something depends on a record, delete answers 409 naming the dependents; once they are gone it answers 204', async () => {
    const tree = await createTree(h, h.alpha, 'DEL');

    const refused = await h.call('DELETE', `/org/organizations/${tree.organization}`);
    const branchRefused = await h.call('DELETE', `/org/branches/${tree.branch}`);

    expect(refused.status).to.equal(409);
    expect(refused.body.code).to.equal('DEPENDENTS_EXIST');
    expect(refused.body.dependents).to.deep.equal({ branches: 1, divisions: 1, projects: 1 });
    expect(branchRefused.body.dependents).to.deep.equal({ divisions: 1, projects: 1 });
    for (const path of [
      `/org/sites/${tree.site}`,
      `/org/projects/${tree.project}`,
      `/org/divisions/${tree.division}`,
      `/org/branches/${tree.branch}`,
      `/org/organizations/${tree.organization}`,
    ]) {
      expect((await h.call('DELETE', path)).status, path).to.equal(204);
    }
    expect((await h.call('GET', `/org/organizations/${tree.organization}`)).status).to.equal(404);
  });

  it("when X-Project-ID is given, the site list holds only that project's sites", async () => {
    const first = await createTree(h, h.alpha, 'CTXA');
    const second = await createTree(h, h.alpha, 'CTXB');

    const scoped = await h.call('GET', '/org/sites', {
      headers: { 'X-Project-ID': first.project },
    });
    const bySite = await h.call('GET', '/org/sites', { headers: { 'X-Site-ID': second.site } });
    const mismatch = await h.call('GET', '/org/sites', {
      headers: { 'X-Project-ID': first.project, 'X-Site-ID': second.site },
    });

    expect(scoped.body.items.map((s: { id: string }) => s.id)).to.deep.equal([first.site]);
    expect(bySite.body.items.map((s: { id: string }) => s.id)).to.deep.equal([second.site]);
    expect(mismatch.status).to.equal(404);
  });

  it('when a division names a branch of another organization of the tenant, it answers 404 for that field', async () => {
    const one = await createTree(h, h.alpha, 'ONE');
    const two = await createTree(h, h.alpha, 'TWO');

    const response = await h.call('POST', `/org/organizations/${one.organization}/divisions`, {
      body: { code: 'CROSS', name: 'Cross', branchId: two.branch },
    });

    expect(response.status).to.equal(404);
    expect(response.body.field).to.equal('branchId');
  });
});
