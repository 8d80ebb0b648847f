"""/openapi.json and /docs: generated from the route table and the models, offline."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import genstore
import httpx
import pytest
from genstore_asgi.service import JWTAuthenticator, create_app
from genstore_asgi.service._models import CreateImage, ErrorBody, ImagePage
from genstore_asgi.service.routes import API_ROUTES
from helpers import free_port
from starlette.routing import Route

from .service_harness import serve

SECRET = "openapi-secret-" + "x" * 32


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    path: Path = tmp_path_factory.mktemp("openapi")
    with genstore.open_store(path) as store:
        app = create_app(store, auth=JWTAuthenticator(secret=SECRET))
        with serve(app, free_port()) as client:
            yield client


@pytest.fixture(scope="module")
def document(http: httpx.Client) -> dict[str, Any]:
    r = http.get("/openapi.json")
    assert r.status_code == 200
    return r.json()  # type: ignore[no-any-return]


def test_the_document_is_openapi_3_1_with_bearer_security(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert scheme == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


def test_every_api_route_of_the_app_is_documented_and_nothing_else(
    tmp_path: Path, document: dict[str, Any]
) -> None:
    with genstore.open_store(tmp_path) as store:
        app = create_app(store, auth=JWTAuthenticator(secret=SECRET))
    served = {
        (method.lower(), r.path)
        for r in app.routes
        if isinstance(r, Route) and r.path.startswith("/api/")
        for method in (r.methods or set()) - {"HEAD"}
    }
    documented = {(m, p) for p, item in document["paths"].items() for m in item}
    assert documented == served
    assert len(served) == len(API_ROUTES)


def test_guarded_operations_need_the_token_and_declare_401_and_429(
    document: dict[str, Any],
) -> None:
    for path, item in document["paths"].items():
        for op in item.values():
            if path == "/api/health":
                assert op["security"] == []
                continue
            assert op["security"] == [{"bearerAuth": []}]
            for status in ("401", "429"):
                ref = op["responses"][status]["content"]["application/json"]["schema"]
                assert ref == {"$ref": "#/components/schemas/ErrorBody"}


def test_schemas_are_the_models_own(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert schemas["ErrorBody"]["properties"].keys() == ErrorBody.model_fields.keys()
    assert set(schemas["CreateImage"]["required"]) == {"prompt", "imageData"}
    assert schemas["ImagePage"]["properties"].keys() == ImagePage.model_fields.keys()
    post = document["paths"]["/api/images"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/CreateImage"}
    assert str(CreateImage.model_fields["imageData"].description) in str(schemas["CreateImage"])


def test_query_parameters_come_from_the_query_models(document: dict[str, Any]) -> None:
    params = {p["name"]: p for p in document["paths"]["/api/images"]["get"]["parameters"]}
    assert set(params) == {"page", "limit", "status"}
    assert params["limit"]["schema"]["maximum"] == 100
    assert params["page"]["schema"]["minimum"] == 1
    assert params["status"]["schema"] == {
        "$ref": "#/components/schemas/ImageStatus",
        "description": "Only images with this status.",
    }


def test_docs_page_renders_every_operation_without_loading_anything(
    http: httpx.Client, document: dict[str, Any]
) -> None:
    page = http.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for item in document["paths"].values():
        for op in item.values():
            assert f'id="{op["operationId"]}"' in page.text
    # Nothing fetched from elsewhere: no scripts, no external stylesheets or images.
    assert "<script" not in page.text
    assert re.findall(r'(?:src|href)="(?!openapi\.json|#)', page.text) == []
