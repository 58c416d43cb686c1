"""ClientKubeApi through the official client against a recording API server on loopback."""

from __future__ import annotations

import pytest
from kubernetes import client

from operators.kube.api import LEASE, RAY_JOB, SERVICE, ClientKubeApi, KubeApiError
from tests.operators.kube.cluster import ApiServer, FakeKubeApi


def _client(url: str) -> ClientKubeApi:
    configuration = client.Configuration()
    configuration.host = url
    configuration.api_key = {"authorization": "Bearer test-token"}
    return ClientKubeApi(client.ApiClient(configuration))


def test_verbs_paths_and_content_types(kube: FakeKubeApi) -> None:
    with ApiServer(kube) as server:
        api = _client(server.url)
        assert api.get(SERVICE, "ml", "missing") is None
        service = api.get(SERVICE, "ml", "driftline-active")
        assert service is not None
        assert service["spec"]["selector"]["driftline.io/colour"] == "blue"
        patched = api.patch(
            SERVICE,
            "ml",
            "driftline-active",
            {"spec": {"selector": {"driftline.io/colour": "green"}}},
        )
        assert patched["spec"]["selector"]["driftline.io/colour"] == "green"
        assert patched["spec"]["selector"]["ray.io/serve"] == "true"
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "l", "namespace": "ml"},
            "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15},
        }
        first = api.create(LEASE, "ml", lease)
        again = api.create(LEASE, "ml", lease)  # 409 from the server: the existing object
        assert again["metadata"]["uid"] == first["metadata"]["uid"]
        assert [
            b["metadata"]["name"]
            for b in api.select(SERVICE, "ml", "app.kubernetes.io/name=driftline")
        ] == [
            "driftline-active",
            "driftline-preview",
        ]
        api.delete(LEASE, "ml", "l")
        api.delete(LEASE, "ml", "l")
        assert api.get(LEASE, "ml", "l") is None
    verbs = {(verb, ctype) for verb, _, ctype in server.requests}
    assert ("PATCH", "application/merge-patch+json") in verbs
    assert ("GET", "/apis/ray.io/v1/namespaces/ml/rayjobs") not in server.requests
    assert any(
        path == "/api/v1/namespaces/ml/services/driftline-active" for _, path, _ in server.requests
    )


def test_errors_are_one_line_with_their_status(kube: FakeKubeApi) -> None:
    with ApiServer(kube) as server:
        api = _client(server.url)
        kube.fail["patch"] = 403
        with pytest.raises(KubeApiError) as error:
            api.patch(RAY_JOB, "ml", "x", {})
        assert error.value.status == 403
    unreachable = _client(server.url)
    with pytest.raises(KubeApiError) as error:
        unreachable.get(SERVICE, "ml", "driftline-active")
    assert error.value.status == 0
    assert "\n" not in str(error.value)
