variable "cluster_name" {
  description = "EKS cluster the platform is installed into (the cluster autoscaler manages its node groups)."
  type        = string
}

variable "aws_region" {
  description = "AWS region of the cluster (the cluster autoscaler calls the regional APIs)."
  type        = string
}

variable "cluster_autoscaler_role_arn" {
  description = "IAM role for the cluster autoscaler's service account (modules/cluster output)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/", var.cluster_autoscaler_role_arn))
    error_message = "cluster_autoscaler_role_arn must be an IAM role ARN."
  }
}

variable "chart_versions" {
  description = "Pinned versions of the platform charts."
  type = object({
    cluster_autoscaler    = string
    kuberay_operator      = string
    kserve                = string
    kube_prometheus_stack = string
    argo_cd               = string
    argocd_apps           = string
  })
  default = {
    cluster_autoscaler    = "9.46.6"
    kuberay_operator      = "1.4.2"
    kserve                = "v0.15.0"
    kube_prometheus_stack = "72.9.1"
    argo_cd               = "8.0.17"
    argocd_apps           = "2.0.2"
  }

  validation {
    condition     = alltrue([for v in values(var.chart_versions) : can(regex("^v?[0-9]+\\.[0-9]+\\.[0-9]+$", v))])
    error_message = "Pin every chart to an exact version (x.y.z)."
  }
}

variable "enable_kserve" {
  description = "Install KServe (raw deployment mode) for serving.runtime=InferenceService; needs cert-manager in the cluster."
  type        = bool
  default     = false
}

variable "environment" {
  description = "Environment name; selects gitops/environments/<environment>/values.yaml."
  type        = string

  validation {
    condition     = contains(["staging", "prod"], var.environment)
    error_message = "environment must be staging or prod."
  }
}

variable "driftline_namespace" {
  description = "Namespace of the Driftline release."
  type        = string
  default     = "driftline"
}

variable "driftline_delivery" {
  description = "How Driftline is deployed: `argocd` (an Argo CD Application follows the GitOps repository; promotions are commits) or `helm` (a Terraform-managed release)."
  type        = string
  default     = "argocd"

  validation {
    condition     = contains(["argocd", "helm"], var.driftline_delivery)
    error_message = "driftline_delivery must be argocd or helm."
  }
}

variable "gitops_repo_url" {
  description = "Git repository holding helm/driftline and gitops/ (Argo CD's source)."
  type        = string
}

variable "gitops_revision" {
  description = "Branch or tag of the GitOps repository Argo CD follows."
  type        = string
  default     = "main"
}

variable "ray_node_selector" {
  description = "Node selector and toleration of the Ray node group (modules/cluster output `ray_node_selector`)."
  type = object({
    node_selector = map(string)
    toleration    = map(string)
  })
}
