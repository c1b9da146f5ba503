import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import {
  CoordinationV1Api,
  CoreV1Api,
  KubeConfig,
  Watch,
  type V1Container,
  type V1ContainerStatus,
  type V1Pod,
  type V1PodStatus,
} from '@kubernetes/client-node';
import type { Certificates } from './certificates.js';
import { pino, type Logger } from 'pino';
import { imageName, PLATFORM_IMAGES, type LocalImage } from './images.js';
import { containerEnvironment, ContainerConfigError, expand } from './pod-environment.js';

/**
 * THE SIMULATED PART. No kubelet or container runtime can run on these machines, so this class
 * plays the node: it registers a Node, binds unscheduled Pods to itself (there is no scheduler),
 * runs each container of a Pod as a local process (an image maps to a local entrypoint), reports
 * Pod status and exit codes through the API, serves container logs to `kubectl logs` through the
 * API server as a kubelet would, and completes Pod deletion. Everything else (API server, etcd,
 * Job controller, garbage collector) is real.
 */
export interface LocalNodeOptions {
  kubeconfig: string;
  certificates: Certificates;
  /**
   * Folder for container logs (`<namespace>_<pod>_<container>.log`) and for the node's own
   * (`local-node.log`: failures of its calls to the API server, which it tries again).
   */
  logDir: string;
  name?: string;
  /** Images beyond the platform's own (tests add some); matched by name without tag. */
  images?: Record<string, LocalImage>;
}

interface RunningContainer {
  process: ChildProcess;
  exited: Promise<{ exitCode: number; signal?: string }>;
}

interface PodRun {
  uid: string;
  containers: Map<string, RunningContainer>;
  statuses: Map<string, V1ContainerStatus>;
  deleting: boolean;
  finished: boolean;
}

const LEASE_NAMESPACE = 'kube-node-lease';
const RESYNC_MS = 5_000;

function podKey(pod: V1Pod): string {
  return `${pod.metadata?.namespace}/${pod.metadata?.name}`;
}

function now(): Date {
  return new Date();
}

export class LocalNode {
  readonly name: string;
  private readonly core: CoreV1Api;
  private readonly coordination: CoordinationV1Api;
  private readonly kubeConfig = new KubeConfig();
  private readonly images: Record<string, LocalImage>;
  private readonly runs = new Map<string, PodRun>();
  private server?: Server;
  private watchAbort?: AbortController;
  private timers: NodeJS.Timeout[] = [];
  private stopped = false;
  /** Serializes handling per Pod, so two events for one Pod never race. */
  private readonly queues = new Map<string, Promise<void>>();
  private readonly log: Logger;
  private readonly ownLog: ReturnType<typeof pino.destination>;

  constructor(private readonly options: LocalNodeOptions) {
    this.name = options.name ?? 'local-node';
    this.kubeConfig.loadFromFile(options.kubeconfig);
    this.core = this.kubeConfig.makeApiClient(CoreV1Api);
    this.coordination = this.kubeConfig.makeApiClient(CoordinationV1Api);
    this.images = { ...PLATFORM_IMAGES, ...options.images };
    mkdirSync(options.logDir, { recursive: true });
    this.ownLog = pino.destination({
      dest: path.join(options.logDir, 'local-node.log'),
      sync: true,
    });
    this.log = pino({ base: { node: this.name } }, this.ownLog);
  }

  /** Logs what a background call failed at; the node tries it again at its next turn. */
  private failed(what: string): (err: unknown) => void {
    return (err) => {
      if (!this.stopped) this.log.warn({ err }, `local node: ${what} failed`);
    };
  }

