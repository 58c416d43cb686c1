variable "name" {
  description = "Cluster name; also prefixes the VPC and IAM roles."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,38}$", var.name))
    error_message = "name must be 2-39 lower-case letters, digits or hyphens, starting with a letter."
  }
}

variable "kubernetes_version" {
  description = "EKS Kubernetes version (the Driftline chart needs 1.30 or newer)."
  type        = string
  default     = "1.31"

  validation {
    condition     = can(regex("^1\\.(3[0-9])$", var.kubernetes_version))
    error_message = "kubernetes_version must be 1.30 or newer, written as major.minor."
  }
}

variable "vpc_cidr" {
  description = "CIDR block of the cluster's VPC."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrnetmask(var.vpc_cidr))
    error_message = "vpc_cidr must be a valid IPv4 CIDR block."
  }
}

variable "availability_zones" {
  description = "Availability zones for subnets and node groups (at least two for a highly available control plane)."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) >= 2
    error_message = "Give at least two availability zones."
  }
}

variable "endpoint_public_access_cidrs" {
  description = "CIDRs allowed to reach the public API endpoint; empty keeps the endpoint private."
  type        = list(string)
  default     = []
}

variable "system_node_group" {
  description = "Node group for platform services (controller, operators, Prometheus, Argo CD)."
  type = object({
    instance_types = list(string)
    min_size       = number
    max_size       = number
    desired_size   = number
  })
  default = {
    instance_types = ["m6i.large"]
    min_size       = 2
    max_size       = 4
    desired_size   = 2
  }

  validation {
    condition     = var.system_node_group.min_size <= var.system_node_group.desired_size && var.system_node_group.desired_size <= var.system_node_group.max_size
    error_message = "system_node_group needs min_size <= desired_size <= max_size."
  }
}

variable "ray_node_group" {
  description = "Node group for Ray serving and training workers: compute-optimised, tainted so only Ray pods land there, scaled by the cluster autoscaler."
  type = object({
    instance_types = list(string)
    min_size       = number
    max_size       = number
    desired_size   = number
    disk_size_gb   = number
  })
  default = {
    # 8 vCPU / 16 GiB: one Ray worker pod (2 CPU / 4 GiB limit) per 2 vCPU with room for daemons.
    instance_types = ["c6i.2xlarge", "c6a.2xlarge"]
    min_size       = 1
    max_size       = 10
    desired_size   = 2
    disk_size_gb   = 100
  }

  validation {
    condition     = var.ray_node_group.min_size <= var.ray_node_group.desired_size && var.ray_node_group.desired_size <= var.ray_node_group.max_size
    error_message = "ray_node_group needs min_size <= desired_size <= max_size."
  }

  validation {
    condition     = var.ray_node_group.disk_size_gb >= 50
    error_message = "Ray workers spill objects to disk: give them at least 50 GB."
  }
}

variable "tags" {
  description = "Tags added to every AWS resource."
  type        = map(string)
  default     = {}
}
