"""Schemathesis generates requests from the service's own OpenAPI document, valid ones and
deliberately invalid ones, against a real server: no input may produce a 5xx."""

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable

from lifeboat.config import Settings
from lifeboat.serving import create_app
from live_server import live_server

EXAMPLES_PER_OPERATION_AND_MODE = 120


def test_no_generated_request_gets_a_server_error(trained_settings: Settings) -> None:
    sent, server_errors = [], []
    with live_server(create_app(trained_settings)) as base_url, requests.Session() as session:
        schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode in schemathesis.GenerationMode:
                _fuzz(operation, mode, base_url, session, sent, server_errors)
    assert not server_errors, server_errors[:5]
    assert len(sent) >= 1000, f"only {len(sent)} requests were generated"


def _fuzz(operation, mode, base_url: str, session: requests.Session, sent: list,
          server_errors: list) -> None:
    @settings(max_examples=EXAMPLES_PER_OPERATION_AND_MODE, deadline=None, database=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def send(case) -> None:  # noqa: ANN001
        response = case.call(base_url=base_url, session=session)
        sent.append(operation.label)
        if response.status_code >= 500:
            server_errors.append((operation.label, mode.value, response.status_code,
                                  response.text[:300], case.as_curl_command()))

    try:
        send()
    except Unsatisfiable:
        pass  # no request of this kind exists (an invalid request to a route without inputs)
