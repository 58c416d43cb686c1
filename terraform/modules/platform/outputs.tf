output "driftline_namespace" {
  description = "Namespace of the Driftline release (the Argo CD Application's destination with argocd delivery)."
  value       = kubernetes_namespace_v1.driftline.metadata[0].name
}

output "argocd_namespace" {
  description = "Namespace Argo CD runs in."
  value       = helm_release.argo_cd.namespace
}

output "monitoring_namespace" {
  description = "Namespace of Prometheus, Alertmanager, Grafana and prometheus-adapter."
  value       = helm_release.kube_prometheus_stack.namespace
}

output "driftline_delivery" {
  description = "How Driftline is deployed: argocd, helm or none."
  value       = var.driftline_delivery
}

output "mlflow_tracking_uri" {
  description = "MLflow tracking and registry URL inside the cluster (chart value mlflow.trackingUri)."
  value       = local.mlflow_url
}

output "database_secrets" {
  description = "Secret per component holding its store URL under key `url` (chart value database.existingSecret)."
  value       = local.database_secret
}

output "driftline_values" {
  description = "Chart values Terraform knows (MLflow URL, the store's Secret) as YAML: pass with `helm install -f`."
  value       = local.driftline_values
}
