{{/* Names, labels, and the pieces every pod of the chart shares. */}}

{{- define "ctm-hub.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ctm-hub.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "ctm-hub.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ctm-hub.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ctm-hub.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ctm-hub.labels" -}}
helm.sh/chart: {{ include "ctm-hub.chart" . }}
{{ include "ctm-hub.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ctm-hub
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "api"). */}}
{{- define "ctm-hub.componentSelectorLabels" -}}
{{ include "ctm-hub.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ctm-hub.componentLabels" -}}
{{ include "ctm-hub.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ctm-hub.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ctm-hub.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "ctm-hub.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) -}}
{{- end -}}

{{/* The Secret every pod reads; the render stops here when none is named. */}}
{{- define "ctm-hub.secretName" -}}
{{- required "secrets.existingSecret is required: create a Secret holding HUB_DATABASE_URL, HUB_REDIS_URL and HUB_MASTER_KEYS (README: Running at scale) and pass --set secrets.existingSecret=NAME" .Values.secrets.existingSecret -}}
{{- end -}}

{{/*
The non-secret HUB_* settings as a YAML map: the ConfigMap's data, and the migration hook's
env (a pre-install hook runs before the ConfigMap exists), so every process reads the same.
*/}}
{{- define "ctm-hub.config" -}}
{{- $c := .Values.config -}}
{{- if eq (trimSuffix "/" $c.ctmSandboxUrl) (trimSuffix "/" $c.ctmProductionUrl) -}}
{{- fail "config.ctmProductionUrl must differ from config.ctmSandboxUrl (the hub refuses to start)" -}}
{{- end -}}
{{- if le (int64 .Values.worker.terminationGracePeriodSeconds) (add (int64 $c.workerShutdownGraceSeconds) 10) -}}
{{- fail "worker.terminationGracePeriodSeconds must exceed config.workerShutdownGraceSeconds by more than 10 s (the worker then closes its connections)" -}}
{{- end -}}
HUB_ENV: "production"
HUB_DATA_DIR: "/var/lib/ctm-hub"
HUB_PUBLIC_URL: {{ $c.publicUrl | quote }}
HUB_CTM_SANDBOX_URL: {{ $c.ctmSandboxUrl | quote }}
HUB_CTM_PRODUCTION_URL: {{ $c.ctmProductionUrl | quote }}
HUB_LOG_LEVEL: {{ $c.logLevel | quote }}
HUB_LOG_FORMAT: {{ $c.logFormat | quote }}
HUB_OUTBOX_SWEEP_AFTER_SECONDS: {{ int64 $c.outboxSweepAfterSeconds | quote }}
HUB_KEY_VERSION_GRACE_HOURS: {{ int64 $c.keyVersionGraceHours | quote }}
HUB_SYNC_INTERVAL_MINUTES: {{ int64 $c.syncIntervalMinutes | quote }}
HUB_SYNC_OVERLAP_DAYS: {{ int64 $c.syncOverlapDays | quote }}
HUB_SYNC_FIRST_WINDOW_DAYS: {{ int64 $c.syncFirstWindowDays | quote }}
HUB_DEADLINE_IMMEDIATE_DAYS: {{ int64 $c.deadlineImmediateDays | quote }}
HUB_DEADLINE_STANDARD_DAYS: {{ int64 $c.deadlineStandardDays | quote }}
HUB_DUE_SOON_HOURS: {{ int64 $c.dueSoonHours | quote }}
HUB_SMTP_FROM: {{ $c.smtpFrom | quote }}
HUB_WEBHOOK_ALLOW_HTTP_HOSTS: {{ $c.webhookAllowHttpHosts | quote }}
HUB_WEBHOOK_ALLOW_PRIVATE_NETWORKS: {{ $c.webhookAllowPrivateNetworks | toString | quote }}
HUB_WEBHOOK_RETRY_SCHEDULE: {{ $c.webhookRetrySchedule | quote }}
HUB_WEBHOOK_TIMEOUT_SECONDS: {{ $c.webhookTimeoutSeconds | toString | quote }}
HUB_WEBHOOK_DISABLE_AFTER_DAYS: {{ $c.webhookDisableAfterDays | toString | quote }}
HUB_WEBHOOK_SECRET_GRACE_HOURS: {{ $c.webhookSecretGraceHours | toString | quote }}
HUB_WORKER_SHUTDOWN_GRACE_SECONDS: {{ int64 $c.workerShutdownGraceSeconds | quote }}
HUB_PORTAL_IDLE_MINUTES: {{ int64 $c.portalIdleMinutes | quote }}
HUB_PORTAL_SESSION_HOURS: {{ int64 $c.portalSessionHours | quote }}
HUB_PORTAL_REQUIRE_TWO_STEP: {{ $c.portalRequireTwoStep | toString | quote }}
{{- end -}}

