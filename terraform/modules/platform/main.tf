# Platform services on the cluster, each a pinned Helm release: the cluster autoscaler, the KubeRay
# operator, KServe with cert-manager (optional), kube-prometheus-stack with prometheus-adapter,
# MLflow, Argo CD, and Driftline itself. database.tf adds the store's roles and Secrets.

locals {
  repo_root   = "${path.module}/../../.."
  env_values  = "${local.repo_root}/gitops/environments/${var.environment}/values.yaml"
  application = yamldecode(file("${local.repo_root}/gitops/applications/${var.environment}.yaml"))
  # Argo CD deploys into the namespace its Application names; a release of our own into ours.
  driftline_namespace = var.driftline_delivery == "argocd" ? local.application.spec.destination.namespace : var.driftline_namespace
  # The cluster's facts (MLflow URL, the store's Secret) ride along with the environment's file.
  application_source = merge(local.application.spec.source, {
    repoURL        = var.gitops_repo_url
    targetRevision = var.gitops_revision
    helm           = merge(local.application.spec.source.helm, { values = local.driftline_values })
  })
  mlflow_url = "http://mlflow.${kubernetes_namespace_v1.mlflow.metadata[0].name}.svc.cluster.local:5000"
  # Ray pods go to the tainted Ray node group.
  ray_placement = {
    serving = {
      nodeSelector = var.ray_node_selector.node_selector
      tolerations  = [var.ray_node_selector.toleration]
    }
  }
}

resource "helm_release" "cluster_autoscaler" {
  name       = "cluster-autoscaler"
  namespace  = "kube-system"
  repository = "https://kubernetes.github.io/autoscaler"
  chart      = "cluster-autoscaler"
  version    = var.chart_versions.cluster_autoscaler

  values = [yamlencode({
    awsRegion     = var.aws_region
    autoDiscovery = { clusterName = var.cluster_name }
    rbac = {
      serviceAccount = {
        name        = "cluster-autoscaler"
        annotations = { "eks.amazonaws.com/role-arn" = var.cluster_autoscaler_role_arn }
      }
    }
    extraArgs = {
      balance-similar-node-groups   = true
      skip-nodes-with-local-storage = false
      expander                      = "least-waste"
    }
  })]
}

resource "helm_release" "kuberay_operator" {
  name             = "kuberay-operator"
  namespace        = "kuberay-system"
  create_namespace = true
  repository       = "https://ray-project.github.io/kuberay-helm/"
  chart            = "kuberay-operator"
  version          = var.chart_versions.kuberay_operator
}

# KServe's webhooks need certificates: cert-manager issues them.
resource "helm_release" "cert_manager" {
  count            = var.enable_kserve ? 1 : 0
  name             = "cert-manager"
  namespace        = "cert-manager"
  create_namespace = true
  repository       = "https://charts.jetstack.io"
  chart            = "cert-manager"
  version          = var.chart_versions.cert_manager

  values = [yamlencode({
    crds = { enabled = true }
  })]
}

resource "helm_release" "kserve_crd" {
  count            = var.enable_kserve ? 1 : 0
  name             = "kserve-crd"
  namespace        = "kserve"
  create_namespace = true
  repository       = "oci://ghcr.io/kserve/charts"
  chart            = "kserve-crd"
  version          = var.chart_versions.kserve

  depends_on = [helm_release.cert_manager]
}

resource "helm_release" "kserve" {
  count      = var.enable_kserve ? 1 : 0
  name       = "kserve"
  namespace  = "kserve"
  repository = "oci://ghcr.io/kserve/charts"
  chart      = "kserve"
  version    = var.chart_versions.kserve

  values = [yamlencode({
    kserve = { controller = { deploymentMode = "RawDeployment" } }
  })]

  depends_on = [helm_release.kserve_crd]
}

resource "helm_release" "kube_prometheus_stack" {
  name             = "kube-prometheus-stack"
  namespace        = "monitoring"
  create_namespace = true
  repository       = "https://prometheus-community.github.io/helm-charts"
  chart            = "kube-prometheus-stack"
  version          = var.chart_versions.kube_prometheus_stack

  values = [yamlencode({
    prometheus = {
      prometheusSpec = {
        # Select Driftline's ServiceMonitor and PrometheusRule without a release label.
        serviceMonitorSelectorNilUsesHelmValues = false
        ruleSelectorNilUsesHelmValues           = false
      }
    }
    grafana = {
      sidecar = { dashboards = { enabled = true, label = "grafana_dashboard", labelValue = "1", folderAnnotation = "grafana_folder", provider = { foldersFromFilesStructure = true } } }
    }
  })]
}

