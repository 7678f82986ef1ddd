"""The local API's route matching: resource paths with {parameters}, as API Gateway's."""

from __future__ import annotations

import pytest

from tools.local.api import path_parameters

pytestmark = [pytest.mark.unit, pytest.mark.tooling]  # tests of tools/, not the product


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("/predict", "/predict", {}),
        ("/predict", "/predict/x", None),
        ("/v2/models/{name}", "/v2/models/house-prices", {"name": "house-prices"}),
        ("/v2/models/{name}/infer", "/v2/models/a%20b/infer", {"name": "a b"}),
        ("/v2/models/{name}/infer", "/v2/models/house-prices", None),
        ("/v2/models/{name}", "/v2/models/", None),  # a parameter is never empty
        ("/v2/models/{name}", "/v2/other/x", None),
    ],
)
def test_a_resource_path_matches_with_its_parameters(template, path, expected):
    assert path_parameters(template, path) == expected
