{{/* Chart name, truncated to the 63 characters a DNS label allows. */}}
{{- define "sigreward.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name, prefixed with the chart name unless it contains it. */}}
{{- define "sigreward.fullname" -}}
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

{{- define "sigreward.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sigreward.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sigreward.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sigreward.labels" -}}
helm.sh/chart: {{ include "sigreward.chart" . }}
{{ include "sigreward.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "sigreward.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sigreward.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sigreward.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* "true" when the server uses the shared PostgreSQL store, else "". */}}
{{- define "sigreward.usesPostgres" -}}
{{- if or .Values.database.url .Values.database.existingSecret }}true{{ end }}
{{- end }}

{{/* "true" when the chart creates the Secret (for a database URL or API keys given as values). */}}
{{- define "sigreward.createsSecret" -}}
{{- if or .Values.database.url .Values.apiKeys.keys }}true{{ end }}
{{- end }}

{{/* The most pods this release can run at once. */}}
{{- define "sigreward.maxPods" -}}
{{- if .Values.autoscaling.enabled }}
{{- .Values.autoscaling.maxReplicas | int }}
{{- else }}
{{- .Values.replicaCount | int }}
{{- end }}
{{- end }}

{{- define "sigreward.terminationGracePeriodSeconds" -}}
{{- add (.Values.preStopSleepSeconds | int) (.Values.drainTimeoutSeconds | int) (.Values.terminationGraceMarginSeconds | int) }}
{{- end }}

{{/*
Rules that values.schema.json cannot express. Rendering fails with the reason, so a release
that would split or lose state is never applied.
*/}}
{{- define "sigreward.validate" -}}
{{- $maxPods := include "sigreward.maxPods" . | int }}
{{- if and (gt $maxPods 1) (not (include "sigreward.usesPostgres" .)) }}
{{- fail (printf "sigreward: %d replicas (replicaCount, or autoscaling.maxReplicas when autoscaling.enabled) need the PostgreSQL store: set database.url or database.existingSecret. With the SQLite store each replica would have its own SQLite file and its own schedule, so the steps of one run would be split across replicas and get different k and rewards." $maxPods) }}
{{- end }}
{{- if and .Values.database.url .Values.database.existingSecret }}
{{- fail "sigreward: set either database.url or database.existingSecret, not both" }}
{{- end }}
{{- if and .Values.apiKeys.keys .Values.apiKeys.existingSecret }}
{{- fail "sigreward: set either apiKeys.keys or apiKeys.existingSecret, not both" }}
{{- end }}
{{- if and .Values.model.pvc.subPath (not .Values.model.pvc.claimName) }}
{{- fail "sigreward: model.pvc.subPath is set but model.pvc.claimName is empty" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (.Values.autoscaling.minReplicas | int) (.Values.autoscaling.maxReplicas | int)) }}
{{- fail (printf "sigreward: autoscaling.minReplicas (%d) is above autoscaling.maxReplicas (%d)" (.Values.autoscaling.minReplicas | int) (.Values.autoscaling.maxReplicas | int)) }}
{{- end }}
{{- end }}

{{/* SIGREWARD_MODEL, or "" to leave the image's default in place. */}}
{{- define "sigreward.modelPath" -}}
{{- if .Values.model.path }}
{{- .Values.model.path }}
{{- else if .Values.model.pvc.claimName }}
{{- .Values.model.pvc.mountPath }}
{{- end }}
{{- end }}
