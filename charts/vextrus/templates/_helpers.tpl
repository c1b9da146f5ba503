{{/*
vextrus.name: the chart name, or nameOverride.
*/}}
{{- define "vextrus.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
vextrus.fullname: prefix of every resource name; the release name alone when it already
contains the chart name (so `helm install vextrus` gives `vextrus-auth`, not `vextrus-vextrus-auth`).
*/}}
{{- define "vextrus.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
vextrus.chart: chart name and version, for the helm.sh/chart label.
*/}}
{{- define "vextrus.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
vextrus.selectorLabels: the labels that select a component's Pods. They never change between
releases (a Deployment's selector is immutable). Call with (dict "ctx" $ "component" "auth").
*/}}
{{- define "vextrus.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vextrus.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
vextrus.labels: every resource's labels: the selector labels plus version, manager and part-of.
Call with (dict "ctx" $ "component" "auth").
*/}}
{{- define "vextrus.labels" -}}
helm.sh/chart: {{ include "vextrus.chart" .ctx }}
{{ include "vextrus.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: vextrus
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
vextrus.image: an image reference from a component's image values, with the global registry and
the tag fallbacks (component tag, image.tag, appVersion). Call with (dict "ctx" $ "image" .image).
*/}}
{{- define "vextrus.image" -}}
{{- $tag := .image.tag | default .ctx.Values.image.tag | default .ctx.Chart.AppVersion }}
{{- $repository := .image.repository }}
{{- with .ctx.Values.global.imageRegistry }}
{{- $repository = printf "%s/%s" . $repository }}
{{- end }}
{{- printf "%s:%s" $repository (toString $tag) }}
{{- end }}

{{/*
vextrus.podSecurityContext: every Pod runs as a non-root user with the RuntimeDefault seccomp
profile. The images' user is 10001 (see the Dockerfiles).
*/}}
{{- define "vextrus.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid | default 10001 }}
runAsGroup: {{ .uid | default 10001 }}
fsGroup: {{ .uid | default 10001 }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
vextrus.containerSecurityContext: every container: read-only root filesystem, no privilege
escalation, all capabilities dropped.
*/}}
{{- define "vextrus.containerSecurityContext" -}}
runAsNonRoot: true
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
vextrus.imagePullSecrets: the Pod's pull secrets from global.imagePullSecrets.
*/}}
{{- define "vextrus.imagePullSecrets" -}}
{{- with .Values.global.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/*
vextrus.databaseHost: the PostgreSQL host: the development StatefulSet's Service, or
database.host (required then).
*/}}
{{- define "vextrus.databaseHost" -}}
{{- if .Values.postgresql.enabled }}
{{- printf "%s-postgresql" (include "vextrus.fullname" .) }}
{{- else }}
{{- required "database.host is required: the host of your PostgreSQL (or set postgresql.enabled=true for a development one)" .Values.database.host }}
{{- end }}
{{- end }}

{{/*
vextrus.databaseSecretName: the Secret holding a role's DATABASE_* keys: its existingSecret, or
the chart's own. Call with (dict "ctx" $ "role" "owner").
*/}}
{{- define "vextrus.databaseSecretName" -}}
{{- $role := index .ctx.Values.database.roles .role }}
{{- if $role.existingSecret }}
{{- $role.existingSecret }}
{{- else }}
{{- printf "%s-database-%s" (include "vextrus.fullname" .ctx) .role }}
{{- end }}
{{- end }}

{{/*
vextrus.signingKeysSecretName: the Secret of the JWT signing keys.
*/}}
{{- define "vextrus.signingKeysSecretName" -}}
{{- default (printf "%s-auth-signing-keys" (include "vextrus.fullname" .)) .Values.auth.signingKeys.existingSecret }}
{{- end }}

{{/*
vextrus.databaseEnv: a container's connection to PostgreSQL as one role: host, port, name and
sslmode from the values, login and password from the role's Secret (so an existingSecret needs
only DATABASE_USERNAME and DATABASE_PASSWORD). Call with (dict "ctx" $ "role" "app").
*/}}
{{- define "vextrus.databaseEnv" -}}
- name: DATABASE_HOST
  value: {{ include "vextrus.databaseHost" .ctx | quote }}
- name: DATABASE_PORT
  value: {{ .ctx.Values.database.port | quote }}
- name: DATABASE_NAME
  value: {{ .ctx.Values.database.name | quote }}
- name: DATABASE_SSLMODE
  value: {{ .ctx.Values.database.sslmode | quote }}
- name: DATABASE_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ include "vextrus.databaseSecretName" . }}
      key: DATABASE_USERNAME
- name: DATABASE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "vextrus.databaseSecretName" . }}
      key: DATABASE_PASSWORD
{{- end }}

{{/*
vextrus.roleEnv: the platform's role names, which the operator and vextrus-migrate read.
*/}}
{{- define "vextrus.roleEnv" -}}
- name: VEXTRUS_OWNER_ROLE
  value: {{ .Values.database.roles.owner.username | quote }}
