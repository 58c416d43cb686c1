# An EKS cluster for Driftline: a VPC with private subnets, a system node group, a tainted node
# group sized for Ray workers, and the IAM role the cluster autoscaler runs with.

locals {
  private_subnets = [for i, _ in var.availability_zones : cidrsubnet(var.vpc_cidr, 4, i)]
  public_subnets  = [for i, _ in var.availability_zones : cidrsubnet(var.vpc_cidr, 8, 200 + i)]
  tags            = merge(var.tags, { "app.kubernetes.io/part-of" = "driftline" })
}

module "vpc" {
  # checkov:skip=CKV_TF_1:registry module pinned to an exact version; registry versions are immutable
  source  = "terraform-aws-modules/vpc/aws"
  version = "5.21.0"

  name            = var.name
  cidr            = var.vpc_cidr
  azs             = var.availability_zones
  private_subnets = local.private_subnets
  public_subnets  = local.public_subnets

  enable_nat_gateway     = true
  one_nat_gateway_per_az = true
  enable_dns_hostnames   = true
  enable_flow_log        = true

  public_subnet_tags  = { "kubernetes.io/role/elb" = "1" }
  private_subnet_tags = { "kubernetes.io/role/internal-elb" = "1" }
  tags                = local.tags
}

module "eks" {
  # checkov:skip=CKV_TF_1:registry module pinned to an exact version; registry versions are immutable
  source  = "terraform-aws-modules/eks/aws"
  version = "20.37.1"

  cluster_name    = var.name
  cluster_version = var.kubernetes_version

  vpc_id     = module.vpc.vpc_id
  subnet_ids = module.vpc.private_subnets

  cluster_endpoint_private_access      = true
  cluster_endpoint_public_access       = length(var.endpoint_public_access_cidrs) > 0
  cluster_endpoint_public_access_cidrs = var.endpoint_public_access_cidrs

  enable_cluster_creator_admin_permissions = true
  cluster_enabled_log_types                = ["api", "audit", "authenticator"]
  # Secrets encrypted with a KMS key the module creates.
  create_kms_key = true

  cluster_addons = {
    coredns    = {}
    kube-proxy = {}
    vpc-cni = {
      before_compute = true
      # The VPC CNI enforces NetworkPolicies (the chart renders them by default) only when asked.
      configuration_values = jsonencode({ enableNetworkPolicy = "true" })
    }
    eks-pod-identity-agent = {}
    # The Resource Metrics API the chart's CPU HorizontalPodAutoscalers read.
    metrics-server = {}
  }

  eks_managed_node_groups = {
    system = {
      instance_types = var.system_node_group.instance_types
      min_size       = var.system_node_group.min_size
      max_size       = var.system_node_group.max_size
      desired_size   = var.system_node_group.desired_size
      labels         = { "driftline.io/pool" = "system" }
    }

    ray = {
      instance_types = var.ray_node_group.instance_types
      min_size       = var.ray_node_group.min_size
      max_size       = var.ray_node_group.max_size
      desired_size   = var.ray_node_group.desired_size
      disk_size      = var.ray_node_group.disk_size_gb
      labels         = { "driftline.io/pool" = "ray" }
      taints = {
        ray = {
          key    = "driftline.io/ray"
          value  = "true"
          effect = "NO_SCHEDULE"
        }
      }
      # The cluster autoscaler discovers node groups by these tags.
      tags = {
        "k8s.io/cluster-autoscaler/enabled"     = "true"
        "k8s.io/cluster-autoscaler/${var.name}" = "owned"
      }
    }
  }

  tags = local.tags
}

module "cluster_autoscaler_irsa" {
  # checkov:skip=CKV_TF_1:registry module pinned to an exact version; registry versions are immutable
  source  = "terraform-aws-modules/iam/aws//modules/iam-role-for-service-accounts-eks"
  version = "5.59.0"

  role_name                        = "${var.name}-cluster-autoscaler"
  attach_cluster_autoscaler_policy = true
  cluster_autoscaler_cluster_names = [module.eks.cluster_name]

  oidc_providers = {
    main = {
      provider_arn               = module.eks.oidc_provider_arn
      namespace_service_accounts = ["kube-system:cluster-autoscaler"]
    }
  }

  tags = local.tags
}
