"""Generated requests to one operation of a live server, collecting every 5xx: for a test
that fuzzes part of a server's API for crashes only (tests/serving/test_api_fuzz.py runs every check)."""

from __future__ import annotations

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable

EXAMPLES_PER_OPERATION_AND_MODE = 120


def fuzz(operation: schemathesis.APIOperation, mode: schemathesis.GenerationMode, base_url: str,
         session: requests.Session, sent: list, server_errors: list) -> None:
    """Sends `operation`'s generated requests of `mode`, appending each to `sent` and each
    answered with a 5xx (with a curl command to replay it) to `server_errors`."""
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