{{/* The secret variables, each a reference to a key of the existing Secret. */}}
{{- define "ctm-hub.secretEnv" -}}
{{- $secret := include "ctm-hub.secretName" . -}}
{{- $keys := .Values.secrets.keys -}}
{{- $vars := dict "HUB_DATABASE_URL" $keys.databaseUrl "HUB_REDIS_URL" $keys.redisUrl "HUB_MASTER_KEYS" $keys.masterKeys -}}
{{- if $keys.smtpUrl -}}
{{- $_ := set $vars "HUB_SMTP_URL" $keys.smtpUrl -}}
{{- end -}}
{{- if .Values.metrics.enabled -}}
{{- $_ := set $vars "HUB_METRICS_TOKEN" (required "secrets.keys.metricsToken is required when metrics.enabled is true" $keys.metricsToken) -}}
{{- end -}}
{{- range $name := keys $vars | sortAlpha }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ get $vars $name }}
{{- end }}
{{- end -}}

{{/* Checksum of the rendered settings: a change rolls every pod. */}}
{{- define "ctm-hub.configChecksum" -}}
{{- include "ctm-hub.config" . | sha256sum -}}
{{- end -}}

{{/* Pod annotations of a component: (dict "root" $ "component" .Values.api). */}}
{{- define "ctm-hub.podAnnotations" -}}
checksum/config: {{ include "ctm-hub.configChecksum" .root }}
{{- with .root.Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- with .component.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "ctm-hub.podLabels" -}}
{{- with .root.Values.podLabels }}
{{ toYaml . }}
{{- end }}
{{- with .component.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "ctm-hub.imagePullSecrets" -}}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The scratch volumes: the root filesystem is read-only. */}}
{{- define "ctm-hub.volumes" -}}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: {{ .Values.tmpVolume.sizeLimit }}
  - name: data
    emptyDir:
      sizeLimit: {{ .Values.dataVolume.sizeLimit }}
{{- end -}}

{{- define "ctm-hub.volumeMounts" -}}
volumeMounts:
  - name: tmp
    mountPath: /tmp
  - name: data
    mountPath: /var/lib/ctm-hub
{{- end -}}

{{/* Scheduling of a component: (dict "root" $ "component" .Values.api "name" "api"). */}}
{{- define "ctm-hub.scheduling" -}}
{{- with .component.nodeSelector }}
nodeSelector:
{{ toYaml . | indent 2 }}
{{- end }}
{{- with .component.tolerations }}
tolerations:
{{ toYaml . | indent 2 }}
{{- end }}
{{- with .component.affinity }}
affinity:
{{ toYaml . | indent 2 }}
{{- end }}
{{- $selector := fromYaml (include "ctm-hub.componentSelectorLabels" (dict "root" .root "component" .name)) -}}
{{- with .component.topologySpreadConstraints }}
topologySpreadConstraints:
{{- range . }}
{{- $constraint := deepCopy . }}
{{- if not (hasKey $constraint "labelSelector") }}
{{- $_ := set $constraint "labelSelector" (dict "matchLabels" $selector) }}
{{- end }}
  - {{ toYaml $constraint | indent 4 | trim }}
{{- end }}
{{- end }}
{{- end -}}
