"""Fixtures for the Kubernetes tests: a validating fake API seeded with the chart's objects."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.operators.kube.cluster import FakeKubeApi, Validator, chart_objects


@pytest.fixture
def validator(shared_crds: Path) -> Validator:
    """Validates every object written against Kubernetes' and the CRDs' schemas."""
    return Validator(shared_crds)


@pytest.fixture
def kube(validator: Validator) -> FakeKubeApi:
    """An API holding what the chart renders (two Services, two colour RayServices)."""
    api = FakeKubeApi(validator)
    for body in chart_objects():
        api.seed(body)
    return api
