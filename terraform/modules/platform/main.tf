# Platform services on the cluster, each a pinned Helm release: the cluster autoscaler, the KubeRay
# operator, KServe (optional), kube-prometheus-stack, Argo CD, and Driftline itself.

locals {
  repo_root   = "${path.module}/../../.."
  env_values  = "${local.repo_root}/gitops/environments/${var.environment}/values.yaml"
  application = yamldecode(file("${local.repo_root}/gitops/applications/${var.environment}.yaml"))
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

resource "helm_release" "kserve_crd" {
  count            = var.enable_kserve ? 1 : 0
  name             = "kserve-crd"
  namespace        = "kserve"
  create_namespace = true
  repository       = "oci://ghcr.io/kserve/charts"
  chart            = "kserve-crd"
  version          = var.chart_versions.kserve
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
        source    = merge(local.application.spec.source, { repoURL = var.gitops_repo_url, targetRevision = var.gitops_revision })
      })
    }
  })]

  depends_on = [helm_release.argo_cd, helm_release.kuberay_operator, helm_release.kube_prometheus_stack]
}

# Direct delivery: the chart from this repository with the environment's values file.
resource "helm_release" "driftline" {
  count            = var.driftline_delivery == "helm" ? 1 : 0
  name             = "driftline"
  namespace        = var.driftline_namespace
  create_namespace = true
  chart            = "${local.repo_root}/helm/driftline"

  values = [file(local.env_values), yamlencode(local.ray_placement)]

  depends_on = [helm_release.kuberay_operator, helm_release.kube_prometheus_stack]
}
