"""A local HTTP server that behaves like the Biteral API, with optional fault injection.

It implements the contract in ``/work/shared/API.md``: ``X-API-Key``/``X-API-Version`` checks,
``POST /customers`` and ``POST /products`` (one object or up to 100, validated, upserted by ``code``
into SQLite, a batch with one bad item rejected whole), ``GET``/``DELETE /customers?code=`` (and
``/products``) and ``GET /status``.
Latency, random 500/503, a rate limit (429 + ``Retry-After``), a daily quota (429 until midnight
UTC), 413 and lost responses can be injected to exercise the client's retry logic.

The modules, each one job:

    settings      SandboxSettings (checked when created), SandboxStats
    app           the Starlette app: key check, /status, register_routes/register_entity; the
                  uvicorn server: start_sandbox, running_sandbox, RunningSandbox, serve
    entities      an entity's POST/GET/DELETE, generic; ``CUSTOMERS``, ``PRODUCTS``
    validation/   the 400 shape the SDK parses; one module of field rules per entity
                  (customers, and the places they name; products)
    store         SQLite: one table per entity, upserts by code
    faults        latency, jitter, error rate, rate limit, daily quota, lost answers, body cap
    state         what the routes of one app share
"""

from __future__ import annotations

from .app import (
    ENTITIES,
    RunningSandbox,
    create_app,
    key_hint,
    register_entity,
    register_routes,
    running_sandbox,
    serve,
    start_sandbox,
)
from .entities import CUSTOMERS, PRODUCTS, Entity
from .settings import DEFAULT_API_KEY, SandboxSettings, SandboxStats
from .state import SandboxState

__all__ = [
    "CUSTOMERS",
    "DEFAULT_API_KEY",
    "ENTITIES",
    "PRODUCTS",
    "Entity",
    "RunningSandbox",
    "SandboxSettings",
    "SandboxState",
    "SandboxStats",
    "create_app",
    "key_hint",
    "register_entity",
    "register_routes",
    "running_sandbox",
    "serve",
    "start_sandbox",
]
