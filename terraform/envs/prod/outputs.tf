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

output "mlflow_tracking_uri" {
  description = "MLflow tracking and registry URL inside the cluster (chart value mlflow.trackingUri)."
  value       = module.platform.mlflow_tracking_uri
}

output "artifact_bucket" {
  description = "S3 bucket holding MLflow's model artifacts."
  value       = module.data.artifact_bucket
}

output "database_secrets" {
  description = "Secret per component (in driftline_namespace) with its store URL under key `url`."
  value       = module.platform.database_secrets
}

output "driftline_values" {
  description = "Chart values from Terraform as YAML: terraform output -raw driftline_values > cluster-values.yaml."
  value       = module.platform.driftline_values
}
