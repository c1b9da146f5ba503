/**
 * Issue 7: start and stop of the local control plane (etcd, kube-apiserver and
 * kube-controller-manager, the tools already built), against etcd and kube-apiserver alone.
 */
import { startControlPlane } from '@vextrus/devkit';
import { interleave, type Benchmark } from '../harness.js';
import { summarize } from '../stats.js';

async function startAndStop(controllerManager: boolean): Promise<number> {
  const started = performance.now();
  const plane = await startControlPlane({ controllerManager });
  await plane.stop();
  return performance.now() - started;
}

export const controlPlane: Benchmark = {
  name: 'control-plane',
  issue: 7,
  async run({ settings, log }) {
    log('control plane: start + stop, with and without the controller manager');
    const rounds = settings.smoke ? 1 : settings.rounds;
    const result = await interleave(
      rounds,
      () => startAndStop(true),
      () => startAndStop(false),
    );
    return [
      {
        id: 'control-plane',
        issue: 7,
        title: 'Control plane start + stop (tools built)',
        unit: 'ms',
        better: 'lower',
        subject: {
          label: 'etcd + kube-apiserver + kube-controller-manager',
          samples: result.subject,
        },
        baseline: { label: 'etcd + kube-apiserver only', samples: result.baseline },
        target: { text: '< 20 s', met: summarize(result.subject).median < 20_000 },
        method:
          'startControlPlane() of the devkit until every component is ready, then stop() until ' +
          'every process has exited and the temporary folder is gone.',
      },
    ];
  },
};
