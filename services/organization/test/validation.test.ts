/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-argument --
   response bodies are untyped JSON, and the assertions are what check their shape. */
import { expect } from 'chai';
import { z } from 'zod';
import { eventsQuery, exportQuery, verifyQuery } from '@vextrus/shared';
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
    // One per route, and the audit API's three (GET /audit/events, its export, /audit/verify).
    expect(operations).to.have.length(ROUTES.length + 3);
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

  /** The audit API's operations as /openapi.json publishes them, with the query each validates. */
  const AUDIT_OPERATIONS = [
    { path: '/audit/events', query: eventsQuery, type: 'application/json' },
    { path: '/audit/events/export', query: exportQuery, type: 'application/x-ndjson' },
    { path: '/audit/verify', query: verifyQuery, type: 'application/json' },
  ] as const;

  interface Parameter {
    name: string;
    in: string;
    required: boolean;
  }
  interface Operation {
    operationId: string;
    'x-roles': string[];
    security: unknown[];
    parameters: Parameter[];
    responses: Record<
      string,
      { headers?: Record<string, unknown>; content?: Record<string, { schema: unknown }> }
    >;
  }
  interface Document {
    paths: Record<string, Record<string, Operation>>;
    components: { schemas: Record<string, unknown>; securitySchemes: Record<string, unknown> };
  }

  async function published(): Promise<Document> {
    const response = await fetch(`${h.service.url}/openapi.json`);
    expect(response.status).to.equal(200);
    return (await response.json()) as Document;
  }

  /** The published 200 schema of an audit operation, as a zod validator. */
  function okSchema(document: Document, path: string, type: string): z.ZodType {
    const schema = document.paths[path]?.get?.responses['200']?.content?.[type]?.schema;
    expect(schema, `${path}: no ${type} schema for 200`).to.be.an('object');
    return z.fromJSONSchema(schema as z.core.JSONSchema.JSONSchema);
  }

  function expectValid(schema: z.ZodType, value: unknown, what: string): void {
    const parsed = schema.safeParse(value);
    expect(parsed.success, `${what}: ${JSON.stringify(parsed.error?.issues)}`).to.equal(true);
  }

  it('when /openapi.json is read, it describes GET /audit/events, its export and /audit/verify with the query parameters their router validates, and nothing else', async () => {
    const document = await published();

    for (const { path, query, type } of AUDIT_OPERATIONS) {
      expect(Object.keys(document.paths[path] ?? {}), path).to.deep.equal(['get']);
      const operation = document.paths[path]?.get as Operation;
      // Every key of the zod query the router parses (a strict object: no other is accepted).
      const names = operation.parameters.filter((p) => p.in === 'query').map((p) => p.name);
      expect(names.sort(), path).to.deep.equal(Object.keys(query.shape).sort());
      expect(
        operation.parameters.filter((p) => p.in !== 'query'),
        path,
      ).to.deep.equal([
        {
          name: 'X-Tenant-ID',
          in: 'header',
          required: true,
          description: "The tenant's slug (stamped by the gateway); must be the token's tenant",
          schema: { type: 'string' },
        },
      ]);
      expect(
        operation.parameters.every((p) => p.in !== 'query' || !p.required),
        path,
      ).to.equal(true);
      expect(operation['x-roles'], path).to.deep.equal(['tenant_admin', 'auditor']);
      expect(operation.security, path).to.deep.equal([{ bearer: [] }]);
      expect(Object.keys(operation.responses).sort(), path).to.deep.equal(
        ['200', '400', '401', '403', '405', '503'].sort(),
      );
      expect(Object.keys(operation.responses['200']?.content ?? {}), path).to.deep.equal([type]);
      for (const [status, response] of Object.entries(operation.responses)) {
        expect(response.headers, `${path} ${status}`).to.have.property('Cache-Control');
        if (status === '200') continue;
        expect(response.content, `${path} ${status}`).to.deep.equal({
          'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } },
        });
      }
      expect(operation.responses['405']?.headers).to.have.property('Allow');
      expect(operation.responses['503']?.headers).to.have.property('Retry-After');
    }
    expect(document.components.schemas).to.have.property('Problem');
    expect(document.components.securitySchemes).to.have.property('bearer');
    const ids = AUDIT_OPERATIONS.map(({ path }) => document.paths[path]?.get?.operationId);
    expect(ids).to.deep.equal(['listAuditEvents', 'exportAuditEvents', 'verifyAuditChain']);
  });

  it('when a query names every parameter /openapi.json documents for /audit/events, the router accepts it; an undocumented one is refused', async () => {
    const document = await published();
    const first = await h.call('GET', '/audit/events?limit=1');
    expect(first.status).to.equal(200);
    expect(first.body.nextCursor).to.be.a('string');
    const sample: Record<string, string> = {
      from: '2000-01-01T00:00:00Z',
      to: '2100-01-01T00:00:00+06:00',
      actor: 'system:operator',
      action: 'organization.created',
      resourceType: 'organization',
      resourceId: 'none',
      outcome: 'success',
      limit: '5',
      cursor: first.body.nextCursor as string,
    };
    const names = (document.paths['/audit/events']?.get?.parameters ?? [])
      .filter((p) => p.in === 'query')
      .map((p) => p.name);
    // A filter added to the router and the document needs a sample here too.
    expect(names.sort()).to.deep.equal(Object.keys(sample).sort());
    const query = new URLSearchParams(
      names.map((name): [string, string] => [name, sample[name] ?? '']),
    );

    const every = await h.call('GET', `/audit/events?${query.toString()}`);
    const unknown = await h.call('GET', '/audit/events?colour=red');

    expect(every.status, JSON.stringify(every.body)).to.equal(200);
    expect(unknown.status).to.equal(400);
    expect(fields(unknown.body)).to.deep.equal(['query:colour']);
  });

  it('when the audit log is read through the service, its page, export lines, chain report and problems match the schemas /openapi.json publishes', async () => {
    // Records of this test's own making, through the service: a created and an updated
    // organization, and a refused attempt (a member may not create).
    const created = await h.call('POST', '/org/organizations', {
      body: organizationBody('AUDITDOC', { legalName: 'Audit "Doc" Ltd\\n' }),
    });
    expect(created.status).to.equal(201);
    const refused = await h.call('POST', '/org/organizations', {
      roles: ['member'],
      body: organizationBody('AUDITNO'),
    });
    expect(refused.status).to.equal(403);
    const document = await published();

    const page = await h.call('GET', '/audit/events?limit=3', { roles: ['auditor'] });
    const exported = await fetch(`${h.service.url}/audit/events/export`, {
      headers: { Authorization: `Bearer ${h.token(h.alpha)}`, 'X-Tenant-ID': 'alpha' },
    });
    const lines = (await exported.text()).split('\n');
    const report = await h.call('GET', '/audit/verify');
    const invalid = await h.call('GET', '/audit/events?limit=0&outcome=maybe');
    const forbidden = await h.call('GET', '/audit/verify', { roles: ['member'] });
    const anonymous = await h.call('GET', '/audit/events', { anonymous: true });
    const wrongMethod = await h.call('POST', '/audit/verify');

    expect(page.status).to.equal(200);
    expect(page.headers.get('cache-control')).to.equal('no-store');
    expect(page.body.items).to.have.length(3);
    expect(page.body.nextCursor).to.be.a('string');
    expectValid(okSchema(document, '/audit/events', 'application/json'), page.body, 'page');

    expect(exported.status).to.equal(200);
    expect(exported.headers.get('content-type')).to.contain('application/x-ndjson');
    expect(exported.headers.get('cache-control')).to.equal('no-store');
    expect(lines.pop()).to.equal('');
    const line = okSchema(document, '/audit/events/export', 'application/x-ndjson');
    const records = lines.map((text) => JSON.parse(text) as { action: string; outcome: string });
    for (const [index, record] of records.entries()) expectValid(line, record, `line ${index}`);
    // The published schema is no blank cheque: a record out of shape is refused.
    expect(line.safeParse({ ...records[0], hash: 'ff' }).success).to.equal(false);
    expect(line.safeParse({ ...records[0], extra: 1 }).success).to.equal(false);
    expect(line.safeParse({ ...records[0], outcome: 'maybe' }).success).to.equal(false);
    expect(records.map((r) => `${r.action}:${r.outcome}`)).to.include.members([
      'organization.created:success',
      'access.denied:denied',
    ]);

    expect(report.status).to.equal(200);
    expect(report.headers.get('cache-control')).to.equal('no-store');
    expect(report.body).to.include({ valid: true, checked: records.length });
    expectValid(okSchema(document, '/audit/verify', 'application/json'), report.body, 'report');
    // A broken chain's report has a problem, which the schema must take as well.
    const altered = (page.body.items as { id: string }[])[0]?.id;
    const broken = {
      ...(report.body as object),
      valid: false,
      problem: { code: 'RECORD_ALTERED', sequence: 1, id: altered, detail: 'x' },
    };
    expectValid(okSchema(document, '/audit/verify', 'application/json'), broken, 'broken report');

    const problem = z.fromJSONSchema(
      document.components.schemas.Problem as z.core.JSONSchema.JSONSchema,
    );
    for (const [status, answer] of [
      [400, invalid],
      [403, forbidden],
      [401, anonymous],
      [405, wrongMethod],
    ] as const) {
      expect(answer.status, JSON.stringify(answer.body)).to.equal(status);
      expect(answer.headers.get('content-type')).to.contain('application/problem+json');
      expect(answer.headers.get('cache-control'), String(status)).to.equal('no-store');
      expectValid(problem, answer.body, `${status} problem`);
    }
    expect(fields(invalid.body)).to.deep.equal(['query:limit', 'query:outcome']);
    expect(wrongMethod.headers.get('allow')).to.equal('GET, HEAD');
  });
});