  async start(): Promise<void> {
    const port = await this.serveLogs();
    await this.register(port);
    await this.heartbeat();
    this.timers.push(
      setInterval(() => void this.heartbeat().catch(this.failed('heartbeat')), 10_000),
    );
    this.timers.push(setInterval(() => void this.resync().catch(this.failed('resync')), RESYNC_MS));
    await this.resync();
    void this.watchPods();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers) clearInterval(timer);
    this.watchAbort?.abort();
    const kills: Promise<unknown>[] = [];
    for (const run of this.runs.values()) {
      for (const container of run.containers.values()) {
        container.process.kill('SIGTERM');
        kills.push(container.exited);
      }
    }
    await Promise.race([Promise.all(kills), new Promise((r) => setTimeout(r, 5000))]);
    for (const run of this.runs.values()) {
      for (const container of run.containers.values()) container.process.kill('SIGKILL');
    }
    await new Promise<void>((resolve) =>
      this.server ? this.server.close(() => resolve()) : resolve(),
    );
    this.ownLog.end();
  }

  /** The log file of one container. */
  logFile(namespace: string, pod: string, container: string): string {
    return path.join(this.options.logDir, `${namespace}_${pod}_${container}.log`);
  }

  // The kubelet's log endpoint, reached by the API server for `kubectl logs`.
  private async serveLogs(): Promise<number> {
    const certs = this.options.certificates;
    const [cert, key, ca] = await Promise.all([
      readFile(certs.nodeServerCert),
      readFile(certs.nodeServerKey),
      readFile(certs.caCert),
    ]);
    this.server = createServer({ cert, key, ca, requestCert: true, rejectUnauthorized: true });
    this.server.on('request', (req, res) => {
      const url = new URL(req.url ?? '/', 'https://node');
      const match = /^\/containerLogs\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(url.pathname);
      if (!match) {
        res.writeHead(404).end('the local node serves only container logs\n');
        return;
      }
      const [, namespace, pod, container] = match.map(decodeURIComponent) as [
        string,
        string,
        string,
        string,
      ];
      const file = this.logFile(namespace, pod, container);
      if (!existsSync(file)) {
        res.writeHead(404).end(`no logs for container ${container} of pod ${namespace}/${pod}\n`);
        return;
      }
      void readFile(file, 'utf8').then((text) => {
        const tail = Number(url.searchParams.get('tailLines') ?? NaN);
        const lines = text.split('\n');
        if (lines.at(-1) === '') lines.pop();
        const shown =
          Number.isInteger(tail) && tail >= 0 ? lines.slice(-tail || lines.length) : lines;
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(shown.length ? `${shown.join('\n')}\n` : '');
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    return (this.server?.address() as AddressInfo).port;
  }

  private async register(kubeletPort: number): Promise<void> {
    const existing = await this.core.readNode({ name: this.name }).catch(() => undefined);
    if (!existing) {
      await this.core.createNode({
        body: {
          metadata: {
            name: this.name,
            labels: {
              'kubernetes.io/hostname': this.name,
              'kubernetes.io/os': 'linux',
              'kubernetes.io/arch': 'amd64',
              'vextrus.dev/local-node': 'true',
            },
          },
        },
      });
    }
    const status = {
      capacity: { cpu: '2', memory: '24Gi', pods: '250', 'ephemeral-storage': '50Gi' },
      allocatable: { cpu: '2', memory: '24Gi', pods: '250', 'ephemeral-storage': '50Gi' },
      addresses: [
        { type: 'InternalIP', address: '127.0.0.1' },
        { type: 'Hostname', address: this.name },
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: kubeletPort } },
      nodeInfo: {
        architecture: 'amd64',
        bootID: '',
        containerRuntimeVersion: 'vextrus-local://1',
        kernelVersion: '',
        kubeProxyVersion: '',
        kubeletVersion: 'v1.36.3',
        machineID: '',
        operatingSystem: 'linux',
        osImage: 'Vextrus local node (processes, not containers)',
        systemUUID: '',
      },
      conditions: [this.readyCondition()],
    };
    await this.core.patchNodeStatus({
      name: this.name,
      body: [{ op: 'replace', path: '/status', value: status }],
    });
  }

  private readyCondition() {
    const time = now();
    return {
      type: 'Ready',
      status: 'True',
      reason: 'LocalNodeReady',
      message: 'the local node runs pods as processes',
      lastHeartbeatTime: time,
      lastTransitionTime: time,
    };
  }

  private async heartbeat(): Promise<void> {
    const body = {
      metadata: { name: this.name, namespace: LEASE_NAMESPACE },
      spec: { holderIdentity: this.name, leaseDurationSeconds: 40, renewTime: now() },
    };
    try {
      const lease = await this.coordination.readNamespacedLease({
        name: this.name,
        namespace: LEASE_NAMESPACE,
      });
      lease.spec = { ...lease.spec, ...body.spec };
      await this.coordination.replaceNamespacedLease({
        name: this.name,
        namespace: LEASE_NAMESPACE,
        body: lease,
      });
    } catch {
      await this.coordination
        .createNamespacedLease({ namespace: LEASE_NAMESPACE, body: body })
        .catch(this.failed('renewing the node lease'));
    }
  }

  private async resync(): Promise<void> {
    if (this.stopped) return;
    const pods = await this.core.listPodForAllNamespaces();
    const seen = new Set<string>();
    for (const pod of pods.items) {
      seen.add(podKey(pod));
      this.enqueue(pod);
    }
    // Pods removed while we were not watching: stop their processes.
    for (const [key, run] of this.runs) {
      if (!seen.has(key)) this.killRun(run);
    }
  }

  private async watchPods(): Promise<void> {
    while (!this.stopped) {
      await new Promise<void>((resolve) => {
        const watch = new Watch(this.kubeConfig);
        watch
          .watch(
            '/api/v1/pods',
            { allowWatchBookmarks: true },
            (type: string, pod: V1Pod) => {
              if (type === 'ADDED' || type === 'MODIFIED') this.enqueue(pod);
              if (type === 'DELETED') {
                const run = this.runs.get(podKey(pod));
                if (run) this.killRun(run);
              }
            },
            () => resolve(),
          )
          .then(
            (abort) => (this.watchAbort = abort),
            () => resolve(),
          );
      });
      if (!this.stopped) await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }

  private enqueue(pod: V1Pod): void {
    const key = podKey(pod);
    const previous = this.queues.get(key) ?? Promise.resolve();
    const next = previous
      .then(() => this.handle(pod))
      .catch(() => {
        // Retried on the next event or resync.
      });
    this.queues.set(key, next);
    void next.then(() => {
      if (this.queues.get(key) === next) this.queues.delete(key);
    });
  }

  private async handle(pod: V1Pod): Promise<void> {
    if (this.stopped) return;
    const name = pod.metadata?.name ?? '';
    const namespace = pod.metadata?.namespace ?? '';
    if (!pod.spec?.nodeName) {
      if ((pod.spec?.schedulerName ?? 'default-scheduler') !== 'default-scheduler') return;
      if (pod.metadata?.deletionTimestamp) return;
      await this.core.createNamespacedBinding({
        namespace,
        body: {
          metadata: { name, namespace },
          target: { apiVersion: 'v1', kind: 'Node', name: this.name },
        },
      });
      return;
    }
    if (pod.spec.nodeName !== this.name) return;
    const key = podKey(pod);
    let run = this.runs.get(key);
    if (run && run.uid !== pod.metadata?.uid) {
      this.killRun(run);
      this.runs.delete(key);
      run = undefined;
    }

    if (pod.metadata?.deletionTimestamp) {
      if (run) {
        run.deleting = true;
        this.killRun(run, pod.spec.terminationGracePeriodSeconds ?? 30);
        await Promise.all([...run.containers.values()].map((c) => c.exited));
        this.runs.delete(key);
      }
      await this.core
        .deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0 })
        .catch(this.failed(`completing the deletion of Pod ${namespace}/${name}`));
      return;
    }
    const phase = pod.status?.phase;
    if (run || phase === 'Succeeded' || phase === 'Failed') return;
    await this.startPod(pod);
  }

  private killRun(run: PodRun, graceSeconds = 5): void {
    for (const container of run.containers.values()) {
      container.process.kill('SIGTERM');
      const timer = setTimeout(() => container.process.kill('SIGKILL'), graceSeconds * 1000);
      void container.exited.then(() => clearTimeout(timer));
    }
  }

  private resolveImage(container: V1Container): LocalImage | undefined {
    return this.images[imageName(container.image ?? '')];
  }

  private async startPod(pod: V1Pod): Promise<void> {
    const containers = pod.spec?.containers ?? [];
    const unknown = [...(pod.spec?.initContainers ?? []), ...containers].filter(
      (c) => !this.resolveImage(c),
    );
    if (unknown.length > 0) {
      const names = unknown.map((c) => `${c.name} (${c.image})`).join(', ');
      await this.setStatus(pod, {
        phase: 'Failed',
        reason: 'UnknownImage',
        message:
          `the local node runs only images it maps to local programs ` +
          `(${Object.keys(this.images).join(', ')}); cannot run ${names}`,
        startTime: now(),
      });
      return;
    }
    const environments = new Map<string, Record<string, string>>();
    try {
      for (const container of [...(pod.spec?.initContainers ?? []), ...containers]) {
        environments.set(container.name, await containerEnvironment(this.core, pod, container));
      }
    } catch (err) {
      if (!(err instanceof ContainerConfigError)) throw err;
      await this.setStatus(pod, {
        phase: 'Pending',
        containerStatuses: containers.map((c) => ({
          name: c.name,
          image: c.image ?? '',
          imageID: '',
          ready: false,
          restartCount: 0,
          state: { waiting: { reason: err.reason, message: err.message } },
        })),
      });
      return;
    }

    const run: PodRun = {
      uid: pod.metadata?.uid ?? '',
      containers: new Map(),
      statuses: new Map(),
      deleting: false,
      finished: false,
    };
    this.runs.set(podKey(pod), run);
    void this.runPod(pod, run, environments).catch(this.failed(`running Pod ${podKey(pod)}`));
  }

  private spawnContainer(pod: V1Pod, container: V1Container, env: Record<string, string>) {
    const image = this.resolveImage(container) as LocalImage;
    const command = container.command?.length ? container.command : image.entrypoint;
    const args = (container.args ?? []).map((arg) => expand(arg, env));
    const [program, ...rest] = [...command.map((part) => expand(part, env)), ...args];
    const file = this.logFile(
      pod.metadata?.namespace ?? '',
      pod.metadata?.name ?? '',
      container.name,
    );
    const log = createWriteStream(file, { flags: 'a' });
    const child = spawn(program ?? 'false', rest, {
      cwd: image.cwd,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
    const exited = new Promise<{ exitCode: number; signal?: string }>((resolve) => {
      child.on('error', (err) => {
        log.write(`local node: cannot start ${program}: ${err.message}\n`);
      });
      child.on('close', (code, signal) => {
        log.end();
        resolve({ exitCode: code ?? 128 + 9, signal: signal ?? undefined });
      });
    });
    return { process: child, exited };
  }

  private async runPod(
    pod: V1Pod,
    run: PodRun,
    environments: Map<string, Record<string, string>>,
  ): Promise<void> {
    const startTime = now();
    const restartPolicy = pod.spec?.restartPolicy ?? 'Always';
    for (const init of pod.spec?.initContainers ?? []) {
      const result = await this.runOnce(pod, run, init, environments.get(init.name) ?? {});
      if (result.exitCode !== 0 || run.deleting) {
        await this.finish(pod, run, startTime, 'Failed');
        return;
      }
    }
    const containers = pod.spec?.containers ?? [];
    const outcomes = await Promise.all(
      containers.map(async (container) => {
        let restarts = 0;
        for (;;) {
          const result = await this.runOnce(
            pod,
            run,
            container,
            environments.get(container.name) ?? {},
            restarts,
            startTime,
          );
          const restart =
            !run.deleting &&
            !this.stopped &&
            (restartPolicy === 'Always' ||
              (restartPolicy === 'OnFailure' && result.exitCode !== 0));
          if (!restart) return result.exitCode;
          restarts += 1;
          await new Promise((r) => setTimeout(r, Math.min(10_000, 500 * 2 ** restarts)));
        }
      }),
    );
    if (run.deleting || this.stopped) return;
    await this.finish(
      pod,
      run,
      startTime,
      outcomes.every((code) => code === 0) ? 'Succeeded' : 'Failed',
    );
  }

  private async runOnce(
    pod: V1Pod,
    run: PodRun,
    container: V1Container,
    env: Record<string, string>,
    restartCount = 0,
    startTime = now(),
  ): Promise<{ exitCode: number }> {
    const started = now();
    const running = this.spawnContainer(pod, container, env);
    run.containers.set(container.name, running);
    run.statuses.set(container.name, {
      name: container.name,
      image: container.image ?? '',
      imageID: '',
      containerID: `local://${running.process.pid}`,
      ready: true,
      started: true,
      restartCount,
      state: { running: { startedAt: started } },
    });
    await this.report(pod, run, startTime, 'Running');
    const result = await running.exited;
    const tail = (
      await readFile(
        this.logFile(pod.metadata?.namespace ?? '', pod.metadata?.name ?? '', container.name),
        'utf8',
      ).catch(() => '')
    ).slice(-1024);
    run.statuses.set(container.name, {
      name: container.name,
      image: container.image ?? '',
      imageID: '',
      containerID: `local://${running.process.pid}`,
      ready: false,
      started: false,
      restartCount,
      state: {
        terminated: {
          exitCode: result.exitCode,
          reason: result.exitCode === 0 ? 'Completed' : 'Error',
          message: result.exitCode === 0 ? undefined : tail,
          startedAt: started,
          finishedAt: now(),
          containerID: `local://${running.process.pid}`,
        },
      },
    });
    return result;
  }

  private async finish(pod: V1Pod, run: PodRun, startTime: Date, phase: 'Succeeded' | 'Failed') {
    run.finished = true;
    await this.report(pod, run, startTime, phase);
  }

  private async report(pod: V1Pod, run: PodRun, startTime: Date, phase: string): Promise<void> {
    if (run.deleting || this.stopped) return;
    const statuses = (pod.spec?.containers ?? []).map(
      (c) =>
        run.statuses.get(c.name) ?? {
          name: c.name,
          image: c.image ?? '',
          imageID: '',
          ready: false,
          restartCount: 0,
          state: { waiting: { reason: 'PodInitializing' } },
        },
    );
    const ready = phase === 'Running' && statuses.every((s) => s.ready);
    const time = now();
    const condition = (type: string, status: boolean) => ({
      type,
      status: status ? 'True' : 'False',
      lastTransitionTime: time,
    });
    await this.setStatus(pod, {
      phase,
      hostIP: '127.0.0.1',
      hostIPs: [{ ip: '127.0.0.1' }],
      podIP: '127.0.0.1',
      podIPs: [{ ip: '127.0.0.1' }],
      startTime,
      conditions: [
        condition('PodScheduled', true),
        condition('Initialized', true),
        condition('ContainersReady', ready),
        condition('Ready', ready),
      ],
      containerStatuses: statuses,
    });
  }

  private async setStatus(pod: V1Pod, status: V1PodStatus): Promise<void> {
    await this.core.patchNamespacedPodStatus({
      name: pod.metadata?.name ?? '',
      namespace: pod.metadata?.namespace ?? '',
      body: [{ op: 'replace', path: '/status', value: status }],
    });
  }
}
