"""Property-based requests from the server's own OpenAPI spec, with the admin token: never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.integration.server_fixture import ServerProcess


@pytest.fixture(scope="module")
def schema_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for every generated case: a start per case would dwarf the cases."""
    proc = ServerProcess(Path(tmp_path_factory.mktemp("schema")), ["h1", "h2"])
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def test_no_server_errors(schema_server: ServerProcess) -> None:
    """Every operation (the endless event stream aside), a bounded number of generated cases each.

    Driven through hypothesis directly: schemathesis' pytest plugin does not load under pytest 9.
    """
    ca = str(schema_server.ca_cert)  # requests verifies the server against the test CA
    schema = schemathesis.openapi.from_url(f"{schema_server.url}/openapi.json", verify=ca)
    operations = [r.ok() for r in schema.exclude(path_regex=r"/events").get_all_operations()]
    assert len(operations) >= 15

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: schemathesis.Case) -> None:
            if case.query and "wait" in case.query:
                case.query["wait"] = 0  # long-polls would only slow the run down
            case.call_and_validate(
                base_url=schema_server.url,
                headers=schema_server.admin_headers,
                checks=[not_a_server_error],
                verify=ca,
            )

        check()
