"""Security headers on every response, and ``POST /csp-report`` that counts CSP violations.

The policy fits the web client (``client/``): ES modules and styles from this origin only, no
inline script or style anywhere (Preact sets styles through the CSSOM, which CSP allows), the
socket on this origin (``ws:``/``wss:`` named explicitly for browsers whose ``'self'`` does not
cover them), chat images and camera previews as ``blob:``, the service worker and the web
manifest from this origin. With Razorpay keys configured, Razorpay Checkout's script and frame
are allowed too. Every response carries the same policy: the service worker's own fetches
follow the policy of ``/sw.js``'s response.

- ``frame-ancestors 'none'`` (CSP3) and ``X-Frame-Options: DENY`` (older browsers): no framing,
  no clickjacking of "accept" or "recharge";
- ``Referrer-Policy: no-referrer``: deep links carry consultation ids;
- ``Permissions-Policy``: camera and microphone for this page only (RFC-less W3C spec),
  everything else a call does not need off.

Violations are reported by the browser to ``/csp-report`` (``report-uri``), logged and counted
(``kundlinow_csp_violations_total``), so a client change that trips the policy shows in metrics.
"""

from __future__ import annotations

import re
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import Counter

from api.config import ApiSettings
from api.errors import ApiError
from api.hygiene import loads
from api.keys import CSP_VIOLATIONS, METRICS, SETTINGS
from api.openapi import operation

log = structlog.get_logger(__name__)
routes = web.RouteTableDef()

CSP_REPORT_PATH = "/csp-report"
RAZORPAY_SCRIPT = "https://checkout.razorpay.com"
RAZORPAY_FRAME = "https://api.razorpay.com"
REPORTED_DIRECTIVES = frozenset(
    {
        "default-src", "script-src", "script-src-elem", "script-src-attr", "style-src",
        "style-src-elem", "style-src-attr", "img-src", "media-src", "connect-src", "font-src",
        "worker-src", "manifest-src", "frame-src", "child-src", "object-src", "base-uri",
        "form-action", "frame-ancestors",
    }
)
"""Label values of ``kundlinow_csp_violations_total``; anything else counts as ``other``."""
_HOST = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$")
"""A Host header safe to repeat in the policy (anything else is left out, never echoed)."""


def content_security_policy(settings: ApiSettings, host: str | None) -> str:
    razorpay = settings.billing.razorpay.configured
    sockets = f" ws://{host} wss://{host}" if host and _HOST.match(host) else ""
    directives = {
        "default-src": "'self'",
        "script-src": "'self'" + (f" {RAZORPAY_SCRIPT}" if razorpay else ""),
        "style-src": "'self'",
        "img-src": "'self' blob: data:",
        "media-src": "'self' blob: mediastream:",
        "connect-src": "'self'" + sockets + (f" {RAZORPAY_FRAME}" if razorpay else ""),
        "font-src": "'self'",
        "worker-src": "'self'",
        "manifest-src": "'self'",
        "frame-src": RAZORPAY_FRAME if razorpay else "'none'",
        "object-src": "'none'",
        "base-uri": "'none'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
        "report-uri": CSP_REPORT_PATH,
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def permissions_policy(settings: ApiSettings) -> str:
    payment = f'(self "{RAZORPAY_FRAME}")' if settings.billing.razorpay.configured else "()"
    features = {
        "camera": "(self)",
        "microphone": "(self)",
        "fullscreen": "(self)",
        "autoplay": "(self)",
        "display-capture": "()",
        "geolocation": "()",
        "payment": payment,
        "usb": "()",
        "serial": "()",
        "bluetooth": "()",
        "interest-cohort": "()",
    }
    return ", ".join(f"{name}={value}" for name, value in features.items())


async def _add_headers(request: web.Request, response: web.StreamResponse) -> None:
    if response.status == 101:  # a WebSocket upgrade has no document
        return
    settings = request.app[SETTINGS]
    headers = response.headers
    headers.setdefault("Content-Security-Policy", content_security_policy(settings, request.host))
    headers.setdefault("Permissions-Policy", permissions_policy(settings))
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")


@routes.post(CSP_REPORT_PATH)
@operation(
    "Browsers report Content-Security-Policy violations here (report-uri); counted and logged",
    status=204,
    content_type=None,
    tags=("operations",),
)
async def csp_report(request: web.Request) -> web.Response:
    try:
        body: Any = loads(await request.read())
    except (ValueError, ApiError):  # not JSON, or nested too deep: count it all the same
        body = None
    report = body.get("csp-report") if isinstance(body, dict) else None
    report = report if isinstance(report, dict) else {}
    directive = str(report.get("effective-directive") or report.get("violated-directive") or "")
    # Anyone may post here: only known directive names become label values (bounded series).
    name = directive.split(" ", 1)[0]
    request.app[CSP_VIOLATIONS].labels(
        name if name in REPORTED_DIRECTIVES else "other", request.app[METRICS].node
    ).inc()
    log.warning(
        "csp_violation_reported",
        directive=directive[:80],
        blocked=str(report.get("blocked-uri", ""))[:200],
        document=str(report.get("document-uri", ""))[:200],
    )
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
    app[CSP_VIOLATIONS] = Counter(
        "kundlinow_csp_violations",
        "Content-Security-Policy violations browsers reported, by directive",
        ("directive", "node"),
        registry=app[METRICS].registry,
    )
    app.on_response_prepare.append(_add_headers)
