variable "aws_region" {
  description = "AWS region of the environment."
  type        = string
  default     = "eu-west-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.aws_region))
    error_message = "aws_region must look like eu-west-1."
  }
}

variable "gitops_repo_url" {
  description = "Git repository Argo CD deploys Driftline from (this repository)."
  type        = string

  validation {
    condition     = can(regex("^(https://|git@|ssh://)", var.gitops_repo_url))
    error_message = "gitops_repo_url must be an https or ssh Git URL."
  }
}

variable "endpoint_public_access_cidrs" {
  description = "CIDRs allowed to reach the cluster's public API endpoint; empty keeps it private."
  type        = list(string)
  default     = []
}

variable "availability_zones" {
  description = "Availability zones of the cluster, named explicitly so the set never grows on its own."
  type        = list(string)
  default     = ["eu-west-1a", "eu-west-1b"]

  validation {
    condition     = length(var.availability_zones) >= 2
    error_message = "Give at least two availability zones."
  }
}

variable "driftline_delivery" {
  description = "How the chart is deployed: argocd (default; Argo CD follows gitops/), helm (Terraform installs it) or none (you run helm install; docs/cluster-install.md)."
  type        = string
  default     = "argocd"

  validation {
    condition     = contains(["argocd", "helm", "none"], var.driftline_delivery)
    error_message = "driftline_delivery must be argocd, helm or none."
  }
}
