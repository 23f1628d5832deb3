{{/* Names and labels shared by every object of the release. */}}
{{- define "cp.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "cp.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
cp.example/region: {{ .Values.region }}
{{- end -}}

{{/* Selector labels of one role: (dict "root" $ "component" "api") */}}
{{- define "cp.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "cp.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "cp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{ default (include "cp.fullname" .) .Values.serviceAccount.name }}
{{- else -}}
{{ default "default" .Values.serviceAccount.name }}
{{- end -}}
{{- end -}}

{{- define "cp.secretName" -}}
{{ .Values.secrets.existingSecret | default (printf "%s-secrets" (include "cp.fullname" .)) }}
{{- end -}}

{{- define "cp.databaseSecretName" -}}
{{- if .Values.database.url -}}
{{ printf "%s-database" (include "cp.fullname" .) }}
{{- else -}}
{{ required "database.existingSecret or database.url is required" .Values.database.existingSecret }}
{{- end -}}
{{- end -}}

{{- define "cp.databaseSecretKey" -}}
{{- if .Values.database.url -}}url{{- else -}}{{ .Values.database.existingSecretKey }}{{- end -}}
{{- end -}}

{{/* Environment of every container: ConfigMap, Secrets, the database URL, a role's own. */}}
{{- define "cp.envFrom" -}}
- configMapRef:
    name: {{ include "cp.fullname" . }}
- secretRef:
    name: {{ include "cp.secretName" . }}
{{- end -}}

{{- define "cp.databaseEnv" -}}
- name: CP_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "cp.databaseSecretName" . }}
      key: {{ include "cp.databaseSecretKey" . }}
{{- end -}}

{{/* Writable paths on a read-only root: the shared data volume, scratch and /tmp. */}}
{{- define "cp.volumeMounts" -}}
- name: data
  mountPath: /var/run/cp/data
- name: scratch
  mountPath: /var/run/cp/triton
  subPath: triton
- name: scratch
  mountPath: /tmp
  subPath: tmp
{{- end -}}

{{- define "cp.volumes" -}}
- name: data
{{- if .Values.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ .Values.persistence.existingClaim | default (printf "%s-data" (include "cp.fullname" .)) }}
{{- else }}
  emptyDir: {}
{{- end }}
- name: scratch
  emptyDir:
    sizeLimit: 1Gi
{{- end -}}
