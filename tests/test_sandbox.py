"""The sandbox answers like the Biteral customers API, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from biteral_cli.errors import UsageError
from biteral_cli.sandbox import RunningSandbox, SandboxSettings, create_app, running_sandbox, serve


def _code() -> str:
    return f"T-{uuid.uuid4().hex[:12]}"


def _headers(running: RunningSandbox) -> dict[str, str]:
    return {"X-API-Key": running.api_key, "X-API-Version": "1", "Accept": "application/json"}


@pytest.fixture(scope="module")
def client(sandbox: RunningSandbox) -> Iterator[httpx.Client]:
    # One client for the module: building an httpx client (its TLS context) costs ~0.1 s.
    with httpx.Client(base_url=sandbox.url, headers=_headers(sandbox), timeout=10) as http:
        yield http


def _field_errors(response: httpx.Response) -> list[dict[str, str]]:
    body = response.json()
    assert isinstance(body, list) and body[0]["object"] == "validation_error"
    return [entry["payload"] for entry in body[0]["payload"]["fieldErrors"]]


def _get(client: httpx.Client, code: str) -> dict[str, Any]:
    response = client.get("/customers", params={"code": code})
    assert response.status_code == 200, response.text
    return response.json()


# --- auth ---------------------------------------------------------------------------------


def test_missing_key_is_401(sandbox: RunningSandbox) -> None:
    response = httpx.post(f"{sandbox.url}/customers", json={"code": _code()}, headers={"X-API-Version": "1"})
    assert response.status_code == 401
    assert response.json() == {"object": "error", "payload": {"code": "invalid_api_key"}}


def test_wrong_key_is_401_and_stores_nothing(sandbox: RunningSandbox, client: httpx.Client) -> None:
    code = _code()
    response = httpx.post(
        f"{sandbox.url}/customers",
        json={"code": code},
        headers={"X-API-Key": "not-the-key", "X-API-Version": "1"},
    )
    assert response.status_code == 401
    assert client.get("/customers", params={"code": code}).status_code == 404


def test_missing_or_wrong_version_header_is_400(sandbox: RunningSandbox) -> None:
    for headers in (
        {"X-API-Key": sandbox.api_key},
        {"X-API-Key": sandbox.api_key, "X-API-Version": "2"},
    ):
        response = httpx.get(f"{sandbox.url}/status", headers=headers)
        assert response.status_code == 400
        assert response.json()[0]["payload"]["code"] == "invalid_api_version"


@pytest.mark.slow
def test_key_never_in_repr() -> None:
    settings = SandboxSettings(api_key="s3cr3t-key-value")
    assert "s3cr3t-key-value" not in repr(settings)
    with running_sandbox(settings) as running:
        assert "s3cr3t-key-value" not in repr(running)


# --- POST shape and limits -----------------------------------------------------------------


def test_single_object_and_batch_are_accepted(client: httpx.Client) -> None:
    response = client.post("/customers", json={"code": _code()})
    assert response.status_code == 200
    assert response.json() == {"object": "customers_ingest", "payload": {"received": 1}}
    batch = [{"code": _code()} for _ in range(100)]
    response = client.post("/customers", json=batch)
    assert response.status_code == 200
    assert response.json()["payload"]["received"] == 100
    assert _get(client, batch[99]["code"])["payload"]["code"] == batch[99]["code"]


def test_more_than_100_items_is_rejected_whole(client: httpx.Client) -> None:
    batch = [{"code": _code()} for _ in range(101)]
    response = client.post("/customers", json=batch)
    assert response.status_code == 400
    assert response.json()[0]["payload"]["code"] == "too_many_items"
    assert client.get("/customers", params={"code": batch[0]["code"]}).status_code == 404


@pytest.mark.parametrize(
    ("body", "code"),
    [(b"{not json", "invalid_json"), (b"[]", "empty_batch"), (b'"text"', "invalid_body")],
)
def test_malformed_bodies_are_400(client: httpx.Client, body: bytes, code: str) -> None:
    response = client.post("/customers", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()[0]["payload"]["code"] == code


def test_body_over_limit_is_413_and_stores_nothing(
    sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    running = sandbox_factory(max_body_bytes=2000)
    code = _code()
    body = [{"code": code, "metadata": {"pad": "x" * 3000}}]
    with httpx.Client(base_url=running.url, headers=_headers(running)) as http:
        response = http.post("/customers", json=body)
        assert response.status_code == 413
        assert response.json()["payload"]["code"] == "payload_too_large"
        # Without Content-Length (chunked), the actual size is what counts.
        chunks = iter([json.dumps(body).encode()[:1500], json.dumps(body).encode()[1500:]])
        response = http.post("/customers", content=chunks)
        assert response.status_code == 413
        assert http.get("/customers", params={"code": code}).status_code == 404
        assert http.post("/customers", json={"code": code}).status_code == 200


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "field", "code"),
    [
        ({"city": "Madrid", "code": ...}, "code", "required"),
        ({"code": None}, "code", "required"),
        ({"code": 123}, "code", "invalid_type"),
        ({"code": ""}, "code", "invalid_value"),
        ({"code": "x" * 256}, "code", "too_long"),
        ({"isActive": "yes"}, "isActive", "invalid_type"),
        ({"isActive": 1}, "isActive", "invalid_type"),
        ({"country": 724}, "country", "invalid_type"),
        ({"state": ["ES-B"]}, "state", "invalid_type"),
        ({"city": 5}, "city", "invalid_type"),
        ({"city": ""}, "city", "invalid_value"),
        ({"yearBorn": "1990"}, "yearBorn", "invalid_type"),
        ({"yearBorn": True}, "yearBorn", "invalid_type"),
        ({"yearBorn": 1990.5}, "yearBorn", "invalid_type"),
        ({"gender": 4}, "gender", "invalid_value"),
        ({"gender": "2"}, "gender", "invalid_type"),
        ({"gender": False}, "gender", "invalid_type"),
        ({"metadata": "{}"}, "metadata", "invalid_type"),
        ({"metadata": [1]}, "metadata", "invalid_type"),
        ({"metadata": {"k": "x" * 60000}}, "metadata", "too_long"),
        ({"email": "a@b.c"}, "email", "unknown_field"),
        ({"country": "Spainn"}, "country", "unknown_country"),
        ({"country": "Q0"}, "country", "unknown_country"),
        ({"country": "United"}, "country", "ambiguous_country"),
        ({"country": "Congo"}, "country", "ambiguous_country"),
        ({"state": "Granada"}, "state", "ambiguous_state"),
        ({"state": "Nowhereshire"}, "state", "unknown_state"),
        ({"country": "ES", "state": "FR-IDF"}, "state", "unknown_state"),
    ],
)
def test_each_rule_rejects_with_a_field_error(
    client: httpx.Client, item: dict[str, Any], field: str, code: str
) -> None:
    body = {"code": _code(), **item}
    if body["code"] is ...:  # the case without any code
        del body["code"]
    response = client.post("/customers", json=body)
    assert response.status_code == 400
    assert response.json()[0]["payload"]["code"] == "invalid_request"
    errors = _field_errors(response)
    assert {"field": field, "code": code} in [{"field": e["field"], "code": e["code"]} for e in errors]
    assert all(e["description"] for e in errors)
    if isinstance(body.get("code"), str) and body["code"]:
        assert client.get("/customers", params={"code": body["code"]}).status_code == 404


def test_metadata_at_exactly_60000_characters_is_accepted(client: httpx.Client) -> None:
    # {"k":"..."} is 8 characters of JSON around the value.
    metadata = {"k": "é" * (60000 - 8)}
    code = _code()
    assert client.post("/customers", json={"code": code, "metadata": metadata}).status_code == 200
    assert _get(client, code)["payload"]["metadata"] == metadata


@pytest.mark.parametrize(
    ("count", "status"),
    [(60000 - 8 - 6 * 9990, 200), (60000 - 8 - 6 * 9990 + 1, 400)],
)
def test_metadata_length_counts_escaped_control_characters_as_json_writes_them(
    client: httpx.Client, count: int, status: int
) -> None:
    # Each control character is six characters of JSON (\u0001): the limit is on the JSON text.
    metadata = {"k": "\x01" * 9990 + "x" * count}
    code = _code()
    response = client.post("/customers", json={"code": code, "metadata": metadata})
    assert response.status_code == status, response.text
    if status == 200:
        assert _get(client, code)["payload"]["metadata"] == metadata


@pytest.mark.parametrize(
    ("body", "stored"),
    [
        # Integers beyond 64 bits, and text that is not UTF-8, are JSON all the same.
        (
            '{"code": "%s", "metadata": {"big": 123456789012345678901234567890}}',
            {"big": 123456789012345678901234567890},
        ),
        ('{"code": "%s", "metadata": {"a": "caf\u00e9"}}', {"a": "café"}),
    ],
)
def test_any_valid_json_body_is_read_and_stored_as_sent(
    client: httpx.Client, body: str, stored: dict[str, Any]
) -> None:
    code = _code()
    raw = (body % code).encode("utf-16")
    response = client.post("/customers", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert _get(client, code)["payload"]["metadata"] == stored


@pytest.mark.parametrize("number", [123456789012345678901234567890, 18446744073709551617, -9223372036854775809])
def test_an_integer_beyond_64_bits_in_a_utf8_body_is_stored_exactly(client: httpx.Client, number: int) -> None:
    code = _code()
    raw = f'{{"code": "{code}", "metadata": {{"big": {number}}}}}'.encode()
    response = client.post("/customers", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert _get(client, code)["payload"]["metadata"] == {"big": number}


@pytest.mark.parametrize("value", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_not_json(client: httpx.Client, value: bytes) -> None:
    body = b'{"code": "' + _code().encode() + b'", "metadata": {"x": ' + value + b"}}"
    response = client.post("/customers", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()[0]["payload"]["code"] == "invalid_json"


@pytest.mark.parametrize(
    ("country", "state", "want_country", "want_state"),
    [
        ("ES", "Barcelona", "ESP", "ES-B"),
        ("Spain", "ES-B", "ESP", "ES-B"),
        ("724", "B", "ESP", "ES-B"),
        ("Q29", "Granada", "ESP", "ES-GR"),
        ("esp", "Cataluña", "ESP", "ES-CT"),
        ("040", None, "AUT", None),
        ("United States of America", "CA", "USA", "US-CA"),
        (None, "ES-B", None, "ES-B"),
    ],
)
def test_locations_are_stored_in_canonical_form(
    client: httpx.Client,
    country: str | None,
    state: str | None,
    want_country: str | None,
    want_state: str | None,
) -> None:
    code = _code()
    item = {"code": code, "country": country, "state": state, "city": "Q11355"}
    item = {k: v for k, v in item.items() if v is not None}
    response = client.post("/customers", json=item)
    assert response.status_code == 200, response.text
    payload = _get(client, code)["payload"]
    assert payload.get("country") == want_country
    assert payload.get("state") == want_state
    assert payload["city"] == "Q11355"


def test_state_code_without_prefix_uses_the_stored_country(client: httpx.Client) -> None:
    code = _code()
    assert client.post("/customers", json={"code": code, "country": "ES"}).status_code == 200
    assert client.post("/customers", json={"code": code, "state": "B"}).status_code == 200
    assert _get(client, code)["payload"]["state"] == "ES-B"


def test_sdk_example_with_three_ambiguous_places_is_rejected(client: httpx.Client) -> None:
    # The city is accepted as given; country and state are each reported.
    item = {"code": _code(), "country": "United", "state": "Granada", "city": "Paris"}
    response = client.post("/customers", json=item)
    assert response.status_code == 400
    codes = {e["field"]: e["code"] for e in _field_errors(response)}
    assert codes == {"country": "ambiguous_country", "state": "ambiguous_state"}


# --- batches -------------------------------------------------------------------------------


def test_batch_with_one_bad_item_is_rejected_whole_with_indexed_errors(
    client: httpx.Client,
) -> None:
    batch = [{"code": _code()} for _ in range(5)]
    batch[3]["country"] = "Spainn"
    batch[4]["gender"] = 9
    response = client.post("/customers", json=batch)
    assert response.status_code == 400
    errors = _field_errors(response)
    assert [(e["field"], e["code"]) for e in errors] == [
        ("[3].country", "unknown_country"),
        ("[4].gender", "invalid_value"),
    ]
    assert "Spainn" in errors[0]["description"]
    for item in batch:
        assert client.get("/customers", params={"code": item["code"]}).status_code == 404


def test_non_object_item_is_named_by_index(client: httpx.Client) -> None:
    response = client.post("/customers", json=[{"code": _code()}, "oops"])
    assert response.status_code == 400
    assert [(e["field"], e["code"]) for e in _field_errors(response)] == [("[1]", "invalid_type")]


def test_without_per_item_errors_only_the_first_bad_item_is_reported_unprefixed(
    sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    running = sandbox_factory(per_item_errors=False)
    batch = [{"code": _code()}, {"code": _code(), "gender": 7}, {"code": _code(), "yearBorn": "x"}]
    with httpx.Client(base_url=running.url, headers=_headers(running)) as http:
        response = http.post("/customers", json=batch)
        assert response.status_code == 400
        assert [(e["field"], e["code"]) for e in _field_errors(response)] == [("gender", "invalid_value")]
        assert http.get("/customers", params={"code": batch[0]["code"]}).status_code == 404


def test_items_in_one_batch_apply_in_order(client: httpx.Client) -> None:
    code = _code()
    batch = [{"code": code, "gender": 1, "city": "Bilbao"}, {"code": code, "gender": 2}]
    assert client.post("/customers", json=batch).status_code == 200
    payload = _get(client, code)["payload"]
    assert payload["gender"] == 2
    assert payload["city"] == "Bilbao"


# --- upsert semantics and GET envelope -----------------------------------------------------


def test_get_envelope_after_create(client: httpx.Client) -> None:
    code = _code()
    item = {
        "code": code,
        "country": "ES",
        "state": "Barcelona",
        "city": "Q11355",
        "yearBorn": 1990,
        "gender": 2,
        "metadata": {"currentDiscountRate": "10%", "isNew": True},
    }
    assert client.post("/customers", json=item).status_code == 200
    found = _get(client, code)
    assert found["object"] == "customer"
    assert found["id"].startswith("cus_")
    assert found["projectId"].startswith("prj_")
    assert found["createdAt"].endswith("+00:00")
    assert found["updatedAt"] is None
    assert found["payload"] == {**item, "isActive": True, "country": "ESP", "state": "ES-B"}
    by_id = client.get("/customers", params={"id": found["id"]})
    assert by_id.status_code == 200
    assert by_id.json()["payload"]["code"] == code


def test_omitted_fields_keep_values_and_null_removes(sandbox: RunningSandbox, client: httpx.Client) -> None:
    code = _code()
    first = {"code": code, "isActive": False, "city": "Sevilla", "yearBorn": 1980, "gender": 1}
    assert client.post("/customers", json=first).status_code == 200
    assert client.post("/customers", json={"code": code, "gender": None}).status_code == 200
    found = _get(client, code)
    assert found["payload"] == {
        "code": code,
        "isActive": False,
        "city": "Sevilla",
        "yearBorn": 1980,
    }
    assert found["updatedAt"] is not None
    created_at, updated_at = found["createdAt"], found["updatedAt"]

    writes_before = sandbox.stats.stored_writes
    assert client.post("/customers", json={"code": code, "city": "Sevilla"}).status_code == 200
    again = _get(client, code)
    assert (again["createdAt"], again["updatedAt"]) == (created_at, updated_at)
    assert sandbox.stats.stored_writes == writes_before


def test_null_code_is_rejected_but_null_fields_on_create_are_fine(client: httpx.Client) -> None:
    code = _code()
    response = client.post("/customers", json={"code": code, "country": None, "metadata": None})
    assert response.status_code == 200
    assert _get(client, code)["payload"] == {"code": code, "isActive": True}


def test_unknown_customer_is_404(client: httpx.Client) -> None:
    for params in ({"code": _code()}, {"id": "cus_doesnotexist"}):
        response = client.get("/customers", params=params)
        assert response.status_code == 404
        assert response.json() == {"object": "error", "payload": {"code": "not_found"}}


def test_delete(client: httpx.Client) -> None:
    code = _code()
    assert client.post("/customers", json={"code": code}).status_code == 200
    response = client.delete("/customers", params={"code": code})
    assert response.status_code == 200
    assert response.json()["object"] == "customer_deleted"
    assert client.get("/customers", params={"code": code}).status_code == 404
    assert client.delete("/customers", params={"code": code}).status_code == 404


def test_other_methods_are_405(client: httpx.Client) -> None:
    response = client.put("/customers", json={"code": _code()})
    assert response.status_code == 405
    assert response.json()["payload"]["code"] == "method_not_allowed"


def test_status_shape(client: httpx.Client) -> None:
    response = client.get("/status")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "status"
    assert body["requestMajorApiVersion"] == 1
    assert body["latestStableMajorApiVersion"] == 1
    assert body["availableApiVersions"][0]["object"] == "api_version"
    assert "depotIngest" in body["permissions"]
    assert body["projectId"].startswith("prj_")
    assert body["serverTime"].endswith("+00:00")


# --- fault injection -----------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after(
    sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    running = sandbox_factory(rate_limit=2)
    with httpx.Client(base_url=running.url, headers=_headers(running)) as http:
        statuses = [http.get("/status") for _ in range(6)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited, [r.status_code for r in statuses]
    assert limited[0].headers["Retry-After"] == "1"
    assert limited[0].json() == {"object": "error", "payload": {"code": "rate_limited"}}
    assert running.stats.status_counts[429] == len(limited)


def test_daily_quota_answers_429_until_midnight_utc_and_resets_the_next_day(
    sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    now = [datetime(2026, 12, 2, 23, 0, 0, tzinfo=UTC).timestamp()]
    running = sandbox_factory(daily_quota=3, clock=lambda: now[0])
    body = [{"code": "Q1", "country": "ES"}]
    with httpx.Client(base_url=running.url, headers=_headers(running)) as http:
        first = [http.post("/customers", json=body).status_code for _ in range(3)]
        refused = http.post("/customers", json=body)
        now[0] += 1800  # 23:30: still the same day
        still = http.get("/status")
        now[0] += 1800  # midnight: a new day, a fresh quota
        next_day = [http.post("/customers", json=body).status_code for _ in range(3)]
        over_again = http.get("/status")
    assert first == [200, 200, 200] and next_day == [200, 200, 200]
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "3600"
    assert refused.json() == {"object": "error", "payload": {"code": "quota_exceeded"}}
    assert still.status_code == 429 and still.headers["Retry-After"] == "1800"
    assert over_again.status_code == 429 and over_again.headers["Retry-After"] == "86400"
    assert running.stats.items_received == 6  # nothing refused was stored


def test_error_rate_one_answers_500_or_503_and_stores_nothing(
    sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    running = sandbox_factory(error_rate=1.0, seed=7)
    codes = [_code() for _ in range(8)]
    with httpx.Client(base_url=running.url, headers=_headers(running)) as http:
        statuses = {http.post("/customers", json={"code": code}).status_code for code in codes}
        assert statuses == {500, 503}
        assert http.get("/status").status_code == 200
    assert running.stats.stored_writes == 0
    assert running.stats.posts == 8
    with sqlite3.connect(running.db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM customers").fetchone() == (0,)


@pytest.mark.slow
def test_dropped_response_is_stored_but_answered_late(
    sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    running = sandbox_factory(drop_response_rate=1.0, drop_response_delay_s=30)
    code = _code()
    with httpx.Client(base_url=running.url, headers=_headers(running), timeout=0.5) as http:
        with pytest.raises(httpx.ReadTimeout):
            http.post("/customers", json={"code": code})
        assert http.get("/customers", params={"code": code}).status_code == 200
    assert running.stats.dropped_responses == 1


# --- lifecycle -----------------------------------------------------------------------------


@pytest.mark.slow
def test_restart_on_same_port_and_db_keeps_data(tmp_path: Path) -> None:
    db = tmp_path / "sandbox.sqlite"
    code = _code()
    with running_sandbox(SandboxSettings(db=db)) as first:
        port = first.port
        with httpx.Client(base_url=first.url, headers=_headers(first)) as http:
            assert http.post("/customers", json={"code": code, "country": "ES"}).status_code == 200
    with httpx.Client(headers=_headers(first)) as http, pytest.raises(httpx.ConnectError):
        http.get(f"{first.url}/status")
    with running_sandbox(SandboxSettings(db=db, port=port)) as second:
        assert second.url == first.url
        with httpx.Client(base_url=second.url, headers=_headers(second)) as http:
            assert _get(http, code)["payload"]["country"] == "ESP"
    assert db.exists()


@pytest.mark.slow
def test_throwaway_db_is_deleted_on_stop() -> None:
    with running_sandbox() as running:
        assert running.db.exists()
    assert not running.db.exists()


def test_port_in_use_is_a_usage_error(sandbox: RunningSandbox) -> None:
    with (
        pytest.raises(UsageError, match="cannot start"),
        running_sandbox(SandboxSettings(port=sandbox.port)),
    ):
        pass


@pytest.mark.parametrize(
    ("option", "kwargs"),
    [
        ("--error-rate", {"error_rate": 1.5}),
        ("--drop-response-rate", {"drop_response_rate": -0.1}),
        ("--port", {"port": 70000}),
        ("--latency-ms", {"latency_ms": -1}),
        ("--rate-limit", {"rate_limit": 0}),
        ("--daily-quota", {"daily_quota": 0}),
        ("--daily-quota", {"daily_quota": 2.5}),
        ("--max-body-bytes", {"max_body_bytes": 0}),
        ("--api-key", {"api_key": ""}),
    ],
)
def test_bad_settings_name_the_option(option: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(UsageError, match=option):
        SandboxSettings(**kwargs)


@pytest.mark.slow
def test_serve_prints_actual_url_without_custom_key(monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[str] = []

    def echo(line: str) -> None:
        lines.append(line)
        raise KeyboardInterrupt  # stands in for the user's Ctrl-C once the line is printed

    serve(SandboxSettings(api_key="very-secret-key"), echo=echo)
    assert len(lines) == 1
    assert "http://127.0.0.1:" in lines[0] and ":0 " not in lines[0]
    assert "very-secret-key" not in lines[0]


def test_create_app_alone_serves_in_memory() -> None:
    async def scenario() -> tuple[int, dict[str, Any]]:
        transport = httpx.ASGITransport(app=create_app(SandboxSettings()))
        headers = {"X-API-Key": "sandbox", "X-API-Version": "1"}
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox", headers=headers) as http:
            posted = await http.post("/customers", json={"code": "A", "country": "Q142"})
            found = await http.get("/customers", params={"code": "A"})
            return posted.status_code, found.json()

    status, found = asyncio.run(scenario())
    assert status == 200
    assert found["payload"] == {"code": "A", "isActive": True, "country": "FRA"}


# Behaviour the batched write path (made fast for the upload benchmark) must keep.
_HEADERS = {"X-API-Key": "sandbox", "X-API-Version": "1"}


@pytest.mark.slow
def test_sandbox_batch_naming_one_code_twice_keeps_the_later_values_and_counts_both() -> None:
    with running_sandbox(SandboxSettings()) as sandbox, httpx.Client(base_url=sandbox.url, headers=_HEADERS) as http:
        first = [
            {"code": "A", "city": "Paris", "country": "FR", "gender": 1},
            {"code": "B", "city": "Lyon"},
            {"code": "A", "city": "Nice", "gender": None},
        ]
        assert http.post("/customers", json=first).status_code == 200
        assert (sandbox.stats.stored_writes, sandbox.stats.unchanged_writes) == (3, 0)
        stored = http.get("/customers", params={"code": "A"}).json()
        assert stored["payload"] == {"code": "A", "isActive": True, "country": "FRA", "city": "Nice"}
        assert stored["updatedAt"] is not None  # created, then changed by the third item
        assert http.get("/customers", params={"code": "B"}).json()["updatedAt"] is None
        created, updated = stored["createdAt"], stored["updatedAt"]

        again = [{"code": "A", "city": "Nice"}, {"code": "B", "yearBorn": 1980}, {"code": "B", "yearBorn": 1980}]
        assert http.post("/customers", json=again).status_code == 200
        assert (sandbox.stats.stored_writes, sandbox.stats.unchanged_writes) == (4, 2)
        a = http.get("/customers", params={"code": "A"}).json()
        b = http.get("/customers", params={"code": "B"}).json()
    assert (a["createdAt"], a["updatedAt"]) == (created, updated)  # unchanged: not rewritten
    assert b["payload"] == {"code": "B", "isActive": True, "city": "Lyon", "yearBorn": 1980}
    assert b["updatedAt"] is not None and a["id"] != b["id"]


@pytest.mark.slow
def test_sandbox_counts_when_posts_arrive_and_are_answered() -> None:
    with running_sandbox(SandboxSettings()) as sandbox, httpx.Client(base_url=sandbox.url, headers=_HEADERS) as http:
        assert sandbox.stats.first_post_s is None
        http.get("/status")
        assert sandbox.stats.first_post_s is None  # only POSTs count
        http.post("/customers", json={"code": "A"})
        first = sandbox.stats.first_post_s
        http.post("/customers", json={"code": "B"})
        stats = sandbox.stats
    assert first is not None and stats.first_post_s == first
    assert stats.last_post_s is not None and stats.last_post_done_s is not None
    assert first < stats.last_post_s <= stats.last_post_done_s
