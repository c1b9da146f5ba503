import { randomBytes } from 'node:crypto';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { KubeAccess } from './http.js';
import type { Logger } from 'pino';
import { kubeRequest, microTime } from './http.js';

export type EventType = 'Normal' | 'Warning';

/**
 * Records Kubernetes Events (events.k8s.io/v1) about an object, with CamelCase reasons. The same
 * reason and note within a few minutes is not recorded again, so a failing reconcile that retries
 * does not flood the namespace.
 */
export class EventRecorder {
  private readonly recent = new Map<string, number>();

  constructor(
    private readonly kubeConfig: KubeAccess,
    private readonly controller: string,
    private readonly instance: string,
    private readonly logger: Logger,
  ) {}

  async record(
    object: KubernetesObject,
    type: EventType,
    reason: string,
    note: string,
    action = 'Reconcile',
  ): Promise<void> {
    const uid = object.metadata?.uid ?? '';
    const dedupeKey = `${uid}|${reason}|${note}`;
    const last = this.recent.get(dedupeKey);
    if (last !== undefined && Date.now() - last < 5 * 60_000) return;
    this.recent.set(dedupeKey, Date.now());
    if (this.recent.size > 5000) this.recent.clear();
    const name = `${object.metadata?.name ?? 'object'}.${randomBytes(8).toString('hex')}`;
    // The API server refuses an Event whose namespace differs from its object's: Events about
    // cluster-scoped objects (a Tenant) go to `default`, as kubectl describe looks for them.
    const namespace = object.metadata?.namespace ?? 'default';
    try {
      await kubeRequest(
        this.kubeConfig,
        'POST',
        `/apis/events.k8s.io/v1/namespaces/${namespace}/events`,
        {
          apiVersion: 'events.k8s.io/v1',
          kind: 'Event',
          metadata: { name, namespace },
          eventTime: microTime(),
          reportingController: this.controller,
          reportingInstance: this.instance,
          action,
          reason,
          note: note.slice(0, 1024),
          type,
          regarding: {
            apiVersion: object.apiVersion,
            kind: object.kind,
            name: object.metadata?.name,
            namespace: object.metadata?.namespace,
            uid,
            resourceVersion: object.metadata?.resourceVersion,
          },
        },
      );
    } catch (err) {
      this.logger.warn({ err, reason }, 'cannot record event');
    }
  }
}
