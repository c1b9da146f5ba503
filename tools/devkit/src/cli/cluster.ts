/**
 * Starts a throw-away local control plane with its node and waits: `npm run cluster`.
 * Prints the kubeconfig to use; Ctrl-C stops everything and removes its files.
 */
import { startCluster } from '../kube/cluster.js';

const cluster = await startCluster();
console.log(`Control plane ready at ${cluster.plane.server}`);
console.log(`export KUBECONFIG=${cluster.plane.kubeconfig}`);
console.log('Press Ctrl-C to stop.');
const stop = (): void => {
  void cluster.stop().then(() => process.exit(0));
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
