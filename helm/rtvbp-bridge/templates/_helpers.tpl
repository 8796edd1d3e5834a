{{/*
Chart name, truncated to the 63 characters a DNS label allows.
*/}}
{{- define "rtvbp-bridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name; the release name alone when it already contains the chart name.
*/}}
{{- define "rtvbp-bridge.fullname" -}}
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

{{- define "rtvbp-bridge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Image tag: the chart's appVersion unless overridden.
*/}}
{{- define "rtvbp-bridge.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "rtvbp-bridge.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "rtvbp-bridge.imageTag" .) }}
{{- end }}
{{- end }}

{{/*
Selector labels: stable for the life of the release (a Deployment selector is immutable).
*/}}
{{- define "rtvbp-bridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rtvbp-bridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Standard labels on every object.
*/}}
{{- define "rtvbp-bridge.labels" -}}
helm.sh/chart: {{ include "rtvbp-bridge.chart" . }}
{{ include "rtvbp-bridge.selectorLabels" . }}
app.kubernetes.io/version: {{ include "rtvbp-bridge.imageTag" . | replace "+" "_" | replace "@" "_" | replace ":" "_" | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: bridge
app.kubernetes.io/part-of: rtvbp
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "rtvbp-bridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rtvbp-bridge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Name of the Secret the chart creates (secret.create) from explicit values.
*/}}
{{- define "rtvbp-bridge.secretName" -}}
{{- printf "%s-secrets" (include "rtvbp-bridge.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Where a secret-bearing variable comes from: an existing Secret named in values wins, otherwise the
chart-created Secret when it holds that value, otherwise nothing ("").
Call with (dict "ctx" $ "existing" <name> "created" <value set in secret.*>).
*/}}
{{- define "rtvbp-bridge.secretSource" -}}
{{- if .existing }}
{{- .existing }}
{{- else if and .ctx.Values.secret.create .created }}
{{- include "rtvbp-bridge.secretName" .ctx }}
{{- end }}
{{- end }}

{{- define "rtvbp-bridge.amqpSecret" -}}
{{- include "rtvbp-bridge.secretSource" (dict "ctx" . "existing" .Values.amqp.existingSecret "created" .Values.secret.amqpUrl) }}
{{- end }}

{{- define "rtvbp-bridge.tokensSecret" -}}
{{- include "rtvbp-bridge.secretSource" (dict "ctx" . "existing" .Values.auth.tokens.existingSecret "created" .Values.secret.authTokens) }}
{{- end }}

{{- define "rtvbp-bridge.jwtKeysSecret" -}}
{{- include "rtvbp-bridge.secretSource" (dict "ctx" . "existing" .Values.auth.jwt.publicKeys.existingSecret "created" .Values.secret.jwtPublicKeys) }}
{{- end }}

{{/*
Refuse values that would deploy a bridge that cannot work or would be cut off mid-call. The bridge
itself refuses most of these at start-up too, but a failed render is seen before anything rolls out.
*/}}
{{- define "rtvbp-bridge.validate" -}}
{{- $drain := int .Values.config.drainTimeoutSeconds }}
{{- $preStop := int .Values.lifecycle.preStopSleepSeconds }}
{{- $grace := int .Values.terminationGracePeriodSeconds }}
{{- /* After the drain timeout the bridge ends the calls left (up to 10 s), closes their sockets (5 s) and
     flushes their session.ended to the broker (5 s): 20 s that must fit in the grace period too. */}}
{{- if lt $grace (add $drain $preStop 20) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be at least config.drainTimeoutSeconds (%d) + lifecycle.preStopSleepSeconds (%d) + 20 s to end the remaining calls and publish their session.ended, or live calls are killed before they drain" $grace $drain $preStop) }}
{{- end }}
{{- if lt (int .Values.config.wsPingTimeoutSeconds) (int .Values.config.wsPingIntervalSeconds) }}
{{- fail "config.wsPingTimeoutSeconds must be at least config.wsPingIntervalSeconds" }}
{{- end }}
{{- if not (include "rtvbp-bridge.amqpSecret" .) }}
{{- fail "the broker URL must come from a Secret: set amqp.existingSecret, or secret.create=true with secret.amqpUrl" }}
{{- end }}
{{- $mode := .Values.auth.mode }}
{{- if and (eq $mode "token") (not (include "rtvbp-bridge.tokensSecret" .)) }}
{{- fail "auth.mode=token needs auth.tokens.existingSecret, or secret.create=true with secret.authTokens" }}
{{- end }}
{{- if eq $mode "jwt" }}
{{- if not (or (include "rtvbp-bridge.jwtKeysSecret" .) .Values.auth.jwt.keysSecret.name) }}
{{- fail "auth.mode=jwt needs auth.jwt.publicKeys.existingSecret, auth.jwt.keysSecret.name, or secret.create=true with secret.jwtPublicKeys" }}
{{- end }}
{{- if not .Values.auth.jwt.accounts }}
{{- fail "auth.mode=jwt needs auth.jwt.accounts (the allowed aud values)" }}
{{- end }}
{{- end }}
{{- if and (eq $mode "none") (not .Values.auth.allowInsecure) }}
{{- fail "auth.mode=none accepts unauthenticated calls on the pod IP; use token or jwt, or set auth.allowInsecure=true (never in production)" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled=true (the bridge serves /metrics only then)" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- if and .Values.otel.enabled (not .Values.otel.endpoint) }}
{{- fail "otel.enabled needs otel.endpoint (the OTLP collector URL)" }}
{{- end }}
{{- end }}

{{/*
OTEL_RESOURCE_ATTRIBUTES: the pod's identity (expanded by the kubelet from the env above) plus
otel.resourceAttributes.
*/}}
{{- define "rtvbp-bridge.otelResourceAttributes" -}}
{{- $attrs := list "k8s.pod.name=$(POD_NAME)" "k8s.namespace.name=$(POD_NAMESPACE)" }}
{{- range $k, $v := .Values.otel.resourceAttributes }}
{{- $attrs = append $attrs (printf "%s=%s" $k $v) }}
{{- end }}
{{- join "," $attrs }}
{{- end }}

{{/*
A list as comma-separated text. Helm reads numbers in values files as float64, which would print a
numeric account id such as 98765432101 as 9.8765432101e+10: whole numbers are printed as integers.
*/}}
{{- define "rtvbp-bridge.commaList" -}}
{{- $items := list }}
{{- range . }}
{{- if or (kindIs "float64" .) (kindIs "int64" .) (kindIs "int" .) }}
{{- $items = append $items (printf "%d" (int64 .)) }}
{{- else }}
{{- $items = append $items (toString .) }}
{{- end }}
{{- end }}
{{- join "," $items }}
{{- end }}
