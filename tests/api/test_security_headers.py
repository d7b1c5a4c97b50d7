"""Security headers on the web app and the API (issue 11, point 21)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp.test_utils import TestClient

from api.keys import NODE_ID
from billing.config import RazorpaySettings
from kundlinow.config import Settings
from tests.conftest import AppFactory
from tests.scrape import Scrape


def _directives(policy: str) -> dict[str, str]:
    found = {}
    for part in policy.split(";"):
        name, _, value = part.strip().partition(" ")
        found[name] = value
    return found


async def test_every_response_carries_the_headers(client: TestClient[Any, Any]) -> None:
    for path in ("/", "/openapi.json", "/client/style.css", "/no-such-page"):
        response = await client.get(path)
        csp = _directives(response.headers["Content-Security-Policy"])
        assert csp["frame-ancestors"] == "'none'", path
        assert csp["script-src"] == "'self'", path  # no inline script, no eval, no CDN
        assert csp["style-src"] == "'self'" and csp["object-src"] == "'none'", path
        assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"]
        host = f"{response.url.host}:{response.url.port}"
        assert f"ws://{host}" in csp["connect-src"] and f"wss://{host}" in csp["connect-src"]
        assert "blob:" in csp["media-src"] and "blob:" in csp["img-src"]
        assert csp["worker-src"] == "'self'" and csp["manifest-src"] == "'self'"
        permissions = response.headers["Permissions-Policy"]
        assert "camera=(self)" in permissions and "microphone=(self)" in permissions
        assert "geolocation=()" in permissions and "payment=()" in permissions
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_a_forged_host_is_not_echoed_into_the_policy(client: TestClient[Any, Any]) -> None:
    response = await client.get("/", headers={"Host": "evil.example; script-src *"})
    policy = response.headers["Content-Security-Policy"]
    assert "evil" not in policy and "script-src 'self';" in policy


async def test_razorpay_checkout_is_allowed_only_when_configured(
    aiohttp_client: Any, make_app: AppFactory, settings: Settings
) -> None:
    razorpay = RazorpaySettings(key_id="rzp_test_x", key_secret="s" * 20, webhook_secret="w" * 20)
    billing = replace(settings.billing, razorpay=razorpay)
    client = await aiohttp_client(make_app(billing=billing))
    response = await client.get("/")
    csp = _directives(response.headers["Content-Security-Policy"])
    assert csp["script-src"] == "'self' https://checkout.razorpay.com"
    assert csp["frame-src"] == "https://api.razorpay.com"
    assert 'payment=(self "https://api.razorpay.com")' in response.headers["Permissions-Policy"]


async def test_violation_reports_are_counted(client: TestClient[Any, Any]) -> None:
    report = {"csp-report": {"effective-directive": "script-src-elem",
                             "blocked-uri": "inline", "document-uri": "http://x/"}}
    response = await client.post(
        "/csp-report", json=report, headers={"Content-Type": "application/csp-report"}
    )
    assert response.status == 204
    assert (await client.post("/csp-report", data=b"not json")).status == 204
    forged = {"csp-report": {"effective-directive": "x" * 30}}
    assert (await client.post("/csp-report", json=forged)).status == 204
    metrics = await (await client.get("/metrics")).text()
    scrape, node = Scrape.parse(metrics), client.app[NODE_ID]
    violations = "kundlinow_csp_violations_total"
    assert scrape.value(violations, directive="script-src-elem", node=node) == 1
    # Made-up directives do not create series (anyone can post here).
    assert scrape.value(violations, directive="other", node=node) == 2
    assert "xxxxx" not in metrics
