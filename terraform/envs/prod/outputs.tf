output "cluster_name" {
  description = "Name of the EKS cluster (aws eks update-kubeconfig --name <this>)."
  value       = module.cluster.cluster_name
}

output "cluster_endpoint" {
  description = "HTTPS endpoint of the Kubernetes API server."
  value       = module.cluster.cluster_endpoint
}

output "driftline_namespace" {
  description = "Namespace of the Driftline release."
  value       = module.platform.driftline_namespace
}
