"""Schemathesis against /openapi.json on a real uvicorn, every operation, with a valid token:
no server error, and every response matching the status codes, media types and schemas the
document declares."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import genstore
import jwt
import pytest
import schemathesis
from genstore_asgi.service import JWTAuthenticator, create_app
from genstore_asgi.service.routes import API_ROUTES
from helpers import free_port, png_bytes
from hypothesis import HealthCheck, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema as BaseOpenAPISchema

from .service_harness import serve

SECRET = "fuzz-secret-" + "x" * 32
USER = "user_fuzz"
EXAMPLES = 80  # per operation and mode: 8 operations x 2 modes x 80 = 1,280 requests
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Not negative_data_rejection: the API deliberately ignores unknown query parameters (cache
# busters) and treats an empty one as absent, which that check counts as accepting bad input.


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaseOpenAPISchema]:
    path: Path = tmp_path_factory.mktemp("fuzz")
    with genstore.open_store(path, max_image_bytes=100_000) as store:
        for i in range(3):
            store.images.create(user_id=USER, prompt=f"seed {i}", image_data=png_bytes())
            store.save_complete_operation(operation_type="text_to_image", prompt="p", user_id=USER)
        app = create_app(
            store,
            auth=JWTAuthenticator(secret=SECRET),
            rate_limit="1000000/minute",
            anonymous_rate_limit="1000000/minute",
        )
        port = free_port()
        with serve(app, port):
            yield schemathesis.openapi.from_url(f"http://127.0.0.1:{port}/openapi.json")


# Negative data needs something to spoil: operations without parameters or body get positive only.
CASES = [
    (route.method, route.path, mode)
    for route in API_ROUTES
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or route.query or route.body or "{" in route.path
]


@pytest.mark.slow
@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_every_operation_answers_within_its_schema(
    api_schema: BaseOpenAPISchema, method: str, path: str, mode: GenerationMode
) -> None:
    token = jwt.encode({"sub": USER, "exp": int(time.time()) + 600}, SECRET, algorithm="HS256")
    headers = {"Authorization": f"Bearer {token}"}
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Case[Any]) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    fuzz()
