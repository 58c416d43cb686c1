# The cluster's stateful services on AWS: a managed PostgreSQL for the Driftline store (and MLflow's
# tracking database), an S3 bucket for MLflow's artifacts, and the IAM role MLflow reads it with.

data "aws_caller_identity" "this" {}

locals {
  tags            = merge(var.tags, { "app.kubernetes.io/part-of" = "driftline" })
  artifact_bucket = coalesce(var.artifact_bucket_name, "${var.name}-mlflow-artifacts-${data.aws_caller_identity.this.account_id}")
}

# One key for the database, its Performance Insights and the artifact bucket.
resource "aws_kms_key" "data" {
  description         = "${var.name}: Driftline store and MLflow artifacts"
  enable_key_rotation = true
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AccountAdministers"
      Effect    = "Allow"
      Principal = { AWS = "arn:aws:iam::${data.aws_caller_identity.this.account_id}:root" }
      Action    = "kms:*"
      Resource  = "*"
    }]
  })
  tags = local.tags
}

# --- PostgreSQL -------------------------------------------------------------------------------
resource "aws_db_subnet_group" "this" {
  name       = "${var.name}-store"
  subnet_ids = var.subnet_ids
  tags       = local.tags
}

resource "aws_security_group" "database" {
  name        = "${var.name}-store"
  description = "PostgreSQL of the Driftline store: reachable from the cluster's nodes only"
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "from_cluster" {
  for_each                     = toset(var.client_security_group_ids)
  security_group_id            = aws_security_group.database.id
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  description                  = "PostgreSQL from the cluster"
}

resource "aws_db_parameter_group" "this" {
  name   = "${var.name}-store-pg${var.postgres_version}"
  family = "postgres${var.postgres_version}"

  # Every client (the component roles, MLflow) must use TLS.
  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }

  tags = local.tags
}

resource "aws_db_instance" "this" {
  # checkov:skip=CKV_AWS_118:Performance Insights covers query load; enhanced OS metrics need a monitoring role the platform does not use
  identifier     = "${var.name}-store"
  engine         = "postgres"
  engine_version = var.postgres_version
  instance_class = var.instance_class

  db_name  = "driftline"
  username = "driftline_admin"
  # RDS generates and rotates the master password in Secrets Manager; it never appears in variables.
  manage_master_user_password = true

  allocated_storage     = var.storage_gb.allocated
  max_allocated_storage = var.storage_gb.maximum
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = aws_kms_key.data.arn

  db_subnet_group_name   = aws_db_subnet_group.this.name
  vpc_security_group_ids = [aws_security_group.database.id]
  parameter_group_name   = aws_db_parameter_group.this.name
  publicly_accessible    = false
  multi_az               = var.multi_az

  iam_database_authentication_enabled   = true
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.data.arn
  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]
  auto_minor_version_upgrade            = true
  backup_retention_period               = var.backup_retention_days
  copy_tags_to_snapshot                 = true
  deletion_protection                   = var.deletion_protection
  skip_final_snapshot                   = false
  final_snapshot_identifier             = "${var.name}-store-final"
  apply_immediately                     = false
  performance_insights_retention_period = 7

  tags = local.tags
}

# --- MLflow artifacts -------------------------------------------------------------------------
resource "aws_s3_bucket" "artifacts" {
  # checkov:skip=CKV_AWS_144:artifacts are reproducible from training; versioning and backups of the store suffice
  # checkov:skip=CKV_AWS_18:access is through the MLflow server only (proxied artifacts); its logs record who read what
  # checkov:skip=CKV2_AWS_62:nothing consumes bucket events
  bucket = local.artifact_bucket
  tags   = local.tags
}

resource "aws_s3_bucket_public_access_block" "artifacts" {
  bucket                  = aws_s3_bucket.artifacts.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.data.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id

  rule {
    id     = "expire-replaced-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.artifact_noncurrent_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

# Only the MLflow server touches the bucket: clients fetch artifacts through it (proxied storage).
resource "aws_iam_policy" "mlflow_artifacts" {
  name        = "${var.name}-mlflow-artifacts"
  description = "Read and write MLflow artifacts in ${local.artifact_bucket}"
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ListBucket"
        Effect   = "Allow"
        Action   = ["s3:ListBucket"]
        Resource = aws_s3_bucket.artifacts.arn
      },
      {
        Sid      = "Objects"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
        Resource = "${aws_s3_bucket.artifacts.arn}/*"
      },
      {
        Sid      = "Key"
        Effect   = "Allow"
        Action   = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource = aws_kms_key.data.arn
      },
    ]
  })
  tags = local.tags
}

module "mlflow_irsa" {
  # checkov:skip=CKV_TF_1:registry module pinned to an exact version; registry versions are immutable
  source  = "terraform-aws-modules/iam/aws//modules/iam-role-for-service-accounts-eks"
  version = "5.59.0"

  role_name        = "${var.name}-mlflow"
  role_policy_arns = { artifacts = aws_iam_policy.mlflow_artifacts.arn }

  oidc_providers = {
    main = {
      provider_arn               = var.oidc_provider_arn
      namespace_service_accounts = ["${var.mlflow_service_account.namespace}:${var.mlflow_service_account.name}"]
    }
  }

  tags = local.tags
}
