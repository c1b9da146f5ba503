import { readFileSync, statSync } from 'node:fs';
import type { RequestOptions } from 'node:https';
import { homedir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { errorMessage } from './errors.js';
import type { KubeAccess } from './http.js';

/**
 * The operator's own kubeconfig loader. @kubernetes/client-node's KubeConfig pulls in the whole
 * generated API client (its sources alone hold ~14 MB of the heap; ~35 MB resident in all), and
 * the operator needs only an address and credentials. Supported, in client-node's order: the
 * first file of KUBECONFIG, the in-cluster service account (the token file is read again when it
 * changes, since bound tokens rotate), ~/.kube/config. Credentials: CA, client certificate and
 * key (inline or as files), bearer token (inline or tokenFile). Exec plugins, auth providers and
 * basic auth are refused with a clear error instead of being half supported.
 */
export class KubeConfigError extends Error {
  readonly code = 'KUBECONFIG_UNSUPPORTED';
  constructor(message: string) {
    super(message);
    this.name = 'KubeConfigError';
  }
}

const SERVICE_ACCOUNT = '/var/run/secrets/kubernetes.io/serviceaccount';

interface Named {
  name: string;
}

interface ClusterEntry {
  server?: string;
  'certificate-authority'?: string;
  'certificate-authority-data'?: string;
  'insecure-skip-tls-verify'?: boolean;
  'tls-server-name'?: string;
}

interface UserEntry {
  'client-certificate'?: string;
  'client-certificate-data'?: string;
  'client-key'?: string;
  'client-key-data'?: string;
  token?: string;
  tokenFile?: string;
  exec?: unknown;
  'auth-provider'?: unknown;
  username?: string;
}

interface KubeconfigFile {
  clusters?: (Named & { cluster?: ClusterEntry })[];
  users?: (Named & { user?: UserEntry })[];
  contexts?: (Named & { context?: { cluster?: string; user?: string } })[];
  'current-context'?: string;
}

/** A token read from a file, read again when the file changes. */
class TokenFile {
  private token = '';
  private mtimeMs = -1;

  constructor(private readonly file: string) {}

  read(): string {
    const { mtimeMs } = statSync(this.file);
    if (mtimeMs !== this.mtimeMs) {
      this.token = readFileSync(this.file, 'utf8').trim();
      this.mtimeMs = mtimeMs;
    }
    return this.token;
  }
}

export class OperatorKubeConfig implements KubeAccess {
  private constructor(
    private readonly server: string,
    private readonly tls: Pick<
      RequestOptions,
      'ca' | 'cert' | 'key' | 'rejectUnauthorized' | 'servername'
    >,
    private readonly token?: () => string,
  ) {}

  getCurrentCluster(): { server: string } {
    return { server: this.server };
  }

  applyToHTTPSOptions(options: RequestOptions): Promise<void> {
    Object.assign(options, this.tls);
    if (this.token) {
      options.headers = { ...options.headers, Authorization: `Bearer ${this.token()}` };
    }
    return Promise.resolve();
  }

  /** As client-node's loadFromDefault: KUBECONFIG, then in-cluster, then ~/.kube/config. */
  static load(env: NodeJS.ProcessEnv = process.env): OperatorKubeConfig {
    const first = env.KUBECONFIG?.split(path.delimiter).find(Boolean);
    if (first) return OperatorKubeConfig.fromFile(first);
    if (env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT) {
      return OperatorKubeConfig.inCluster(env);
    }
    const home = path.join(homedir(), '.kube', 'config');
    try {
      statSync(home);
    } catch {
      throw new KubeConfigError(
        'no Kubernetes configuration: set KUBECONFIG, run in a cluster, or create ~/.kube/config',
      );
    }
    return OperatorKubeConfig.fromFile(home);
  }

  static inCluster(env: NodeJS.ProcessEnv, dir = SERVICE_ACCOUNT): OperatorKubeConfig {
    const host = env.KUBERNETES_SERVICE_HOST ?? '';
    // An IPv6 address is bracketed in a URL.
    const hostname = host.includes(':') ? `[${host}]` : host;
    const server = `https://${hostname}:${env.KUBERNETES_SERVICE_PORT}`;
    const tokens = new TokenFile(path.join(dir, 'token'));
    return new OperatorKubeConfig(server, { ca: readFileSync(path.join(dir, 'ca.crt')) }, () =>
      tokens.read(),
    );
  }

  static fromFile(file: string): OperatorKubeConfig {
    const base = path.dirname(file);
    let config: KubeconfigFile;
    try {
      config = (parse(readFileSync(file, 'utf8')) ?? {}) as KubeconfigFile;
    } catch (err) {
      throw new KubeConfigError(`cannot read kubeconfig ${file}: ${errorMessage(err)}`);
    }
    const contextName = config['current-context'];
    const context = config.contexts?.find((c) => c.name === contextName)?.context;
    if (!context) throw new KubeConfigError(`kubeconfig ${file}: no current context`);
    const cluster = config.clusters?.find((c) => c.name === context.cluster)?.cluster;
    if (!cluster?.server) {
      throw new KubeConfigError(`kubeconfig ${file}: cluster ${context.cluster} has no server`);
    }
    // Requests go out over https only: a plain-http server would fail every one, forever.
    if (!/^https:\/\//i.test(cluster.server)) {
      throw new KubeConfigError(
        `kubeconfig ${file}: cluster ${context.cluster} has server ${cluster.server}; the ` +
          'operator connects to the API server over https only',
      );
    }
    const user = config.users?.find((u) => u.name === context.user)?.user ?? {};
    const unsupported = (['exec', 'auth-provider', 'username'] as const).filter((k) => user[k]);
    if (unsupported.length > 0) {
      throw new KubeConfigError(
        `kubeconfig ${file}: user ${context.user} uses ${unsupported.join(', ')}, which the ` +
          'operator does not support; give it a client certificate or a token',
      );
    }
    const material = (data: string | undefined, at: string | undefined) =>
      data !== undefined
        ? Buffer.from(data, 'base64')
        : at !== undefined
          ? readFileSync(path.resolve(base, at))
          : undefined;
    const tls: Pick<RequestOptions, 'ca' | 'cert' | 'key' | 'rejectUnauthorized' | 'servername'> =
      {};
    const ca = material(cluster['certificate-authority-data'], cluster['certificate-authority']);
    const cert = material(user['client-certificate-data'], user['client-certificate']);
    const key = material(user['client-key-data'], user['client-key']);
    if (ca) tls.ca = ca;
    if (cert) tls.cert = cert;
    if (key) tls.key = key;
    if (cluster['insecure-skip-tls-verify']) tls.rejectUnauthorized = false;
    if (cluster['tls-server-name']) tls.servername = cluster['tls-server-name'];
    let token: (() => string) | undefined;
    if (user.token) {
      const value = user.token;
      token = () => value;
    } else if (user.tokenFile) {
      const tokens = new TokenFile(path.resolve(base, user.tokenFile));
      token = () => tokens.read();
    }
    return new OperatorKubeConfig(cluster.server, tls, token);
  }
}
