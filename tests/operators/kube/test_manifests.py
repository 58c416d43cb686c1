"""operators.kube.manifests: the Service port the controller scrapes is found by name."""

from __future__ import annotations

from operators.kube.manifests import SERVICE_PORT_NAME, service_port


def test_service_port_is_found_by_name_not_position() -> None:
    service = {
        "spec": {
            "ports": [
                {"name": "grpc", "port": 9000, "targetPort": "grpc"},
                {"name": SERVICE_PORT_NAME, "port": 80, "targetPort": "ingress"},
            ]
        }
    }
    assert service_port(service) == 80
    assert service_port(service, "grpc") == 9000
    assert service_port(service, "metrics") is None
    assert service_port(None) is None
