/* eslint-disable @typescript-eslint/no-unsafe-member-access --
   response bodies are untyped JSON, and the assertions are what check their shape. */
import { expect } from 'chai';
import { deprovision, provision } from '@vextrus/migrations';
import { organizationBody, startHarness, type Harness, type Response } from './support.js';

function expectProblem(response: Response, status: number, code: string): void {
  expect(response.status, JSON.stringify(response.body)).to.equal(status);
  expect(response.headers.get('content-type') ?? '').to.match(/^application\/problem\+json/);
  expect(response.body.code, JSON.stringify(response.body)).to.equal(code);
}

describe('organization service: a tenant deleted and created again under the same slug', function () {
  this.timeout(120_000);
  let h: Harness;

  before(async () => {
    h = await startHarness('org_recreated');
  });
  after(async () => {
    await h?.close();
  });

  it("while the deleted tenant is still cached, its token writes nothing (403, not 500), the new tenant's token is let in at once", async () => {
    const old = h.bravo;
    const created = await h.call('POST', '/org/organizations', {
      tenant: old,
      body: organizationBody('BEFORE'),
    });
    expect(created.status, JSON.stringify(created.body)).to.equal(201);
    await deprovision(h.plane.db, old.slug, 'delete');
    const reborn = { slug: old.slug, tenantId: (await provision(h.plane.db, old.slug)).tenantId };

    const oldWrite = await h.call('POST', '/org/organizations', {
      tenant: old,
      body: organizationBody('STALE'),
    });
    const newRead = await h.call('GET', '/org/organizations', { tenant: reborn });
    const newWrite = await h.call('POST', '/org/organizations', {
      tenant: reborn,
      body: organizationBody('AFTER'),
    });
    const oldRead = await h.call('GET', '/org/organizations', { tenant: old });

    expectProblem(oldWrite, 403, 'TENANT_UNAVAILABLE');
    expect(newRead.status, JSON.stringify(newRead.body)).to.equal(200);
    expect(newRead.body.items).to.deep.equal([]);
    expect(newWrite.status, JSON.stringify(newWrite.body)).to.equal(201);
    expectProblem(oldRead, 403, 'TENANT_UNAVAILABLE');
  });
});
