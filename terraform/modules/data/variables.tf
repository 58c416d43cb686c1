variable "name" {
  description = "Name prefix of the database, bucket, key and IAM role (the cluster's name)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,38}$", var.name))
    error_message = "name must be 2-39 lower-case letters, digits or hyphens, starting with a letter."
  }
}

variable "vpc_id" {
  description = "VPC of the cluster (modules/cluster output `vpc_id`); the database gets a security group in it."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must be a VPC id (vpc-...)."
  }
}

variable "subnet_ids" {
  description = "Private subnets the database may be placed in, in at least two availability zones."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "RDS needs subnets in at least two availability zones."
  }
}

variable "client_security_group_ids" {
  description = "Security groups allowed to reach PostgreSQL on 5432: the cluster's node security group."
  type        = list(string)

  validation {
    condition     = length(var.client_security_group_ids) > 0
    error_message = "Name at least one client security group, or nothing can reach the database."
  }
}

variable "postgres_version" {
  description = "PostgreSQL major version of the managed instance (the store's migrations are tested on 15 and newer)."
  type        = string
  default     = "16"

  validation {
    condition     = contains(["15", "16", "17"], var.postgres_version)
    error_message = "postgres_version must be 15, 16 or 17."
  }
}

variable "instance_class" {
  description = "RDS instance class (db.t4g.medium holds staging; size prod from the store's load)."
  type        = string
  default     = "db.t4g.medium"

  validation {
    condition     = can(regex("^db\\.[a-z0-9]+\\.[a-z0-9]+$", var.instance_class))
    error_message = "instance_class must look like db.t4g.medium."
  }
}

variable "storage_gb" {
  description = "Allocated storage and the ceiling storage autoscaling may grow to, in GiB."
  type = object({
    allocated = number
    maximum   = number
  })
  default = { allocated = 50, maximum = 500 }

  validation {
    condition     = var.storage_gb.allocated >= 20 && var.storage_gb.maximum >= var.storage_gb.allocated
    error_message = "storage_gb needs allocated >= 20 and maximum >= allocated."
  }
}

variable "multi_az" {
  description = "Run a standby in a second availability zone (on in prod: the controller and serving write to the store)."
  type        = bool
  default     = true
}

variable "backup_retention_days" {
  description = "Days of automated backups (point-in-time recovery window)."
  type        = number
  default     = 14

  validation {
    condition     = var.backup_retention_days >= 1 && var.backup_retention_days <= 35
    error_message = "backup_retention_days must be between 1 and 35."
  }
}

variable "deletion_protection" {
  description = "Refuse to delete the database (turn off deliberately before a teardown)."
  type        = bool
  default     = true
}

variable "artifact_bucket_name" {
  description = "Name of the MLflow artifact bucket; null derives <name>-mlflow-artifacts-<account id>."
  type        = string
  default     = null

  validation {
    condition     = var.artifact_bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.artifact_bucket_name))
    error_message = "artifact_bucket_name must be a valid S3 bucket name."
  }
}

variable "artifact_noncurrent_days" {
  description = "Days a replaced or deleted artifact version is kept before it expires."
  type        = number
  default     = 90

  validation {
    condition     = var.artifact_noncurrent_days >= 1
    error_message = "artifact_noncurrent_days must be at least 1."
  }
}

variable "oidc_provider_arn" {
  description = "The cluster's OIDC provider (modules/cluster output), for the MLflow server's IAM role."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/", var.oidc_provider_arn))
    error_message = "oidc_provider_arn must be an IAM OIDC provider ARN."
  }
}

variable "mlflow_service_account" {
  description = "Namespace and name of the MLflow server's ServiceAccount; only it may assume the artifact role."
  type = object({
    namespace = string
    name      = string
  })
  default = { namespace = "mlflow", name = "mlflow" }
}

variable "tags" {
  description = "Tags added to every AWS resource."
  type        = map(string)
  default     = {}
}
