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
