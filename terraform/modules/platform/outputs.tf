output "driftline_namespace" {
  description = "Namespace of the Driftline release."
  value       = var.driftline_namespace
}

output "argocd_namespace" {
  description = "Namespace Argo CD runs in."
  value       = helm_release.argo_cd.namespace
}

output "monitoring_namespace" {
  description = "Namespace of Prometheus, Alertmanager and Grafana."
  value       = helm_release.kube_prometheus_stack.namespace
}

output "driftline_delivery" {
  description = "How Driftline is deployed: argocd or helm."
  value       = var.driftline_delivery
}
