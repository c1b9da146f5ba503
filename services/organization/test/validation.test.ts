/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-argument --
   response bodies are untyped JSON, and the assertions are what check their shape. */
import { expect } from 'chai';
import { z } from 'zod';
import { ENTITIES, ROUTES, openApiDocument } from '../src/index.js';
import {
  createBody,
  createTree,
  organizationBody,
  startHarness,
  type Harness,
  type Tree,
} from './support.js';

interface FieldError {
  in: string;
  field: string;
  code: string;
}

describe('organization service: validation and OpenAPI', function () {
  this.timeout(60_000);
  let h: Harness;
  let tree: Tree;

  before(async () => {
    h = await startHarness('org_validation');
    tree = await createTree(h, h.alpha, 'V');
  });
  after(async () => {
    await h?.close();
  });

  function fields(body: { errors?: FieldError[] }): string[] {
    return (body.errors ?? []).map((e) => `${e.in}:${e.field}`).sort();
  }

  it('when a create body has many invalid fields, one 400 lists every one of them', async () => {
    const response = await h.call('POST', '/org/organizations', {
      body: organizationBody('bad code!', {
        legalName: '',
        country: 'Bangladesh',
        currency: 'XYZ',
        timeZone: 'Mars/Olympus',
        fiscalYearStartMonth: 13,
        address: { city: 'x'.repeat(101), planet: 'Mars' },
        extra: true,
      }),
    });

    expect(response.status).to.equal(400);
    expect(response.headers.get('content-type')).to.contain('application/problem+json');
    expect(response.body.code).to.equal('VALIDATION_FAILED');
    expect(fields(response.body)).to.deep.equal(
      [
        'body:address.city',
        'body:address.planet',
        'body:code',
        'body:country',
        'body:currency',
        'body:extra',
        'body:fiscalYearStartMonth',
        'body:legalName',
        'body:timeZone',
      ].sort(),
    );
  });

  it('when path, query and headers are invalid together, one 400 lists them all', async () => {
    const response = await h.call('GET', '/org/sites?limit=1000&sort=secret&status=gone&x=1', {
      headers: { 'X-Project-ID': 'not-a-uuid' },
    });
    const badId = await h.call('GET', '/org/sites/42');

    expect(response.status).to.equal(400);
    expect(fields(response.body)).to.deep.equal(
      ['header:x-project-id', 'query:limit', 'query:sort', 'query:status', 'query:x'].sort(),
    );
    expect(badId.status).to.equal(400);
    expect(fields(badId.body)).to.deep.equal(['path:id']);
  });

  const invalid: [string, string, string, unknown, Record<string, string>?][] = [
    ['POST', '/org/organizations', 'a JSON array body', []],
    ['POST', '/org/organizations', 'no body at all', undefined],
    ['POST', '/org/organizations', 'a number for a string', { ...organizationBody('N'), code: 7 }],
    [
      'POST',
      '/org/organizations',
      'null for a required field',
      { ...organizationBody('N'), code: null },
    ],
    ['PATCH', '/org/organizations/:org', 'an empty change', {}, { 'If-Match': '"0"' }],
    [
      'PATCH',
      '/org/organizations/:org',
      'a malformed If-Match',
      { displayName: 'x' },
      { 'If-Match': 'W/"0"' },
    ],
    [
      'POST',
      '/org/projects/:project/sites',
      'a latitude without longitude',
      { code: 'S', name: 'S', latitude: 10 },
    ],
    [
      'POST',
      '/org/projects/:project/sites',
      'a latitude beyond 90',
      { code: 'S', name: 'S', latitude: 91, longitude: 0 },
    ],
    [
      'POST',
      '/org/organizations/:org/projects',
      'an end before the start',
      { code: 'P', name: 'P', startDate: '2026-05-01', endDate: '2026-04-01' },
    ],
    [
      'POST',
      '/org/organizations/:org/projects',
      'an impossible date',
      { code: 'P', name: 'P', startDate: '2026-02-30' },
    ],
    [
      'POST',
      '/org/organizations/:org/projects',
      'the archived status',
      { code: 'P', name: 'P', status: 'archived' },
    ],
    [
      'POST',
      '/org/organizations/:org/divisions',
      'a parent that is not a UUID',
      { code: 'D', name: 'D', parentId: 'root' },
    ],
    [
      'POST',
      '/org/organizations/:org/branches',
      'a phone with letters',
      { code: 'B', name: 'B', phone: 'call me' },
    ],
    [
      'POST',
      '/org/organizations',
      'an over-long Idempotency-Key',
      organizationBody('N'),
      { 'Idempotency-Key': 'k'.repeat(201) },
    ],
    ['GET', '/org/organizations?cursor=bm90LWEtY3Vyc29y', 'a forged cursor', undefined],
    ['GET', '/org/organizations?limit=0', 'a page size of 0', undefined],
    ['GET', '/org/organizations?limit=-1', 'a negative page size', undefined],
    ['GET', '/org/organizations?status=active&status=archived', 'a repeated filter', undefined],
    ['GET', '/org/organizations?sort=code;DROP TABLE organizations', 'SQL in the sort', undefined],
  ];

  for (const [method, template, what, body, headers] of invalid) {
    it(`when a request has ${what}, it answers 400 with field errors`, async () => {
      const path = template.replace(':org', tree.organization).replace(':project', tree.project);

      const response = await h.call(method, path, { body, headers });

      expect(response.status, JSON.stringify(response.body)).to.equal(400);
      expect(response.body.code).to.equal('VALIDATION_FAILED');
      expect(response.body.errors).to.be.an('array').that.is.not.empty;
    });
  }

  it('when any field of any create or PATCH gets a value of the wrong kind, the answer is a 4xx, never a 500', async () => {
    const wrong: unknown[] = [123, -1.5, true, {}, [], 'x'.repeat(5000), '', null, '\u0000'];
    const parents: Record<string, string> = {
      organization: '/org/organizations',
      branch: `/org/organizations/${tree.organization}/branches`,
      division: `/org/organizations/${tree.organization}/divisions`,
      project: `/org/organizations/${tree.organization}/projects`,
      site: `/org/projects/${tree.project}/sites`,
    };
    const outcomes = new Map<number, number>();
    let n = 0;
    for (const entity of Object.values(ENTITIES)) {
      const shape = (entity.create as unknown as { shape: Record<string, unknown> }).shape;
      for (const field of Object.keys(shape)) {
        for (const value of wrong) {
          n++;
          const body = { ...createBody(entity.name, `F${n}`), [field]: value };
          const created = await h.call('POST', parents[entity.name] as string, { body });
          const id = (tree as unknown as Record<string, string>)[entity.name];
          const current = await h.call('GET', `/org/${entity.plural}/${id}`);
          const patched = await h.call('PATCH', `/org/${entity.plural}/${id}`, {
            body: { [field]: value },
            headers: { 'If-Match': current.headers.get('etag') ?? '' },
          });
          for (const [what, response] of [
            ['POST', created],
            ['PATCH', patched],
          ] as const) {
            const label = `${what} ${entity.name}.${field} = ${JSON.stringify(value)?.slice(0, 20)}`;
            expect(response.status, `${label}: ${JSON.stringify(response.body)}`).to.be.below(500);
            if (response.status === 400) expect(response.body.errors, label).to.not.be.empty;
            outcomes.set(response.status, (outcomes.get(response.status) ?? 0) + 1);
          }
        }
      }
    }
    expect(outcomes.get(400)).to.be.greaterThan(200);
  });

  it('when a PATCH of one date would put the end before the stored start, it answers 400 for endDate', async () => {
    const created = await h.call('POST', `/org/organizations/${tree.organization}/projects`, {
      body: { code: 'DATES', name: 'Dates', startDate: '2026-05-01' },
    });

    const response = await h.call('PATCH', `/org/projects/${created.body.id}`, {
      body: { endDate: '2026-04-30' },
      headers: { 'If-Match': '"0"' },
    });

    expect(response.status).to.equal(400);
    expect(fields(response.body)).to.deep.equal(['body:endDate']);
  });

  it('counts a name in characters as the database does, not in UTF-16 units', async () => {
    // Each emoji is one character (one code point) but two UTF-16 units.
    const create = (name: string) =>
      h.call('POST', `/org/organizations/${tree.organization}/projects`, {
        body: { code: `E${[...name].length}`, name },
      });

    const longest = await create('🏗'.repeat(200));
    const tooLong = await create('🏗'.repeat(201));

    expect(longest.status, JSON.stringify(longest.body)).to.equal(201);
    expect(longest.body.name).to.equal('🏗'.repeat(200));
    expect(tooLong.status).to.equal(400);
    expect(fields(tooLong.body)).to.deep.equal(['body:name']);
    expect(tooLong.body.errors[0].message).to.match(/200 characters/);
  });

  it('when a PATCH sets only a latitude on a site without coordinates, it answers 400', async () => {
    const site = await h.call('POST', `/org/projects/${tree.project}/sites`, {
      body: { code: 'NOCOORD', name: 'No coordinates' },
    });
    const path = `/org/sites/${site.body.id}`;
    const response = await h.call('PATCH', path, {
      body: { latitude: 23.8 },
      headers: { 'If-Match': '"0"' },
    });
    const both = await h.call('PATCH', path, {
      body: { latitude: 23.8, longitude: 90.4 },
      headers: { 'If-Match': '"0"' },
    });

    expect(response.status).to.equal(400);
    expect(both.status).to.equal(200);
    expect(both.body).to.include({ latitude: 23.8, longitude: 90.4 });
  });

  it('when a cursor of one sort is used with another, it answers 400 for the cursor', async () => {
    await createTree(h, h.alpha, 'W');
    const first = await h.call('GET', '/org/organizations?limit=1&sort=code');

    const mixed = await h.call(
      'GET',
      `/org/organizations?sort=createdAt&cursor=${first.body.nextCursor}`,
    );

    expect(mixed.status).to.equal(400);
    expect(fields(mixed.body)).to.deep.equal(['query:cursor']);
  });

  it('when a known path is asked with a method it lacks, it answers 405 with Allow', async () => {
    const response = await h.call('PUT', `/org/organizations/${tree.organization}`, {
      body: organizationBody('PUT'),
    });

    expect(response.status).to.equal(405);
    expect(response.body.code).to.equal('METHOD_NOT_ALLOWED');
    expect(response.headers.get('allow')).to.equal('GET, PATCH, DELETE');
  });

  it('when the body is not JSON, it answers 400 MALFORMED_JSON', async () => {
    const response = await fetch(`${h.service.url}/org/organizations`, {
      method: 'POST',
      headers: {
        Authorization: `Bearer ${h.token(h.alpha)}`,
        'X-Tenant-ID': 'alpha',
        'Content-Type': 'application/json',
      },
      body: '{"code": ',
    });

    expect(response.status).to.equal(400);
    expect(((await response.json()) as { code: string }).code).to.equal('MALFORMED_JSON');
  });

  it("when /openapi.json is read, it is OpenAPI 3.1 with one operation per route and the validators' schemas", async () => {
    const response = await fetch(`${h.service.url}/openapi.json`);
    const document = (await response.json()) as {
      openapi: string;
      paths: Record<
        string,
        Record<string, { requestBody?: { content: Record<string, { schema: unknown }> } }>
      >;
    };

    expect(response.status).to.equal(200);
    expect(document).to.deep.equal(openApiDocument());
    expect(document.openapi).to.equal('3.1.0');
    const operations = Object.values(document.paths).flatMap((p) => Object.keys(p));
    expect(operations).to.have.length(ROUTES.length);
    const create =
      document.paths['/org/organizations']?.post?.requestBody?.content['application/json'];
    const expected = z.toJSONSchema(ENTITIES.organization.create, {
      io: 'input',
      unrepresentable: 'any',
    });
    delete expected.$schema;
    expect(create?.schema).to.deep.equal(expected);
  });

  it('when records are read, they match the response schemas that /openapi.json publishes', async () => {
    for (const entity of Object.values(ENTITIES)) {
      const list = await h.call('GET', `/org/${entity.plural}`);
      for (const item of list.body.items as unknown[]) {
        const parsed = entity.response.safeParse(item);
        expect(parsed.success, `${entity.name}: ${JSON.stringify(parsed.error?.issues)}`).to.equal(
          true,
        );
      }
    }
  });
});
