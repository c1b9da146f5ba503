import { expect } from 'chai';
import { startHarness, organizationBody, type Harness } from './support.js';
import { ENTITIES } from '../src/index.js';

describe('organization service: organizations', function () {
  this.timeout(60_000);
  let h: Harness;

  before(async () => {
    h = await startHarness('org_orgs');
  });
  after(async () => {
    await h?.close();
  });

  it('when an administrator creates an organization, it answers 201 with ETag and Location', async () => {
    const created = await h.call('POST', '/org/organizations', { body: organizationBody('ACME') });

    expect(created.status).to.equal(201);
    expect(created.headers.get('etag')).to.equal('"0"');
    expect(created.headers.get('location')).to.equal(`/org/organizations/${created.body.id}`);
    expect(ENTITIES.organization.response.safeParse(created.body).success).to.equal(true);
    const read = await h.call('GET', `/org/organizations/${created.body.id}`);
    expect(read.status).to.equal(200);
    expect(read.body).to.deep.equal(created.body);
  });
});
