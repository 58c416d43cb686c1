"""Kubernetes side of the controller: API access, manifests, status, leader election, kopf."""
