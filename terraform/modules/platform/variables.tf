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
    cert_manager          = string
    prometheus_adapter    = string
    mlflow                = string
  })
  default = {
    cluster_autoscaler    = "9.46.6"
    kuberay_operator      = "1.7.0"
    kserve                = "v0.15.0"
    kube_prometheus_stack = "72.9.1"
    argo_cd               = "8.0.17"
    argocd_apps           = "2.0.2"
    cert_manager          = "v1.17.2"
    prometheus_adapter    = "4.11.0"
    mlflow                = "1.12.0"
  }

  validation {
    condition     = alltrue([for v in values(var.chart_versions) : can(regex("^v?[0-9]+\\.[0-9]+\\.[0-9]+$", v))])
    error_message = "Pin every chart to an exact version (x.y.z)."
  }
}

variable "enable_kserve" {
  description = "Install KServe (raw deployment mode) for serving.runtime=InferenceService, and cert-manager for its webhook certificates."
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
  description = "How Driftline is deployed: `argocd` (an Argo CD Application follows the GitOps repository; promotions are commits), `helm` (a Terraform-managed release) or `none` (everything but the chart: you run `helm install` with the `driftline_values` output)."
  type        = string
  default     = "argocd"

  validation {
    condition     = contains(["argocd", "helm", "none"], var.driftline_delivery)
    error_message = "driftline_delivery must be argocd, helm or none."
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

variable "database" {
  description = "The managed PostgreSQL (modules/data output `database`) and its master credentials (from `master_user_secret_arn`), used once by the job that creates the component roles."
  type = object({
    host           = string
    port           = number
    name           = string
    admin_username = string
    admin_password = string
  })
  sensitive = true

  validation {
    condition     = var.database.port > 0 && var.database.port < 65536 && length(var.database.admin_password) >= 8
    error_message = "database needs a valid port and the master password."
  }
}

variable "database_components" {
  description = "Components that get a PostgreSQL login role and a Secret `driftline-database-<component>` with their URL."
  type        = set(string)
  default     = ["serving", "monitor", "controller", "training"]

  validation {
    condition     = alltrue([for c in var.database_components : can(regex("^[a-z][a-z0-9]{1,20}$", c))]) && contains(var.database_components, "controller")
    error_message = "Components are short lower-case names, and `controller` (it runs the migrations) must be one."
  }
}

variable "psql_image" {
  description = "Image with psql 15 or newer for the roles job (pin a digest where the registry is not trusted)."
  type        = string
  default     = "postgres:16.9-alpine"

  validation {
    condition     = can(regex("^[^:@]+(:[0-9][^@]*|@sha256:[0-9a-f]{64})$", var.psql_image))
    error_message = "psql_image must carry a version tag or a digest, never float on latest."
  }
}

variable "artifact_bucket" {
  description = "S3 bucket for MLflow artifacts (modules/data output `artifact_bucket`)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.artifact_bucket))
    error_message = "artifact_bucket must be a valid S3 bucket name."
  }
}

variable "mlflow_role_arn" {
  description = "IAM role of the MLflow server's ServiceAccount (modules/data output `mlflow_role_arn`)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/", var.mlflow_role_arn))
    error_message = "mlflow_role_arn must be an IAM role ARN."
  }
}
