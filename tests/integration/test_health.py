"""The service surface: health, readiness, metrics, OpenAPI, problem+json, request ids."""
import pytest

from tests.conftest import async_wait_for

pytestmark = pytest.mark.integration


async def test_readyz_reports_database_cache_and_every_owner(api, stack):
    r = await api.get("/readyz")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["checks"]["database"]["ok"] and body["checks"]["cache"]["ok"]
    owners = body["checks"]["owners"]
    assert set(owners) == ({f"inventory-{i}" for i in range(stack.actors.inventory_shards)}
                           | {f"cart-{i}" for i in range(stack.actors.cart_shards)}
                           | {f"order-{i}" for i in range(stack.actors.order_pipelines)} | {"relay-0", "notifier-0", "analytics-0", "catalog-0"})
    assert all(o["ok"] and o["ready"] for o in owners.values())


async def test_healthz_answers_and_echoes_the_callers_request_id(api):
    r = await api.get("/healthz", headers={"X-Request-ID": "req-abc-123"})
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert r.headers.get_list("x-request-id") == ["req-abc-123"]


async def test_unknown_route_is_a_problem_json_404_with_a_request_id(api):
    r = await api.get("/no/such/thing")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == 404 and body["code"] == "not_found" and body["instance"] == "/no/such/thing"
    assert body["request_id"] == r.headers["x-request-id"]


async def test_invalid_body_is_a_problem_json_422_naming_the_field(api):
    r = await api.post("/inventory/reservations", json={"owner": "cart:x", "lines": [{"sku": "SAMPLE-1", "quantity": 0}]})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == "validation"
    assert any(e["loc"][-1] == "quantity" for e in body["errors"])


async def test_unknown_fields_are_refused_not_ignored(api):
    r = await api.post("/inventory/reservations",
                       json={"owner": "cart:x", "lines": [{"sku": "SAMPLE-1", "quantity": 1}], "price": 1})
    assert r.status_code == 422
    assert any(e["type"] == "extra_forbidden" for e in r.json()["errors"])


async def test_malformed_json_is_a_problem_not_a_crash(api):
    r = await api.post("/inventory/reservations", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["code"] == "validation"


async def test_an_oversized_body_is_refused_with_413_before_parsing(api, stack):
    big = b"x" * (stack.serve.max_body_bytes + 1)
    r = await api.post("/inventory/reservations", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["code"] == "too_large"


async def test_admin_routes_refuse_missing_or_wrong_credentials(api, admin_headers):
    assert (await api.get("/admin/inventory/low-stock")).status_code == 401
    r = await api.get("/admin/inventory/low-stock", headers={"Authorization": "Bearer wrong-token-wrong-token-xx"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert (await api.get("/admin/inventory/low-stock", headers=admin_headers)).status_code == 200


async def test_openapi_documents_the_routes(api):
    spec = (await api.get("/openapi.json")).json()
    assert {"/healthz", "/readyz", "/inventory/reservations"} <= set(spec["paths"])
    assert (await api.get("/docs")).status_code == 200


async def test_metrics_expose_request_counters_in_prometheus_text(api):
    await api.get("/healthz")

    async def exported():
        r = await api.get("/metrics")
        lines = [l for l in r.text.splitlines() if l.startswith("ray_surge_http_requests_total{")]
        return r.status_code == 200 and any('route="/healthz"' in l and 'status="200"' in l for l in lines) and r

    r = await async_wait_for(exported, timeout_s=60, interval_s=1, what="the /healthz request counted in /metrics")
    assert r.headers["content-type"].startswith("text/plain")
    assert "# TYPE ray_surge_http_request_duration_seconds histogram" in r.text


async def test_owner_actors_run_at_the_configured_nice_value_not_rays_default(stack, directory):
    """Ray starts its workers at nice 15, made for nodes that run nothing else; on one machine with
    PostgreSQL that left the owners and replicas ~1/30 of the CPU share of their own database."""
    import psutil

    assert stack.surge.ray_worker_niceness != 15
    for kind in ("inventory", "relay"):
        pid = (await directory.call(kind, 0, "ping"))["pid"]
        assert psutil.Process(pid).nice() == stack.surge.ray_worker_niceness, kind
