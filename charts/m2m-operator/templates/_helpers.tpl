{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "m2m-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Name of every object of the release. Release `m2m-operator` of chart `m2m-operator` gives
`m2m-operator`: the ServiceAccount is then system:serviceaccount:<namespace>:m2m-operator.
*/}}
{{- define "m2m-operator.fullname" -}}
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

{{- define "m2m-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "m2m-operator.labels" -}}
helm.sh/chart: {{ include "m2m-operator.chart" . }}
{{ include "m2m-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: m2m-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the operator's pods (immutable in a Deployment: never change them). */}}
{{- define "m2m-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "m2m-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The container image: by digest when one is given, else by tag (default: appVersion). */}}
{{- define "m2m-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The issuer: the value, or the in-cluster URL of the token Service (fine for trying the chart out,
wrong for production: clients outside the cluster and verifiers need the public https URL).
*/}}
{{- define "m2m-operator.issuer" -}}
{{- if .Values.issuer }}
{{- .Values.issuer }}
{{- else }}
{{- $scheme := ternary "https" "http" .Values.tls.enabled }}
{{- $defaultPort := ternary 443 80 .Values.tls.enabled }}
{{- $host := printf "%s.%s.svc" (include "m2m-operator.fullname" .) .Release.Namespace }}
{{- if eq (int .Values.service.port) $defaultPort }}
{{- printf "%s://%s" $scheme $host }}
{{- else }}
{{- printf "%s://%s:%d" $scheme $host (int .Values.service.port) }}
{{- end }}
{{- end }}
{{- end }}

{{/* Where the token listener's certificate and key are mounted when tls.enabled. */}}
{{- define "m2m-operator.tlsDir" -}}
/etc/m2m-operator/tls
{{- end }}

{{/* The fewest replicas the release runs: replicaCount, or autoscaling.minReplicas. */}}
{{- define "m2m-operator.minReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.minReplicas }}{{ else }}{{ .Values.replicaCount }}{{ end }}
{{- end }}

{{/* The most replicas the release runs: replicaCount, or autoscaling.maxReplicas. */}}
{{- define "m2m-operator.maxReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.maxReplicas }}{{ else }}{{ .Values.replicaCount }}{{ end }}
{{- end }}
