output "cluster_name" {
  description = "Name of the EKS cluster."
  value       = module.eks.cluster_name
}

output "cluster_endpoint" {
  description = "HTTPS endpoint of the Kubernetes API server."
  value       = module.eks.cluster_endpoint
}

output "cluster_certificate_authority_data" {
  description = "Base64-encoded certificate authority of the API server."
  value       = module.eks.cluster_certificate_authority_data
}

output "oidc_provider_arn" {
  description = "ARN of the cluster's OIDC provider, for IAM roles for service accounts."
  value       = module.eks.oidc_provider_arn
}

output "cluster_autoscaler_role_arn" {
  description = "IAM role the cluster autoscaler's service account assumes."
  value       = module.cluster_autoscaler_irsa.iam_role_arn
}

output "ray_node_selector" {
  description = "Node selector and toleration that place pods on the Ray node group."
  value = {
    node_selector = { "driftline.io/pool" = "ray" }
    toleration    = { key = "driftline.io/ray", operator = "Equal", value = "true", effect = "NoSchedule" }
  }
}

output "vpc_id" {
  description = "VPC of the cluster (the database and other stateful services go in it)."
  value       = module.vpc.vpc_id
}

output "private_subnet_ids" {
  description = "Private subnets of the cluster, one per availability zone."
  value       = module.vpc.private_subnets
}

output "node_security_group_id" {
  description = "Security group of the cluster's nodes (allowed to reach the database)."
  value       = module.eks.node_security_group_id
}
