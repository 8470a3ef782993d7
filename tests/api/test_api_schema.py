"""Property-based run over the served OpenAPI schema (schemathesis): whatever a client sends,
valid or not, the server answers as its schema says and never with a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

TOKEN = "schema-token"


@pytest.fixture(scope="module")
def api_schema(serve, api_sweep):
    url = serve("--workspace", str(api_sweep.parent), token=TOKEN).url
    return schemathesis.openapi.from_url(f"{url}/openapi.json")


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_gets_a_server_error(api_schema, mode):
    # schemathesis.pytest.from_fixture needs pytest < 9 (it reads Function._nodeid), so the
    # cases are drawn with Hypothesis directly from the schema's strategy.
    @given(case=api_schema.as_strategy(generation_mode=mode))
    @settings(
        max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def call(case):
        case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"})

    call()
