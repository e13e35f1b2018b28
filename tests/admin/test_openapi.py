"""The hand-kept OpenAPI 3.1 document: served, complete, and true of the running gateway."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from typing import Any

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok

from gateway.admin.app import build_admin_app
from gateway.config import load_settings
from gateway.keys import Keys
from gateway.runtime import Gateway
from gateway.store.memory import MemoryStore
from tests.conftest import ADMIN_KEY, GatewayProcess

Case = schemathesis.Case[Any]
DOC: dict[str, Any] = json.loads(
    resources.files("gateway.admin").joinpath("openapi.json").read_text())
METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}
EXAMPLES_PER_OPERATION = 25  # per run (mode × actor): ~1,500 requests, under 10 s


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, item in DOC["paths"].items()
            for method, op in item.items() if method in METHODS]


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = DOC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def test_the_document_is_valid_openapi_3_1() -> None:
    """The document validates against the OpenAPI 3.1 specification."""
    import openapi_spec_validator as validator
    assert DOC["openapi"].startswith("3.1.")
    validator.validate(DOC)


def test_every_admin_listener_route_is_documented_and_nothing_else() -> None:
    """The document's operations are exactly the routes of the admin listener's application
    (the admin API, trusted auth, health and metrics)."""
    gw = Gateway(load_settings(environ={}), Keys.from_master(bytes(32)), MemoryStore())
    app = build_admin_app(gw)
    registered = {(r.method, r.resource.canonical) for r in app.router.routes()
                  if r.method != "HEAD" and r.resource is not None}
    documented = {(m, p) for m, p, _ in _operations()}
    assert documented == registered


def test_every_protected_operation_documents_the_actor_auth_and_errors() -> None:
    """Each admin-key operation takes X-Tokengate-Actor and documents 401, 403 and 503
    as problem+json; each body is a closed object and documents 400 and 422."""
    assert DOC["components"]["securitySchemes"]["adminKey"] == {
        **DOC["components"]["securitySchemes"]["adminKey"], "type": "http", "scheme": "bearer"}
    for method, path, op in _operations():
        if op.get("security") == []:
            continue
        params = [_resolve(p) for p in op.get("parameters", [])]
        assert any(p["name"] == "X-Tokengate-Actor" and p["in"] == "header" for p in params), path
        for status in ("401", "403", "503"):
            response = _resolve(op["responses"][status])
            assert "application/problem+json" in response["content"], (method, path, status)
        if "requestBody" in op:
            schema = _resolve(op["requestBody"]["content"]["application/json"]["schema"])
            assert schema["additionalProperties"] is False, (method, path)
            assert {"400", "422"} <= set(op["responses"]), (method, path)


def test_the_token_schema_lists_exactly_the_contract_fields() -> None:
    """A listed token has the contract's fields; only the create response adds the secret."""
    from tests.admin.support import TOKEN_FIELDS

    token = DOC["components"]["schemas"]["Token"]
    created = DOC["components"]["schemas"]["CreatedToken"]
    assert set(token["properties"]) == set(token["required"]) == TOKEN_FIELDS
    assert set(created["properties"]) == set(created["required"]) == TOKEN_FIELDS | {"secret"}
    assert "secret" not in json.dumps(DOC["components"]["schemas"]["AuditEvent"])


def test_the_document_is_served_without_the_admin_key(
        gateway_factory: Callable[..., GatewayProcess], redis_url: str) -> None:
    """GET /admin/api/openapi.json answers the packaged document without credentials."""
    import urllib.request

    gp = gateway_factory(store_url=redis_url, upstream="http://127.0.0.1:9")
    with urllib.request.urlopen(gp.admin + "/admin/api/openapi.json", timeout=5) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("application/json")
        assert json.loads(resp.read()) == DOC


CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance,
          content_type_conformance, response_headers_conformance]
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def _seed(gp: GatewayProcess) -> None:
    """An admin (alice) and a member (bob) in the default workspace, member tokens on."""
    for user, role in (("alice", "admin"), ("bob", "member")):
        status, _ = gp.admin_call("POST", "/admin/api/users", {"username": user, "role": role})
        assert status == 201
    status, _ = gp.admin_call("PUT", "/admin/api/settings/member-tokens", {"enabled": True})
    assert status == 200


