"""Bad input at scale: schemathesis drives every operation of the service's own OpenAPI schema against a
real server process, with valid and invalid data, and no answer may be a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode

from tests.serving import ServerProcess, server_process

TOKEN = "schemathesis-admin-token"
# Per operation and generation mode; bounds the whole run to well under a minute.
MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def served(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir: Path = tmp_path_factory.mktemp("schemathesis")
    with server_process(
        database_url,
        data_dir,
        QUEUEPULSE_INGEST_TOKEN="schemathesis-ingest-token",
        QUEUEPULSE_ADMIN_TOKEN=TOKEN,
    ) as server:
        server.wait_ready()
        yield server


@pytest.fixture(scope="module")
def api_schema(served: ServerProcess) -> Any:
    return schemathesis.openapi.from_url(f"{served.url}/openapi.json")


# Hypothesis is driven per operation here rather than through schemathesis.pytest, whose lazy loader
# reaches into pytest internals that pytest 9.2 removed.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors(api_schema: Any, served: ServerProcess, mode: GenerationMode) -> None:
    failures: list[str] = []
    exercised: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert any(operation.path == "/v1/events" for operation in operations)
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
        )
        def call(case: Any) -> None:
            # The admin token grants every scope, so requests get past authentication to validation.
            case.call_and_validate(
                base_url=served.url,
                headers={"Authorization": f"Bearer {TOKEN}"},
                checks=[not_a_server_error],
                timeout=30,
            )

        try:
            call()
        except Unsatisfiable:
            # Nothing in this operation can be made invalid (no parameters, say): no negative cases.
            continue
        except Exception as error:
            failures.append(f"{operation.method.upper()} {operation.path}: {error}")
        exercised.append(operation.path)
    assert not failures, "\n".join(failures)
    assert "/v1/targets/{channel}/{queue}" in exercised
    assert "/v1/kpis" in exercised
