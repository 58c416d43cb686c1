# Production: three zones, a larger Ray node group, Argo CD following a release tag.

provider "aws" {
  region = var.aws_region
  default_tags {
    tags = { environment = "prod", project = "driftline" }
  }
}

data "aws_eks_cluster_auth" "this" {
  name = module.cluster.cluster_name
}

provider "helm" {
  kubernetes {
    host                   = module.cluster.cluster_endpoint
    cluster_ca_certificate = base64decode(module.cluster.cluster_certificate_authority_data)
    token                  = data.aws_eks_cluster_auth.this.token
  }
}

provider "kubernetes" {
  host                   = module.cluster.cluster_endpoint
  cluster_ca_certificate = base64decode(module.cluster.cluster_certificate_authority_data)
  token                  = data.aws_eks_cluster_auth.this.token
}

module "cluster" {
  source = "../../modules/cluster"

  name                         = "driftline-prod"
  kubernetes_version           = "1.31"
  availability_zones           = var.availability_zones
  endpoint_public_access_cidrs = var.endpoint_public_access_cidrs
  system_node_group = {
    instance_types = ["m6i.large"]
    min_size       = 3
    max_size       = 6
    desired_size   = 3
  }
  ray_node_group = {
    instance_types = ["c6i.2xlarge", "c6a.2xlarge"]
    min_size       = 2
    max_size       = 20
    desired_size   = 3
    disk_size_gb   = 200
  }
}

module "data" {
  source = "../../modules/data"

  name                      = module.cluster.cluster_name
  vpc_id                    = module.cluster.vpc_id
  subnet_ids                = module.cluster.private_subnet_ids
  client_security_group_ids = [module.cluster.node_security_group_id]
  oidc_provider_arn         = module.cluster.oidc_provider_arn
}

# RDS keeps the master credentials in Secrets Manager; the roles job uses them once.
data "aws_secretsmanager_secret_version" "database_master" {
  secret_id = module.data.master_user_secret_arn
}

locals {
  database_master = jsondecode(data.aws_secretsmanager_secret_version.database_master.secret_string)
}

module "platform" {
  source = "../../modules/platform"

  environment                 = "prod"
  cluster_name                = module.cluster.cluster_name
  aws_region                  = var.aws_region
  cluster_autoscaler_role_arn = module.cluster.cluster_autoscaler_role_arn
  ray_node_selector           = module.cluster.ray_node_selector
  enable_kserve               = false
  gitops_repo_url             = var.gitops_repo_url
  gitops_revision             = "main"
  driftline_delivery          = var.driftline_delivery
  artifact_bucket             = module.data.artifact_bucket
  mlflow_role_arn             = module.data.mlflow_role_arn
  database = merge(module.data.database, {
    admin_username = local.database_master.username
    admin_password = local.database_master.password
  })
}