# The chart's requests-per-second HPA (serving.hpa.requestsPerSecond) reads this custom metric.
resource "helm_release" "prometheus_adapter" {
  name       = "prometheus-adapter"
  namespace  = helm_release.kube_prometheus_stack.namespace
  repository = "https://prometheus-community.github.io/helm-charts"
  chart      = "prometheus-adapter"
  version    = var.chart_versions.prometheus_adapter

  values = [yamlencode({
    prometheus = {
      url  = "http://kube-prometheus-stack-prometheus.${helm_release.kube_prometheus_stack.namespace}.svc"
      port = 9090
    }
    rules = {
      default = false
      custom = [{
        seriesQuery  = "driftline_requests_total{namespace!=\"\",pod!=\"\"}"
        resources    = { overrides = { namespace = { resource = "namespace" }, pod = { resource = "pod" } } }
        name         = { matches = "^driftline_requests_total$", as = "driftline_requests_per_second" }
        metricsQuery = "sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)"
      }]
    }
  })]
}

# MLflow tracking and registry: metadata in the managed PostgreSQL (database `mlflow`), artifacts in
# S3 behind the server (proxied), so no other component needs AWS credentials.
resource "kubernetes_namespace_v1" "mlflow" {
  metadata {
    name   = "mlflow"
    labels = { "app.kubernetes.io/part-of" = "driftline" }
  }
}

resource "helm_release" "mlflow" {
  name       = "mlflow"
  namespace  = kubernetes_namespace_v1.mlflow.metadata[0].name
  repository = "https://community-charts.github.io/helm-charts"
  chart      = "mlflow"
  version    = var.chart_versions.mlflow

  values = [yamlencode({
    fullnameOverride = "mlflow"
    serviceAccount = {
      create      = true
      name        = "mlflow"
      annotations = { "eks.amazonaws.com/role-arn" = var.mlflow_role_arn }
    }
    backendStore = {
      databaseMigration       = true
      databaseConnectionCheck = true
      postgres = {
        enabled  = true
        host     = nonsensitive(var.database.host)
        port     = nonsensitive(var.database.port)
        database = "mlflow"
        driver   = "psycopg2"
      }
      existingDatabaseSecret = {
        name        = kubernetes_secret_v1.mlflow_database.metadata[0].name
        usernameKey = "username"
        passwordKey = "password"
      }
    }
    artifactRoot = {
      proxiedArtifactStorage = true
      s3                     = { enabled = true, bucket = var.artifact_bucket, path = "artifacts" }
    }
    extraEnvVars = { AWS_DEFAULT_REGION = var.aws_region }
  })]

  depends_on = [kubernetes_job_v1.database_roles]
}

resource "helm_release" "argo_cd" {
  name             = "argo-cd"
  namespace        = "argocd"
  create_namespace = true
  repository       = "https://argoproj.github.io/argo-helm"
  chart            = "argo-cd"
  version          = var.chart_versions.argo_cd
}

# GitOps delivery: Argo CD's own chart for Applications, fed the environment's Application from
# gitops/applications/ so Terraform and the repository agree.
resource "helm_release" "driftline_application" {
  count      = var.driftline_delivery == "argocd" ? 1 : 0
  name       = "driftline-application"
  namespace  = "argocd"
  repository = "https://argoproj.github.io/argo-helm"
  chart      = "argocd-apps"
  version    = var.chart_versions.argocd_apps

  values = [yamlencode({
    applications = {
      (local.application.metadata.name) = merge(local.application.spec, {
        namespace = "argocd"
        source    = local.application_source
      })
    }
  })]

  depends_on = [
    helm_release.argo_cd,
    helm_release.kuberay_operator,
    helm_release.kube_prometheus_stack,
    helm_release.mlflow,
    kubernetes_secret_v1.component_database,
  ]
}

# Direct delivery: the chart from this repository with the environment's values file.
resource "helm_release" "driftline" {
  count     = var.driftline_delivery == "helm" ? 1 : 0
  name      = "driftline"
  namespace = kubernetes_namespace_v1.driftline.metadata[0].name
  chart     = "${local.repo_root}/helm/driftline"

  values = [file(local.env_values), yamlencode(local.ray_placement), local.driftline_values]

  depends_on = [
    helm_release.kuberay_operator,
    helm_release.kube_prometheus_stack,
    helm_release.mlflow,
    kubernetes_secret_v1.component_database,
  ]
}
