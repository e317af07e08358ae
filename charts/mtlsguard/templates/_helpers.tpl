{{/* Name of the chart's objects, as in `helm create`. */}}
{{- define "mtlsguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified name of the release's objects: the release name when it
already contains the chart name (`helm install mtlsguard` gives "mtlsguard",
the name manifests/ uses), else <release>-<chart>.
*/}}
{{- define "mtlsguard.fullname" -}}
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

{{- define "mtlsguard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mtlsguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mtlsguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mtlsguard.labels" -}}
helm.sh/chart: {{ include "mtlsguard.chart" . }}
{{ include "mtlsguard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The image: repository@digest when a digest is set, else repository:tag. */}}
{{- define "mtlsguard.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Secret holding the serving certificate (tls.crt, tls.key). */}}
{{- define "mtlsguard.servingSecret" -}}
{{- if .Values.certManager.enabled }}
{{- printf "%s-serving-tls" (include "mtlsguard.fullname" .) }}
{{- else }}
{{- required "tls.existingSecret is required when certManager.enabled is false" .Values.tls.existingSecret }}
{{- end }}
{{- end }}

{{/*
A Secret that cert-manager fills, declared by the chart so that `helm
uninstall` deletes it: cert-manager, unless run with
--enable-certificate-owner-ref, leaves the Secrets of a deleted Certificate
behind. It has no data in the chart, so neither Helm's three-way merge nor
server-side apply ever touches what cert-manager writes; and it is Opaque
(cert-manager keeps an existing Secret's type), because an empty
kubernetes.io/tls Secret makes the API server warn. Argument: (list $ name).
*/}}
{{- define "mtlsguard.certManagerSecret" -}}
{{- $ := index . 0 }}
{{- $name := index . 1 }}
apiVersion: v1
kind: Secret
metadata:
  name: {{ $name }}
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "mtlsguard.labels" $ | nindent 4 }}
type: Opaque
{{- end }}

{{/*
config.decisionTimeout, checked against webhook.timeoutSeconds: a decision
deadline at or past the API server's timeout would leave a slow decision to
failurePolicy instead of --on-timeout. The schema allows only <number>ms and
<number>s, so the milliseconds are read here without parsing Go durations.
*/}}
{{- define "mtlsguard.decisionTimeout" -}}
{{- $d := toString .Values.config.decisionTimeout }}
{{- $ms := 0.0 }}
{{- if hasSuffix "ms" $d }}
{{- $ms = trimSuffix "ms" $d | float64 }}
{{- else }}
{{- $ms = mulf (trimSuffix "s" $d | float64) 1000 }}
{{- end }}
{{- if le $ms 0.0 }}
{{- fail (printf "config.decisionTimeout %q: must be above zero" $d) }}
{{- end }}
{{- if ge $ms (mulf .Values.webhook.timeoutSeconds 1000) }}
{{- fail (printf "config.decisionTimeout %q: must be below webhook.timeoutSeconds (%vs), so that mtlsguard answers before the API server gives up" $d .Values.webhook.timeoutSeconds) }}
{{- end }}
{{- $d }}
{{- end }}