@pytest.fixture
def fuzz_target(gateway_factory: Callable[..., GatewayProcess],
                redis_url: str) -> tuple[GatewayProcess, schemathesis.BaseSchema]:
    """A real gateway on real Redis with an admin and a member, and the document aimed at it."""
    gp = gateway_factory(store_url=redis_url, upstream="http://127.0.0.1:9")
    _seed(gp)
    # from_dict, not from_url: loaded from its own URL, schemathesis leaves that operation out.
    # The served copy is the same document (test_the_document_is_served_without_the_admin_key).
    schema = schemathesis.openapi.from_dict(DOC)
    schema.config.update(base_url=gp.admin)
    return gp, schema


def test_schemathesis_finds_no_server_error_and_no_response_off_the_schema(
        fuzz_target: tuple[GatewayProcess, schemathesis.BaseSchema]) -> None:
    """Generated valid and invalid calls to every operation, as generated actors, an admin and
    a member, get no 5xx, and every response matches its documented status, type, headers
    and schema."""
    gp, schema = fuzz_target
    seen: set[tuple[str, int]] = set()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        raw = DOC["paths"][operation.path][operation.method.lower()]
        runs: list[tuple[GenerationMode, dict[str, str] | None]] = [
            (GenerationMode.POSITIVE, None)]
        if raw.get("parameters") or raw.get("requestBody"):
            # Negative cases need something to break: a parameter or a body.
            runs.append((GenerationMode.NEGATIVE, None))
        if raw.get("security") != []:
            runs += [(GenerationMode.POSITIVE, {"X-Tokengate-Actor": actor})
                     for actor in ("alice", "bob")]
        for mode, headers in runs:

            @given(case=operation.as_strategy(generation_mode=mode, headers=headers))
            @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                      phases=[Phase.explicit, Phase.generate],
                      suppress_health_check=list(HealthCheck))
            def call(case: Case) -> None:
                response = case.call_and_validate(headers=AUTH, checks=CHECKS, timeout=10)
                seen.add((case.operation.label, response.status_code))

            call()
    assert gp.proc.poll() is None, "the gateway died under the fuzzing"
    assert "unhandled error" not in gp.logs()
    # The run reached successful answers, not only refusals (the stateful test below
    # reliably reaches a created token; random display names here often are not printable).
    for label, status in (("POST /admin/api/users", 201), ("GET /admin/api/tokens", 200),
                          ("PUT /admin/api/settings/token-expiry", 200)):
        assert (label, status) in seen, (label, status, sorted(seen))


def test_schemathesis_stateful_links_find_no_server_error(
        fuzz_target: tuple[GatewayProcess, schemathesis.BaseSchema], redis_url: str) -> None:
    """Sequences that follow the document's links (create a token then revoke it, add a user
    then remove them) get no 5xx and only documented responses."""
    gp, schema = fuzz_target
    schema.config.generation.update(modes=[GenerationMode.POSITIVE],
                                    with_security_parameters=False)
    revoked: list[int] = []

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # Every scenario starts from the same store, so Hypothesis can replay it.
            with redis.Redis.from_url(redis_url) as client:
                client.flushall()
            _seed(gp)

        def before_call(self, case: Case) -> None:
            # Act as the operator, who may follow every link; the other tests vary the actor.
            if case.headers:
                case.headers.pop("X-Tokengate-Actor", None)
            # A printable display name, so more scenarios get as far as a token to revoke.
            if case.operation.label == "POST /admin/api/tokens" and isinstance(case.body, dict):
                case.body["name"] = "fuzzed token"

        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            return {"headers": AUTH, "timeout": 10}

        def after_call(self, response: Any, case: Case) -> None:
            if case.operation.label == "DELETE /admin/api/tokens/{token}" \
                    and response.status_code == 200:
                revoked.append(1)

        def validate_response(self, response: Any, case: Case,
                              additional_checks: Any = None, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS, headers=AUTH)

    # Derandomized: the same scenarios every run, so the coverage assertion below is stable.
    Machine.run(settings=settings(max_examples=150, stateful_step_count=8, deadline=None,
                                  database=None, derandomize=True, phases=[Phase.generate],
                                  suppress_health_check=list(HealthCheck)))
    assert gp.proc.poll() is None
    assert revoked, "no scenario followed a link from a created token to its revocation"
