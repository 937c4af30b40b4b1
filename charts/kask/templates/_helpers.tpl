{{/* The release's base name: the release name, with the chart's name when it lacks it. */}}
{{- define "kask.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 54 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 54 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The operator's Deployment, Lease and RBAC objects. */}}
{{- define "kask.operatorName" -}}
{{- printf "%s-operator" (include "kask.fullname" .) -}}
{{- end -}}

{{- define "kask.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kask.operatorName" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Selects the operator's pods; never changes between upgrades. */}}
{{- define "kask.selectorLabels" -}}
app.kubernetes.io/name: kask
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* The recommended labels, on every object. */}}
{{- define "kask.labels" -}}
{{ include "kask.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: kask
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* metadata.labels and, when there are any, metadata.annotations. */}}
{{- define "kask.metadata" -}}
labels:
  {{- include "kask.labels" . | nindent 2 }}
{{- with .Values.commonAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "kask.image" -}}
{{- printf "%s:%s" .repository (default .appVersion .tag) -}}
{{- end -}}

{{/* The rules the operator needs on DaskJobs, their Jobs and pods, and Events: only the verbs
it uses. It never reads Secrets or data. */}}
{{- define "kask.operatorRules" -}}
- apiGroups: [kask.dev]
  resources: [daskjobs]
  # list/watch: the controller's cache; patch: finalizer; delete: ttlSecondsAfterFinished
  verbs: [list, watch, patch, delete]
- apiGroups: [kask.dev]
  resources: [daskjobs/status]
  verbs: [patch]
- apiGroups: [kask.dev]
  resources: [daskjobs/finalizers]
  # ownerReferences with blockOwnerDeletion, where OwnerReferencesPermissionEnforcement is on
  verbs: [update]
- apiGroups: [batch]
  resources: [jobs]
  # patch: suspend and resume a stage's Job
  verbs: [list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [pods]
  # list/watch: the cache of task pods, their termination messages, why one cannot start;
  # delete: a task pod stranded on a lost node, so that its Job makes it again elsewhere
  verbs: [list, watch, delete]
- apiGroups: [""]
  resources: [pods/status]
  # a stranded pod is marked failed by a disruption first, so that it uses no retry
  verbs: [patch]
- apiGroups: [""]
  resources: [events]
  # a Job's FailedCreate Events, when a quota or webhook refuses its pods
  verbs: [list]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end -}}
