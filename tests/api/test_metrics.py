"""``/metrics`` counts requests by route template and status."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from api.keys import NODE_ID
from tests.scrape import Scrape


async def test_requests_are_counted_by_route_and_status(client: TestClient[Any, Any]) -> None:
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/consultants/not-a-uuid")).status == 404
    assert (await client.get("/nowhere")).status == 404
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    scrape = Scrape.parse(text)
    node = client.app[NODE_ID]
    requests = "kundlinow_http_requests_total"
    assert scrape.value(requests, method="GET", route="/healthz", status="200", node=node) == 1
    assert scrape.value(requests, route="/consultants/{id}", status="404", node=node) == 1
    assert scrape.value(requests, route="unmatched", status="404", node=node) == 1
    assert "not-a-uuid" not in text
    assert scrape.value(
        "kundlinow_http_request_duration_seconds_count", route="/healthz", status="200", node=node
    ) == 1


async def test_each_app_has_its_own_registry(client: TestClient[Any, Any], make_app: Any) -> None:
    await client.get("/healthz")
    other = make_app()
    from api.keys import METRICS

    assert other[METRICS].registry is not client.app[METRICS].registry


async def test_metrics_token_is_required_when_configured(
    aiohttp_client: Any, make_app: Any
) -> None:
    client = await aiohttp_client(make_app(metrics_token="s3cret-scrape-token"))
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "s3cret-scrape-token"},
    ):
        response = await client.get("/metrics", headers=headers)
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "METRICS_TOKEN_REQUIRED"
    ok = await client.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape-token"})
    assert ok.status == 200
    assert "kundlinow_http_requests_total" in await ok.text()
