import { expect } from 'chai';
import { provision, verify } from '../src/index.js';
import { createPlane, type TestPlane } from './support/plane.js';

describe('smoke', () => {
  let plane: TestPlane;
  before(async () => {
    plane = await createPlane('smoke');
  });
  after(async () => plane.close());

  it('provisions and verifies', async () => {
    const t0 = Date.now();
    await provision(plane.db, 'acme');
    console.log('provision ms', Date.now() - t0);
    const report = await verify(plane.db, 'acme');
    console.log(JSON.stringify(report, null, 1));
    expect(report.clean).to.equal(true);
  });
});
