{{/* Names and labels follow Helm's scaffold (`helm create`). */}}

{{/* Chart name, truncated to the 63 characters a DNS label allows. */}}
{{- define "driftline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name; the release name alone when it already contains the chart name. */}}
{{- define "driftline.fullname" -}}
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

{{/* Chart name and version for the helm.sh/chart label. */}}
{{- define "driftline.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: stable for the release's lifetime, so never the chart version. */}}
{{- define "driftline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "driftline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Common labels on every object. */}}
{{- define "driftline.labels" -}}
helm.sh/chart: {{ include "driftline.chart" . }}
{{ include "driftline.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: driftline
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component: pass (dict "root" $ "component" "controller"). */}}
{{- define "driftline.componentSelectorLabels" -}}
{{ include "driftline.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Labels of one component's objects. */}}
{{- define "driftline.componentLabels" -}}
{{ include "driftline.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Selector labels of one serving colour: pass (dict "root" $ "colour" "blue"). */}}
{{- define "driftline.colourSelectorLabels" -}}
{{ include "driftline.componentSelectorLabels" (dict "root" .root "component" "serving") }}
driftline.io/colour: {{ .colour }}
{{- end }}

{{/* Image reference of one component: pass (dict "root" $ "name" "driftline-serving" "digest" ""). */}}
{{- define "driftline.image" -}}
{{- if .digest }}
{{- printf "%s/%s@%s" .root.Values.image.registry .name .digest }}
{{- else }}
{{- printf "%s/%s:%s" .root.Values.image.registry .name (default .root.Chart.AppVersion .root.Values.image.tag) }}
{{- end }}
{{- end }}

{{/* checkov's digest check, skipped (with the reason) only while a tag is in use. */}}
{{- define "driftline.digestSkip" -}}
{{- if not .digest }}
checkov.io/skip{{ .n }}: CKV_K8S_43=pulled by tag until {{ .value }} is set; a chart default cannot know a release's digest
{{- end }}
{{- end }}

{{- define "driftline.controller.fullname" -}}
{{- printf "%s-controller" (include "driftline.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "driftline.controller.serviceAccountName" -}}
{{- if .Values.controller.serviceAccount.create }}
{{- default (include "driftline.controller.fullname" .) .Values.controller.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.controller.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "driftline.monitor.fullname" -}}
{{- printf "%s-drift-monitor" (include "driftline.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "driftline.monitor.serviceAccountName" -}}
{{- if .Values.driftMonitor.serviceAccount.create }}
{{- default (include "driftline.monitor.fullname" .) .Values.driftMonitor.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.driftMonitor.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "driftline.serving.serviceAccountName" -}}
{{- if .Values.serving.serviceAccount.create }}
{{- default (printf "%s-serving" (include "driftline.fullname" .)) .Values.serving.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serving.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "driftline.training.serviceAccountName" -}}
{{- if .Values.training.serviceAccount.create }}
{{- default (printf "%s-training" (include "driftline.fullname" .)) .Values.training.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.training.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Environment of the inference API: the shared rate limiter's Redis and the API-key/JWT settings
(names owned by driftline/config.py's security fields: DRIFTLINE_RATE_LIMIT_REDIS_URL,
DRIFTLINE_AUTH_<NAME>).
*/}}
{{- define "driftline.serving.securityEnv" -}}
{{- with .Values.rateLimit.redis.existingSecret }}
- name: DRIFTLINE_RATE_LIMIT_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.rateLimit.redis.urlKey }}
{{- end }}
{{- range $name, $value := .Values.auth.settings }}
- name: {{ printf "DRIFTLINE_AUTH_%s" ($name | snakecase | upper) }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- range $name, $ref := .Values.auth.secrets }}
- name: {{ printf "DRIFTLINE_AUTH_%s" ($name | snakecase | upper) }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.secretName }}
      key: {{ $ref.key }}
{{- end }}
{{- end }}

{{/* Name of one colour's RayService or InferenceService. */}}
{{- define "driftline.serving.colourName" -}}
{{- printf "%s-%s" (include "driftline.fullname" .root) .colour | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "driftline.serving.activeServiceName" -}}
{{- printf "%s-active" (include "driftline.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "driftline.serving.previewServiceName" -}}
{{- printf "%s-preview" (include "driftline.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Where the active colour mirrors to on either runtime (serving/mirror.py): the preview Service,
which the controller points at the shadow colour, on its port named `http` (the Service's own
number, from the same value). The controller derives the same URL, from that Service's named
port, for the colours it creates (operators/kube/manifests.py).
*/}}
{{- define "driftline.serving.shadowUrl" -}}
{{- printf "http://%s.%s.svc:%v" (include "driftline.serving.previewServiceName" .) .Release.Namespace .Values.serving.servicePort }}
{{- end }}

{{/*
Environment of every serving container on either runtime (and so of the ModelDeployment's
`spec.serving.template`, which the colours the controller creates are made from): the store, the
registry, the request deadline, the mirror's key (serving/mirror.py; optional: without the Secret
nothing is mirrored) and the API's security. Per colour (version, colour) and the shadow URL are
set after it, by the colour templates and by the controller.
*/}}
{{- define "driftline.serving.env" -}}
{{ include "driftline.commonEnv" . }}
- name: DRIFTLINE_SERVE_REQUEST_TIMEOUT_S
  value: {{ .Values.serving.requestTimeoutSeconds | quote }}
- name: DRIFTLINE_SERVE_SHADOW_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.serving.shadowKeySecret.name | default (printf "%s-shadow-key" (include "driftline.fullname" .)) }}
      key: {{ .Values.serving.shadowKeySecret.key }}
      optional: true
{{- with (include "driftline.serving.securityEnv" .) }}
{{ . }}
{{- end }}
{{- end }}

{{/*
The colour the active Service selects: a value, never read back from the cluster (Argo CD renders
with `helm template`, where `lookup` returns nothing). Who owns it after install is written in
values.yaml (`serving.activeColour`) and docs/architecture.md ("Who owns what").
*/}}
{{- define "driftline.serving.activeColour" -}}
{{- .Values.serving.activeColour }}
{{- end }}

{{- define "driftline.serving.previewColour" -}}
{{- if eq (include "driftline.serving.activeColour" .) "blue" }}green{{ else }}blue{{ end }}
{{- end }}

{{/*
The serving pods' fast path, the port the active and preview Services target by name: Ray Serve's
direct ingress for a RayService (not the proxy), the KServe server's own port otherwise.
*/}}
{{- define "driftline.serving.fastPortName" -}}
{{- if eq .Values.serving.runtime "RayService" }}ingress{{ else }}http{{ end }}
{{- end }}

{{- define "driftline.serving.fastPort" -}}
{{- if eq .Values.serving.runtime "RayService" }}{{ .Values.serving.directIngressPort }}{{ else }}{{ .Values.serving.port }}{{ end }}
{{- end }}

{{/*
Graceful shutdown of a serving container: keep serving for the drain (endpoints and ingress
controllers stop sending requests meanwhile), then the grace period covers the ingress's own
shutdown (four request timeouts, serving/app.py). Refuses numbers that would cut requests.
*/}}
{{- define "driftline.serving.checkShutdown" -}}
{{- $s := .Values.serving.shutdown }}
{{- $timeout := float64 .Values.serving.requestTimeoutSeconds }}
{{- if le (float64 $s.drainSeconds) $timeout }}
{{- fail (printf "serving.shutdown.drainSeconds (%v) must exceed serving.requestTimeoutSeconds (%v)" $s.drainSeconds .Values.serving.requestTimeoutSeconds) }}
{{- end }}
{{- if lt (float64 $s.terminationGracePeriodSeconds) (addf $s.drainSeconds (mulf 4 $timeout)) }}
{{- fail (printf "serving.shutdown.terminationGracePeriodSeconds (%v) must be at least drainSeconds + 4 x requestTimeoutSeconds (%v)" $s.terminationGracePeriodSeconds (addf $s.drainSeconds (mulf 4 $timeout))) }}
{{- end }}
{{- end }}

{{- define "driftline.serving.preStop" -}}
lifecycle:
  preStop:
    sleep:
      seconds: {{ .Values.serving.shutdown.drainSeconds }}
{{- end }}

{{/* Model reference one colour serves: a version number or an alias. */}}
{{- define "driftline.serving.modelRef" -}}
{{- if eq .colour (include "driftline.serving.activeColour" .root) }}
{{- default "champion" .root.Values.model.version }}
{{- else }}
{{- default "challenger" .root.Values.serving.previewVersion }}
{{- end }}
{{- end }}

{{/* Environment every Driftline container reads (docs/architecture.md, "Containers"). */}}
{{- define "driftline.commonEnv" -}}
- name: DRIFTLINE_MODEL_NAME
  value: {{ .Values.model.name | quote }}
- name: MLFLOW_TRACKING_URI
  value: {{ .Values.mlflow.trackingUri | quote }}
- name: DRIFTLINE_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.existingSecret }}
      key: {{ .Values.database.urlKey }}
- name: DRIFTLINE_HOME
  value: /tmp/driftline
- name: DRIFTLINE_LOG_JSON
  value: "true"
- name: HOME
  value: /tmp
{{- with .Values.tracing.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Pod-level scheduling and pull settings shared by every pod. */}}
{{- define "driftline.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Annotations of each colour's InferenceService, and of the ModelDeployment's template. */}}
{{- define "driftline.serving.isvcAnnotations" -}}
serving.kserve.io/deploymentMode: RawDeployment
{{- if .Values.serving.hpa.enabled }}
# The chart's HorizontalPodAutoscaler (CPU and requests per second) replaces KServe's own.
serving.kserve.io/autoscalerClass: external
{{- end }}
{{- end }}

{{/*
The predictor of one colour's InferenceService: pass (dict "root" $ "colour" "blue"|"green"). With
"colour" "" it is the colour-neutral template the ModelDeployment carries
(`spec.serving.template.spec.predictor`): no colour label, no version annotation, no
DRIFTLINE_COLOUR or DRIFTLINE_SERVE_SHADOW_URL. A colour the controller creates is that template
with those filled in, last in the env as here (operators/kube/manifests.py `inference_service`).
The version is the predictor's annotation `driftline.io/model-version`, read by the container
through the downward API: the controller patches that one map key, which Argo CD's
RespectIgnoreDifferences can leave alone while it syncs the rest of the predictor (an ignored
entry of the `containers` list would make it keep the whole list from the cluster).
*/}}
{{- define "driftline.serving.predictor" -}}
{{- $root := .root -}}
{{- if not $root.Values.serving.hpa.enabled -}}
minReplicas: {{ $root.Values.serving.inferenceService.minReplicas }}
maxReplicas: {{ $root.Values.serving.inferenceService.maxReplicas }}
{{ end -}}
labels:
  {{- if .colour }}
  {{- include "driftline.colourSelectorLabels" . | nindent 2 }}
  {{- else }}
  {{- include "driftline.componentSelectorLabels" (dict "root" $root "component" "serving") | nindent 2 }}
  {{- end }}
{{- if .colour }}
annotations:
  driftline.io/model-version: {{ include "driftline.serving.modelRef" . | quote }}
{{- end }}
serviceAccountName: {{ include "driftline.serving.serviceAccountName" $root }}
automountServiceAccountToken: false
{{- with (include "driftline.imagePullSecrets" $root) }}
{{ . }}
{{- end }}
{{- include "driftline.serving.checkShutdown" $root }}
terminationGracePeriodSeconds: {{ $root.Values.serving.shutdown.terminationGracePeriodSeconds }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
containers:
  - name: kserve-container
    image: {{ include "driftline.image" (dict "root" $root "name" $root.Values.serving.imageName "digest" $root.Values.serving.imageDigest) }}
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    command:
      {{- toYaml $root.Values.serving.inferenceService.command | nindent 6 }}
    env:
      {{- include "driftline.serving.env" $root | nindent 6 }}
      - name: DRIFTLINE_SERVING_PORT
        value: {{ $root.Values.serving.port | quote }}
      - name: DRIFTLINE_MODEL_VERSION
        valueFrom:
          fieldRef:
            fieldPath: metadata.annotations['driftline.io/model-version']
      {{- if .colour }}
      - name: DRIFTLINE_COLOUR
        value: {{ .colour }}
      # Shadow mirroring (serving/mirror.py): the controller's route, read from the store,
      # says whether this colour mirrors; the key in the env above marks what it sends.
      - name: DRIFTLINE_SERVE_SHADOW_URL
        value: {{ include "driftline.serving.shadowUrl" $root | quote }}
      {{- end }}
    ports:
      - name: http
        containerPort: {{ $root.Values.serving.port }}
        protocol: TCP
    startupProbe:
      httpGet:
        path: /v2/health/live
        port: http
      periodSeconds: 5
      failureThreshold: 60
    livenessProbe:
      httpGet:
        path: /v2/health/live
        port: http
      periodSeconds: 10
      timeoutSeconds: 2
      failureThreshold: 3
    readinessProbe:
      httpGet:
        path: /v2/health/ready
        port: http
      periodSeconds: 5
      timeoutSeconds: 2
      failureThreshold: 3
    {{- include "driftline.serving.preStop" $root | nindent 4 }}
    resources:
      {{- toYaml $root.Values.serving.resources | nindent 6 }}
    securityContext:
      {{- toYaml $root.Values.containerSecurityContext | nindent 6 }}
    volumeMounts:
      - name: tmp
        mountPath: /tmp
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: {{ $root.Values.serving.ray.tmpSize }}
{{- with $root.Values.serving.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.serving.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.serving.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
