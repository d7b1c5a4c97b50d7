"""Every typed key of the aiohttp application, in one place."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import Counter

from api.config import ApiSettings
from api.passwords import Passwords
from api.revocation import UserStatusCache
from billing.consultations import ConsultationService
from billing.metrics import WebhookMetrics
from billing.payments import PaymentService
from billing.payouts import PayoutService
from billing.wallets import WalletReader
from birth.profiles import ProfileStore
from core.bus import EventBus
from core.clock import Clock
from core.db import Database
from core.metrics import HttpMetrics
from core.presence import PresenceLookup
from core.ratelimit import RateLimiter
from core.session_log import EventLog
from core.tracing import Tracing
from media.engine import MediaEngine
from recording.recorder import Recorder
from signalling.drain import NodeDrain
from signalling.hub import Hub
from turn.config import TurnSettings
from turn.grants import TurnGrants

SETTINGS = web.AppKey("settings", ApiSettings)
DATABASE = web.AppKey("database", Database)
BUS = web.AppKey("bus", EventBus)
CLOCK = web.AppKey("clock", Clock)
CONSULTATIONS = web.AppKey("consultations", ConsultationService)
TURN_SETTINGS = web.AppKey("turn_settings", TurnSettings)
TURN_GRANTS = web.AppKey("turn_grants", TurnGrants)
TRACING = web.AppKey("tracing", Tracing)
MEDIA = web.AppKey("media", MediaEngine)
METRICS = web.AppKey("metrics", HttpMetrics)
"""The app's Prometheus registry (``.registry``) and its HTTP metrics; ``.node`` labels them."""
NODE_ID = web.AppKey("node_id", str)
"""This node's id (``NODE_ID``, or a random one): presence, media claims, metric labels."""
WEBHOOK_METRICS = web.AppKey("webhook_metrics", WebhookMetrics)
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
"""Login throttling; in-memory, or Redis when ``REDIS_URL`` is set."""
PASSWORDS = web.AppKey("passwords", Passwords)
PRESENCE = web.AppKey("presence", PresenceLookup)
"""Who is online; the signalling hub replaces the default (everybody offline) with its own."""
PAYMENTS = web.AppKey("payments", PaymentService)
PAYOUTS = web.AppKey("payouts", PayoutService)
WALLETS = web.AppKey("wallets", WalletReader)
REDIS = web.AppKey("redis", aioredis.Redis)
"""The process's one Redis client (only when ``REDIS_URL`` is set): bus, rate limits, presence
and media routing all share it."""
RoomStats = Callable[[str], Awaitable[dict[str, Any]]]
MEDIA_STATS: web.AppKey[RoomStats] = web.AppKey("media_stats")
"""Live SFU stats of a room, asked of the node hosting its media."""
SESSION_LOG = web.AppKey("session_log", EventLog)
"""The batched writer of consultations' session logs (core.session_log)."""
HUB = web.AppKey("hub", Hub)
"""The signalling hub of this node (sockets, rooms, presence, chat)."""
USER_STATUS = web.AppKey("user_status", UserStatusCache)
"""Whether a token's account still exists, is enabled and the token not revoked."""
CSP_VIOLATIONS = web.AppKey("csp_violations", Counter)
"""Content-Security-Policy violations reported by browsers (api/security_headers.py)."""
RECORDER = web.AppKey("recorder", Recorder)
"""The live recorder (the SFU's observer when ``RECORDING`` is not off), its store and catalog."""
BIRTH_PROFILES = web.AppKey("birth_profiles", ProfileStore)
"""Sealed birth profiles and who may read them (issue 15)."""
NODE = web.AppKey("node", NodeDrain)
"""This node's load heartbeat and drain (``/readyz`` answers 503 while it drains)."""
