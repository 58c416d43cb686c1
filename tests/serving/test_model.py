"""Loading a registered version for serving: the registry loader the colour replicas call."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from serving.model import ModelRef

if TYPE_CHECKING:
    from tests.conftest import RegisteredModel

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_the_loader_serves_the_named_model_not_the_configured_one(
    registered_model: RegisteredModel,
) -> None:
    # A replica's settings name the model its environment says; the app names the one it serves.
    elsewhere = registered_model.settings.updated({"registry": {"model_name": "another-model"}})
    served = ModelRef(registered_model.name, registered_model.version).load(elsewhere)
    assert (served.name, served.version) == (registered_model.name, registered_model.version)
    assert served.intercept == registered_model.bundle.intercept
    assert served.weights == registered_model.bundle.weights
