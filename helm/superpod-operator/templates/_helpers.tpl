{{/* Names, labels and small values shared by the templates. */}}

{{/* The chart name, or nameOverride. */}}
{{- define "superpod-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The resource name prefix: fullnameOverride, else the release name plus the chart name unless it already contains it. */}}
{{- define "superpod-operator.fullname" -}}
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

{{- define "superpod-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the operator pods; never change them, Deployment selectors are immutable. */}}
{{- define "superpod-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "superpod-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "superpod-operator.labels" -}}
helm.sh/chart: {{ include "superpod-operator.chart" . }}
{{ include "superpod-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: superpod-operator
{{- end }}

{{- define "superpod-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "superpod-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator's username as the API server sees it (its ServiceAccount): what the admission policies allow. */}}
{{- define "superpod-operator.username" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "superpod-operator.serviceAccountName" .) }}
{{- end }}

{{/* repository:tag[@digest]; the tag defaults to the chart's appVersion. */}}
{{- define "superpod-operator.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The Secret of type kubernetes.io/tls the webhook serves with (chart-generated or cert-manager's). */}}
{{- define "superpod-operator.webhookSecretName" -}}
{{- printf "%s-webhook-tls" (include "superpod-operator.fullname" .) }}
{{- end }}

{{- define "superpod-operator.webhookCertificateName" -}}
{{- printf "%s-webhook" (include "superpod-operator.fullname" .) }}
{{- end }}

{{/* The DNS names the API server uses to reach the webhook Service. */}}
{{- define "superpod-operator.webhookDNSNames" -}}
{{- $svc := include "superpod-operator.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.clusterDomain) | toJson }}
{{- end }}

{{/* Where the TLS Secret is mounted; the file names follow the kubernetes.io/tls convention. */}}
{{- define "superpod-operator.tlsDir" -}}
/etc/superpod/tls
{{- end }}

{{/* The kopf peering kind: cluster-wide when the operator serves all namespaces, namespaced otherwise. */}}
{{- define "superpod-operator.peeringKind" -}}
{{- if .Values.operator.watchNamespace }}KopfPeering{{ else }}ClusterKopfPeering{{ end }}
{{- end }}

{{/* true when the CRD of that peering kind ships with the chart or is already served. */}}
{{- define "superpod-operator.peeringCRDAvailable" -}}
{{- $kind := include "superpod-operator.peeringKind" . }}
{{- $file := printf "crds/kopf.dev_%ss.yaml" (lower $kind) }}
{{- if or (.Files.Get $file) (.Capabilities.APIVersions.Has (printf "kopf.dev/v1/%s" $kind)) -}}
true
{{- end }}
{{- end }}

{{/* RBAC rules for what the operator does in the namespaces it serves (rbac.yaml: a ClusterRole's when it serves
all, a Role's in operator.watchNamespace). */}}
{{- define "superpod-operator.namespacedRules" }}
  # Partitions: watched, finalizers and status patched, read one by one when a pod asks the webhook for a slot.
  - apiGroups: ["superpod.dev"]
    resources: ["superpodpartitions"]
    verbs: ["get", "list", "watch", "patch"]
  - apiGroups: ["superpod.dev"]
    resources: ["superpodpartitions/status"]
    verbs: ["patch"]
  # Training pods: bound at admission by the webhook, watched for the device plugin's annotations; read one by
  # one when a pod holding a slot leaves the watch, and when a binding to a member node names an unseen pod.
  - apiGroups: [""]
    resources: ["pods"]
    verbs: ["get", "list", "watch"]
  # Evictions (PodDisruptionBudgets honoured, never bypassed by a delete): a preempted partition's pods before its
  # devices go to the preemptor; a deleted partition's pods with deletionPolicy EvictPods.
  - apiGroups: [""]
    resources: ["pods/eviction"]
    verbs: ["create"]
  # HCCL rank tables, written in the partitions' namespaces; read back when one exists already; deleted once a
  # deleted partition's pods are gone (in-use protection; ownerReferences are the garbage collector's fallback).
  - apiGroups: [""]
    resources: ["configmaps"]
    verbs: ["get", "create", "patch", "delete"]
{{- end }}