- name: VEXTRUS_APP_ROLE
  value: {{ .Values.database.roles.app.username | quote }}
- name: VEXTRUS_RETENTION_ROLE
  value: {{ .Values.database.roles.retention.username | quote }}
- name: VEXTRUS_TENANT_ROLE_PREFIX
  value: {{ .Values.database.tenantRolePrefix | quote }}
{{- end }}

{{/*
vextrus.tmpVolume: the writable /tmp every read-only container gets.
*/}}
{{- define "vextrus.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}

{{/*
vextrus.passwordOf: a role's password: the value given, else the one in the Secret of the
previous release (lookup), else a new random one. Call with (dict "ctx" $ "secret" NAME "given" V).
*/}}
{{- define "vextrus.passwordOf" -}}
{{- if .given }}
{{- .given }}
{{- else }}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace .secret }}
{{- if and $existing $existing.data (hasKey $existing.data "DATABASE_PASSWORD") }}
{{- index $existing.data "DATABASE_PASSWORD" | b64dec }}
{{- else }}
{{- randAlphaNum 32 }}
{{- end }}
{{- end }}
{{- end }}

{{/*
vextrus.operatorServiceAccount: the operator's ServiceAccount name.
*/}}
{{- define "vextrus.operatorServiceAccount" -}}
{{- default (printf "%s-operator" (include "vextrus.fullname" .)) .Values.operator.serviceAccount.name }}
{{- end }}

{{/*
vextrus.validate: fails, naming the value, on settings the values schema cannot refuse and the API
server or the cluster would: labels the chart sets itself, autoscaler bounds, disruption budgets
that block every drain, and resource names longer than Kubernetes allows or not starting with a
letter.
*/}}
{{- define "vextrus.validate" -}}
{{- $reserved := list "helm.sh/chart" "app.kubernetes.io/name" "app.kubernetes.io/instance" "app.kubernetes.io/component" "app.kubernetes.io/version" "app.kubernetes.io/managed-by" "app.kubernetes.io/part-of" }}
{{- range $key, $labels := dict "commonLabels" .Values.commonLabels "serviceMonitor.labels" .Values.serviceMonitor.labels }}
{{- range $label := $reserved }}
{{- if hasKey $labels $label }}
{{- fail (printf "%s may not set %s: the chart sets it, and the selectors depend on it" $key $label) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and .Values.organization.enabled (not .Values.auth.enabled) }}
{{- fail "organization.enabled needs auth.enabled: the organization service verifies every token with the keys the auth service of this release publishes" }}
{{- end }}
{{- range $component := list "auth" "organization" }}
{{- $values := index $.Values $component }}
{{- if $values.enabled }}
{{- $replicas := $values.replicaCount }}
{{- if $values.autoscaling.enabled }}
{{- $replicas = $values.autoscaling.minReplicas }}
{{- if gt (int $values.autoscaling.minReplicas) (int $values.autoscaling.maxReplicas) }}
{{- fail (printf "%s.autoscaling.minReplicas (%v) is above %s.autoscaling.maxReplicas (%v)" $component $values.autoscaling.minReplicas $component $values.autoscaling.maxReplicas) }}
{{- end }}
{{- end }}
{{- if and $values.pdb.enabled (ge (int $values.pdb.minAvailable) (int $replicas)) }}
{{- fail (printf "%s.pdb.minAvailable (%v) must be below the %v replicas, or no node running them can be drained: lower it, add replicas, or set %s.pdb.enabled=false" $component $values.pdb.minAvailable $replicas $component) }}
{{- end }}
{{- end }}
{{- end }}
{{- /* Services are DNS labels (63); a CronJob's Jobs append 11 characters and a StatefulSet's
Pods carry a revision hash label, so both stop at 52; a Job's name is a label value (63). */}}
{{- $fullname := include "vextrus.fullname" . }}
{{- if not (regexMatch "^[a-z]" $fullname) }}
{{- fail (printf "the name prefix %s must start with a letter, as Service names must: set fullnameOverride to a prefix that does, or choose a release name that does" $fullname) }}
{{- end }}
{{- $names := dict "-auth" 63 "-organization" 63 "-operator-metrics" 63 "-migrate-platform" 63 }}
{{- if .Values.auditRetention.enabled }}
{{- $_ := set $names "-audit-retention" 52 }}
{{- end }}
{{- if .Values.postgresql.enabled }}
{{- $_ := set $names "-postgresql" 52 }}
{{- end }}
{{- range $suffix, $limit := $names }}
{{- $name := printf "%s%s" $fullname $suffix }}
{{- if gt (len $name) (int $limit) }}
{{- fail (printf "the name %s is %d characters, more than the %d Kubernetes allows: set fullnameOverride to a prefix of at most %d characters, or choose a shorter release name" $name (len $name) (int $limit) (sub (int $limit) (len $suffix))) }}
{{- end }}
{{- end }}
{{- end }}
