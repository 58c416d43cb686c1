{{/*
Ray pod templates shared by the serving RayServices and the training RayJob, restricted Pod
Security included: Ray writes only to /tmp (session, logs, spill) and /dev/shm (object store).
Pass (dict "root" $ "labels" <yaml string> "group" "head"|"worker" "image" <ref>
"resources" <map> "extraEnv" <list>).
*/}}
{{- define "driftline.ray.podTemplate" -}}
{{- $root := .root -}}
metadata:
  labels:
    {{- .labels | nindent 4 }}
    driftline.io/ray: "true"
    {{- if and (eq .group "head") (eq .kind "serving") $root.Values.serving.ray.enableInTreeAutoscaling }}
    driftline.io/kube-api: "true"
    {{- end }}
spec:
  {{- if and (eq .group "head") (eq .kind "serving") $root.Values.serving.ray.enableInTreeAutoscaling }}
  # KubeRay gives each autoscaling head its own ServiceAccount and Role (scale this RayCluster
  # only); the autoscaler sidecar needs that token.
  automountServiceAccountToken: true
  {{- else }}
  serviceAccountName: {{ include (printf "driftline.%s.serviceAccountName" .kind) $root }}
  # Ray workers and training pods never call the Kubernetes API.
  automountServiceAccountToken: false
  {{- end }}
  {{- with (include "driftline.imagePullSecrets" $root) }}{{ . | nindent 2 }}{{ end }}
  {{- if eq .kind "serving" }}
  {{- include "driftline.serving.checkShutdown" $root }}
  terminationGracePeriodSeconds: {{ $root.Values.serving.shutdown.terminationGracePeriodSeconds }}
  {{- end }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  containers:
    - name: {{ printf "ray-%s" .group }}
      image: {{ .image }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      env:
        {{- if eq .kind "serving" }}
        {{- include "driftline.serving.env" $root | nindent 8 }}
        {{- $direct := int $root.Values.serving.directIngressPort }}
        # Serve reads these when Ray starts (serving/control.py ray_env): direct ingress on a
        # known port is the fast path the Services target; replicas at normal priority; the
        # Serve controller reconciling every 0.5 s, not 0.1 s.
        - name: RAY_SERVE_THROUGHPUT_OPTIMIZED
          value: "1"
        - name: RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT
          value: {{ $direct | quote }}
        - name: RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT
          value: {{ add $direct 99 | quote }}
        - name: RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT
          value: {{ add $direct 100 | quote }}
        - name: RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT
          value: {{ add $direct 199 | quote }}
        - name: RAY_worker_niceness
          value: "0"
        - name: RAY_SERVE_CONTROL_LOOP_INTERVAL_S
          value: "0.5"
        {{- else }}
        {{- include "driftline.commonEnv" $root | nindent 8 }}
        {{- end }}
        {{- /* Last, so a colour the controller creates from the colour-neutral template gets
        them in the same place (operators/kube/manifests.py colour_env). */}}
        {{- with .extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        {{- if eq .group "head" }}
        - name: gcs
          containerPort: 6379
        - name: dashboard
          containerPort: 8265
        - name: client
          containerPort: 10001
        {{- end }}
        {{- if eq .kind "serving" }}
        - name: serve
          containerPort: {{ $root.Values.serving.port }}
        - name: ingress
          containerPort: {{ $root.Values.serving.directIngressPort }}
        {{- end }}
        - name: metrics
          containerPort: 8080
      {{- if eq .group "head" }}
      startupProbe:
        httpGet:
          path: /api/gcs_healthz
          port: dashboard
        periodSeconds: 5
        failureThreshold: 60
      readinessProbe:
        httpGet:
          path: /api/gcs_healthz
          port: dashboard
        periodSeconds: 5
        timeoutSeconds: 2
        failureThreshold: 10
      livenessProbe:
        httpGet:
          path: /api/gcs_healthz
          port: dashboard
        periodSeconds: 10
        timeoutSeconds: 2
        failureThreshold: 120
      {{- else }}
      startupProbe:
        httpGet:
          path: /api/local_raylet_healthz
          port: 52365
        periodSeconds: 5
        failureThreshold: 60
      readinessProbe:
        # A serving worker is ready when its ingress replica answers on the fast path; one
        # without an ingress replica stays out of the Services (it only hosts members).
        httpGet:
          path: {{ ternary "/v2/health/ready" "/api/local_raylet_healthz" (eq .kind "serving") }}
          port: {{ ternary "ingress" "52365" (eq .kind "serving") }}
        periodSeconds: 5
        timeoutSeconds: 2
        failureThreshold: 10
      livenessProbe:
        httpGet:
          path: /api/local_raylet_healthz
          port: 52365
        periodSeconds: 10
        timeoutSeconds: 2
        failureThreshold: 120
      {{- end }}
      {{- if eq .kind "serving" }}
      {{- include "driftline.serving.preStop" $root | nindent 6 }}
      {{- end }}
      resources:
        {{- toYaml .resources | nindent 8 }}
      securityContext:
        {{- toYaml $root.Values.containerSecurityContext | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        - name: shm
          mountPath: /dev/shm
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: {{ $root.Values.serving.ray.tmpSize }}
    - name: shm
      emptyDir:
        medium: Memory
        sizeLimit: {{ $root.Values.serving.ray.shmSize }}
  {{- if eq .kind "serving" }}
  {{- with $root.Values.serving.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $root.Values.serving.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $root.Values.serving.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- end }}
{{- end }}

{{/* rayStartParams every Ray node gets: metrics for Prometheus, dashboard reachable in-cluster. */}}
{{- define "driftline.ray.startParams" -}}
metrics-export-port: "8080"
{{- if eq .group "head" }}
dashboard-host: 0.0.0.0
{{- /* The head runs GCS and the proxy; Serve replicas go to workers. */}}
num-cpus: "0"
{{- end }}
{{- end }}

{{/* Ray token authentication (KubeRay `authOptions`), when `rayAuth.enabled`. */}}
{{- define "driftline.ray.authOptions" -}}
{{- if .Values.rayAuth.enabled }}
authOptions:
  mode: token
  {{- with .Values.rayAuth.existingSecret }}
  secretName: {{ . }}
  {{- end }}
{{- end }}
{{- end }}

{{/* KubeRay's in-tree autoscaler sidecar, restricted like every other container. */}}
{{- define "driftline.ray.autoscalerOptions" -}}
upscalingMode: Default
idleTimeoutSeconds: {{ .Values.serving.ray.idleTimeoutSeconds }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
resources:
  requests:
    cpu: 100m
    memory: 256Mi
  limits:
    cpu: 500m
    memory: 512Mi
securityContext:
  {{- toYaml .Values.containerSecurityContext | nindent 2 }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
env:
  - name: HOME
    value: /tmp
{{- end }}

{{/* The training job's Ray cluster: used by the RayJob below and the ModelDeployment's template. */}}
{{- define "driftline.training.rayClusterSpec" -}}
{{- $labels := include "driftline.componentLabels" (dict "root" . "component" "training") }}
{{- $image := include "driftline.image" (dict "root" . "name" .Values.training.imageName "digest" .Values.training.imageDigest) }}
rayVersion: {{ .Values.serving.ray.version | quote }}
{{- with (include "driftline.ray.authOptions" .) }}
{{ . }}
{{- end }}
headGroupSpec:
  rayStartParams:
    {{- include "driftline.ray.startParams" (dict "group" "head") | nindent 4 }}
  template:
    {{- include "driftline.ray.podTemplate" (dict "root" . "labels" $labels "group" "head" "kind" "training" "image" $image "resources" .Values.training.resources "extraEnv" list) | nindent 4 }}
workerGroupSpecs:
  - groupName: trials
    replicas: {{ .Values.training.workers.replicas }}
    minReplicas: {{ .Values.training.workers.replicas }}
    maxReplicas: {{ .Values.training.workers.replicas }}
    rayStartParams:
      {{- include "driftline.ray.startParams" (dict "group" "worker") | nindent 6 }}
    template:
      {{- include "driftline.ray.podTemplate" (dict "root" . "labels" $labels "group" "worker" "kind" "training" "image" $image "resources" .Values.training.workers.resources "extraEnv" list) | nindent 6 }}
{{- end }}

{{/*
The spec of one serving colour's RayService: pass (dict "root" $ "colour" "blue"|"green"). With
"colour" "" it is the colour-neutral template the ModelDeployment carries
(`spec.serving.template.spec`): no colour label, no `model_version`/`colour` args, no
DRIFTLINE_COLOUR or DRIFTLINE_SERVE_SHADOW_URL. A colour the controller creates is that template
with those filled in (operators/kube/manifests.py `rayservice`), so both come from here.
*/}}
{{- define "driftline.serving.rayServiceSpec" -}}
{{- $root := .root }}
{{- $labels := include "driftline.componentLabels" (dict "root" $root "component" "serving") }}
{{- $image := include "driftline.image" (dict "root" $root "name" $root.Values.serving.imageName "digest" $root.Values.serving.imageDigest) }}
{{- $app := $root.Values.serving.serveApp }}
{{- $own := dict "model_name" $root.Values.model.name "num_cpus" $app.numCpus "autoscaling_config" $app.autoscaling }}
{{- $colourEnv := list }}
{{- if .colour }}
{{- $labels = printf "%s\ndriftline.io/colour: %s" $labels .colour }}
{{- $_ := set $own "model_version" (include "driftline.serving.modelRef" .) }}
{{- $_ := set $own "colour" .colour }}
{{- /* Each colour is its own Ray cluster: its ingress mirrors to the shadow colour over HTTP
(serving/mirror.py), through the preview Service, when the controller's route says so. */}}
{{- $colourEnv = list (dict "name" "DRIFTLINE_COLOUR" "value" .colour) (dict "name" "DRIFTLINE_SERVE_SHADOW_URL" "value" (include "driftline.serving.shadowUrl" $root)) }}
{{- end }}
{{- $args := merge $own $app.args }}
{{- $serveConfig := dict "proxy_location" "EveryNode" "http_options" (dict "host" "0.0.0.0" "port" $root.Values.serving.port) "applications" (list (dict "name" $app.name "import_path" $app.importPath "route_prefix" $app.routePrefix "args" $args)) -}}
# Serve config as YAML text, the form KubeRay reconciles; args reach serving's app builder.
serveConfigV2: |
  {{- toYaml $serveConfig | nindent 2 }}
rayClusterConfig:
  rayVersion: {{ $root.Values.serving.ray.version | quote }}
  {{- with (include "driftline.ray.authOptions" $root) }}
  {{- . | nindent 2 }}
  {{- end }}
  enableInTreeAutoscaling: {{ $root.Values.serving.ray.enableInTreeAutoscaling }}
  {{- if $root.Values.serving.ray.enableInTreeAutoscaling }}
  autoscalerOptions:
    {{- include "driftline.ray.autoscalerOptions" $root | nindent 4 }}
  {{- end }}
  headGroupSpec:
    rayStartParams:
      {{- include "driftline.ray.startParams" (dict "group" "head") | nindent 6 }}
    template:
      {{- include "driftline.ray.podTemplate" (dict "root" $root "labels" $labels "group" "head" "kind" "serving" "image" $image "resources" $root.Values.serving.resources "extraEnv" $colourEnv) | nindent 6 }}
  workerGroupSpecs:
    - groupName: serve
      replicas: {{ $root.Values.serving.ray.workers.replicas }}
      minReplicas: {{ $root.Values.serving.ray.workers.minReplicas }}
      maxReplicas: {{ $root.Values.serving.ray.workers.maxReplicas }}
      rayStartParams:
        {{- include "driftline.ray.startParams" (dict "group" "worker") | nindent 8 }}
      template:
        {{- include "driftline.ray.podTemplate" (dict "root" $root "labels" $labels "group" "worker" "kind" "serving" "image" $image "resources" $root.Values.serving.ray.workers.resources "extraEnv" $colourEnv) | nindent 8 }}
{{- end }}
