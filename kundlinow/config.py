"""Settings: the one place that reads the environment.

Every component receives the part of :class:`Settings` it needs through its constructor; nothing
else calls ``os.environ``. A bad value stops the process with one line naming the variable.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from dotenv import dotenv_values

from billing.config import BillingSettings, RazorpaySettings
from core.forwarded import IPNetwork, parse_networks
from core.tracing import EXPORTERS, TracingSettings
from kundlinow.secretcheck import weakness
from media.config import MediaSettings
from media.congestion import CongestionSettings
from recording.config import MODES as RECORDING_MODES
from recording.config import STORAGES as RECORDING_STORAGES
from recording.config import RecordingSettings, S3Settings
from signalling.config import MASKABLE, SignallingSettings
from signalling.upload_quota import UploadQuota
from turn.config import TurnSettings, parse_urls

T = TypeVar("T")

ENVIRONMENTS = ("development", "test", "production")
LOG_FORMATS = ("auto", "json", "console")


class ConfigError(ValueError):
    """A configuration variable is missing or malformed; the message names it."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Process-wide configuration, validated once at start."""

    env: str = "development"
    """``development`` | ``test`` | ``production``; production refuses dev-only shortcuts."""
    host: str = "127.0.0.1"
    port: int = 8080
    database_url: str | None = None
    """PostgreSQL DSN; ``None`` starts the embedded server (pgserver) under ``embedded_pg_dir``."""
    embedded_pg_dir: Path = Path("var/pg")
    redis_url: str | None = None
    """Redis URL for multi-node fan-out and shared rate limits; ``None`` keeps both in-process."""
    redis_prefix: str = "kundlinow:"
    """Prefix of every Redis key and channel, so several deployments (or tests) share a server."""
    migrate_on_start: bool = True
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    jwt_ttl_s: int = 3600
    log_format: str = "auto"
    log_level: str = "INFO"
    max_body_bytes: int = 1 << 20
    login_ip_limit: int = 20
    """Login attempts allowed per client IP per ``login_window_s``."""
    login_account_limit: int = 5
    """Failed login attempts allowed per (account, client IP) per ``login_window_s``."""
    login_window_s: int = 300
    login_account_wide_limit: int = 100
    """Failed logins per account from every client per ``login_account_wide_window_s``; never
    applied to a client that signed in to the account before (the owner is not locked out)."""
    login_account_wide_window_s: int = 3600
    trusted_proxies: tuple[IPNetwork, ...] = ()
    """Reverse proxies whose ``X-Forwarded-For`` is believed (see core/forwarded.py)."""
    metrics_token: str | None = field(default=None, repr=False)
    """Bearer token ``/metrics`` requires; required in production, ``None`` leaves it open."""
    db_pool_min: int = 1
    db_pool_max: int = 10
    client_dir: Path | None = None
    """Static web client directory; ``None`` uses the repository's ``client/``."""
    billing: BillingSettings = field(default_factory=BillingSettings)
    """Money: minimum start minutes, commission, free minutes, billing minute, Razorpay."""
    turn: TurnSettings = field(default_factory=TurnSettings)
    """STUN/TURN servers and the coturn shared secret; empty: host candidates only."""
    media: MediaSettings = field(default_factory=MediaSettings)
    """SFU network: ICE host addresses, 1:1 NAT public IP, UDP port range, PLI interval."""
    signalling: SignallingSettings = field(default_factory=SignallingSettings)
    """The WebSocket hub's limits and timers (``WS_*``, ``REQUEST_TIMEOUT``, ...)."""
    recording: RecordingSettings = field(default_factory=RecordingSettings)
    """The live recorder and recording access (``RECORDING``, ``RECORDINGS_DIR``, ...)."""
    birth_data_key: bytes | None = field(default=None, repr=False)
    """AES-256-GCM key of birth profiles (``BIRTH_DATA_KEY``, base64 of 32 bytes); ``None``:
    development keeps one in ``birth_data_key_file``, tests use a fresh one per app."""
    birth_data_key_file: Path = Path("var/birth_data.key")
    node_id: str | None = None
    """This node's id in Redis (presence, room placement, drain); ``None``: a random one."""
    drain_deadline_s: float = 300.0
    """Seconds a draining node gives its live rooms to finish before it moves them."""
    tracing: TracingSettings = field(default_factory=TracingSettings)
    """OpenTelemetry export (the standard ``OTEL_*`` variables); off by default."""

    @property
    def is_production(self) -> bool:
        return self.env == "production"


def _text(env: Mapping[str, str], name: str, default: str) -> str:
    return env.get(name, default).strip()


def _parse(env: Mapping[str, str], name: str, parse: Callable[[str], T], default: T) -> T:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return parse(raw.strip())
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"must be an integer, got {raw!r}") from None


def _positive_int(raw: str) -> int:
    value = _int(raw)
    if value <= 0:
        raise ValueError(f"must be a positive integer, got {raw!r}")
    return value


def _non_negative_int(raw: str) -> int:
    value = _int(raw)
    if value < 0:
        raise ValueError(f"must be zero or more, got {raw!r}")
    return value


def _bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"must be true or false, got {raw!r}")


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in options:
            raise ValueError(f"must be one of {', '.join(options)}, got {raw!r}")
        return raw

    return parse


def _port(raw: str) -> int:
    value = _int(raw)
    if not 0 <= value <= 65535:
        raise ValueError(f"must be a TCP port (0-65535), got {raw!r}")
    return value


def _dsn(scheme_prefixes: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if not raw.startswith(scheme_prefixes):
            raise ValueError(f"must start with {' or '.join(scheme_prefixes)}")
        return raw

    return parse


def _media(env: Mapping[str, str]) -> MediaSettings:
    """``MEDIA_ICE_HOSTS`` (comma-separated), ``MEDIA_PUBLIC_IP``, ``MEDIA_UDP_PORT`` (one
    port for the node; unset: a socket per peer connection), ``MEDIA_UDP_PORT_MIN``,
    ``MEDIA_UDP_PORT_MAX``, ``MEDIA_PLI_INTERVAL_S``, ``MEDIA_CONGESTION_CONTROL`` (on/off;
    see media/config.py and media/congestion.py)."""
    hosts = tuple(h.strip() for h in env.get("MEDIA_ICE_HOSTS", "").split(",") if h.strip())
    public_ip = env.get("MEDIA_PUBLIC_IP", "").strip() or None
    port_min = _parse(env, "MEDIA_UDP_PORT_MIN", _non_negative_int, 0)
    port_max = _parse(env, "MEDIA_UDP_PORT_MAX", _non_negative_int, 0)
    single_port: int | None = _parse(env, "MEDIA_UDP_PORT", _non_negative_int, None)
    pli = _parse(env, "MEDIA_PLI_INTERVAL_S", _float_seconds, 0.5)
    congestion = _parse(env, "MEDIA_CONGESTION_CONTROL", _bool, False)
    try:
        return MediaSettings(
            ice_host_addresses=hosts,
            public_ip=public_ip,
            udp_port_min=port_min,
            udp_port_max=port_max,
            udp_port=single_port,
            pli_interval_s=pli,
            congestion=CongestionSettings(enabled=congestion),
        )
    except ValueError as exc:
        raise ConfigError(f"MEDIA_UDP_PORT, MEDIA_UDP_PORT_MIN/MAX: {exc}") from exc


def _check_production_secret(name: str, value: str) -> None:
    """32+ characters, no published placeholder, not guessable (kundlinow/secretcheck.py)."""
    if len(value) < 32:
        raise ConfigError(f"{name}: must be set to at least 32 characters in production")
    reason = weakness(value)
    if reason is not None:
        raise ConfigError(f"{name}: {reason}")


def _recording(env: Mapping[str, str]) -> RecordingSettings:
    """``RECORDING`` (off|audio|all), ``RECORDINGS_DIR``, ``RECORDING_SEGMENT_SECONDS``,
    ``RECORDING_PARTICIPANT_ACCESS``, ``RECORDING_URL_TTL_SECONDS``, ``RECORDING_STORAGE``
    (local|s3) and the bucket's variables (see recording/config.py)."""
    d = RecordingSettings()
    storage = _parse(env, "RECORDING_STORAGE", _choice(RECORDING_STORAGES), d.storage)
    try:
        return RecordingSettings(
            mode=_parse(env, "RECORDING", _choice(RECORDING_MODES), d.mode),
            directory=Path(_text(env, "RECORDINGS_DIR", str(d.directory))),
            segment_s=_parse(env, "RECORDING_SEGMENT_SECONDS", _float_seconds, d.segment_s),
            participant_access=_parse(env, "RECORDING_PARTICIPANT_ACCESS", _bool, False),
            url_ttl_s=_parse(env, "RECORDING_URL_TTL_SECONDS", _positive_int, d.url_ttl_s),
            storage=storage,
            s3=_recording_s3(env) if storage == "s3" else None,
        )
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _recording_s3(env: Mapping[str, str]) -> S3Settings:
    """``RECORDING_S3_BUCKET``, ``RECORDING_S3_PREFIX`` and the AWS SDKs' own names:
    ``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
    ``AWS_SESSION_TOKEN``."""
    endpoint = _parse(env, "AWS_ENDPOINT_URL", _dsn(("http://", "https://")), "")
    return S3Settings(
        bucket=_text(env, "RECORDING_S3_BUCKET", ""),
        prefix=_text(env, "RECORDING_S3_PREFIX", "").strip("/"),
        region=_text(env, "AWS_REGION", "") or "us-east-1",
        endpoint=endpoint,
        access_key_id=_text(env, "AWS_ACCESS_KEY_ID", ""),
        secret_access_key=_text(env, "AWS_SECRET_ACCESS_KEY", ""),
        session_token=_text(env, "AWS_SESSION_TOKEN", ""),
    )


def _otlp_headers(raw: str) -> dict[str, str]:
    from opentelemetry.util.re import parse_env_headers

    headers = dict(parse_env_headers(raw, liberal=True))
    if not headers:
        raise ValueError("must be comma-separated key=value pairs")
    return headers


def _ratio(raw: str) -> float:
    value = float(raw)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"must be a ratio from 0 to 1, got {raw!r}")
    return value


def _tracing(env: Mapping[str, str]) -> TracingSettings:
    """``OTEL_TRACES_EXPORTER`` (none|otlp), ``OTEL_EXPORTER_OTLP_ENDPOINT``,
    ``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_SERVICE_NAME``, ``OTEL_TRACES_SAMPLER_ARG`` (see
    core/tracing.py)."""
    d = TracingSettings()
    return TracingSettings(
        exporter=_parse(env, "OTEL_TRACES_EXPORTER", _choice(EXPORTERS), d.exporter),
        endpoint=_parse(
            env, "OTEL_EXPORTER_OTLP_ENDPOINT", _dsn(("http://", "https://")), d.endpoint
        ),
        headers=_parse(env, "OTEL_EXPORTER_OTLP_HEADERS", _otlp_headers, {}),
        service_name=_text(env, "OTEL_SERVICE_NAME", d.service_name) or d.service_name,
        sample_ratio=_parse(env, "OTEL_TRACES_SAMPLER_ARG", _ratio, d.sample_ratio),
    )


def _turn(env: Mapping[str, str], production: bool) -> TurnSettings:
    """``TURN_URLS``, ``TURN_SECRET``, ``TURN_TTL_S``, ``TURN_REALM`` (see turn/config.py)."""
    secret = env.get("TURN_SECRET", "").strip() or None
    if production and secret is not None:
        _check_production_secret("TURN_SECRET", secret)
    try:
        return TurnSettings(
            urls=parse_urls(env.get("TURN_URLS", "")),
            secret=secret,
            ttl_s=_parse(env, "TURN_TTL_S", _positive_int, 3600),
            realm=_text(env, "TURN_REALM", "") or None,
            credentials_limit=_parse(env, "TURN_CREDENTIALS_LIMIT", _positive_int, 30),
            credentials_window_s=_parse(env, "TURN_CREDENTIALS_WINDOW_S", _positive_int, 60),
        )
    except ConfigError:
        raise
    except ValueError as exc:
        # TurnSettings' messages start with the variable's name.
        raise ConfigError(str(exc)) from None
def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError(f"must be a positive number, got {raw!r}")
    return value


def _masking(raw: str) -> frozenset[str]:
    if raw.lower() in ("off", "none", "false", "0"):
        return frozenset()
    if raw.lower() in ("on", "all", "true", "1"):
        return MASKABLE
    kinds = frozenset(k.strip().lower() for k in raw.split(",") if k.strip())
    unknown = kinds - MASKABLE
    if unknown:
        allowed = ",".join(sorted(MASKABLE))
        raise ValueError(f"unknown kinds {sorted(unknown)}; use {allowed} or off")
    return kinds


def _content_types(raw: str) -> frozenset[str]:
    types = frozenset(t.strip().lower() for t in raw.split(",") if t.strip())
    if not types or any("/" not in t for t in types):
        raise ValueError(f"must be a comma-separated list of MIME types, got {raw!r}")
    return types


def _upload_quota(env: Mapping[str, str], d: UploadQuota) -> UploadQuota:
    """``UPLOAD_CONSULTATION_MAX_COUNT``/``_BYTES``, ``UPLOAD_USER_MAX_COUNT``/``_BYTES`` per
    ``UPLOAD_USER_WINDOW`` seconds."""
    return UploadQuota(
        consultation_count=_parse(
            env, "UPLOAD_CONSULTATION_MAX_COUNT", _positive_int, d.consultation_count
        ),
        consultation_bytes=_parse(
            env, "UPLOAD_CONSULTATION_MAX_BYTES", _positive_int, d.consultation_bytes
        ),
        user_count=_parse(env, "UPLOAD_USER_MAX_COUNT", _positive_int, d.user_count),
        user_bytes=_parse(env, "UPLOAD_USER_MAX_BYTES", _positive_int, d.user_bytes),
        user_window_s=_parse(env, "UPLOAD_USER_WINDOW", _positive_int, d.user_window_s),
    )


def request_timeout_from_env(env: Mapping[str, str]) -> float:
    """``REQUEST_TIMEOUT``: how long a requested consultation waits for the astrologer. Billing
    ends it (the tick) and the hub ends it (its timer): one value, read here only."""
    return _parse(env, "REQUEST_TIMEOUT", _float_seconds, 60.0)


def signalling_from_env(env: Mapping[str, str]) -> SignallingSettings:
    """The hub's settings (see ``.env.example``)."""
    d = SignallingSettings()
    return SignallingSettings(
        request_timeout_s=request_timeout_from_env(env),
        reconnect_grace_s=_parse(env, "RECONNECT_GRACE", _positive_float, d.reconnect_grace_s),
        max_frame_bytes=_parse(env, "WS_MAX_FRAME", _positive_int, d.max_frame_bytes),
        hard_frame_bytes=_parse(env, "WS_HARD_FRAME", _positive_int, d.hard_frame_bytes),
        rate_per_s=_parse(env, "WS_RATE", _positive_float, d.rate_per_s),
        rate_burst=_parse(env, "WS_RATE_BURST", _positive_int, d.rate_burst),
        max_connections_per_user=_parse(
            env, "WS_MAX_CONNECTIONS_PER_USER", _positive_int, d.max_connections_per_user
        ),
        heartbeat_s=_parse(env, "HEARTBEAT", _positive_float, d.heartbeat_s),
        auth_timeout_s=_parse(env, "WS_AUTH_TIMEOUT", _positive_float, d.auth_timeout_s),
        max_unauthenticated_per_address=_parse(
            env, "WS_MAX_UNAUTHENTICATED_PER_ADDRESS", _positive_int,
            d.max_unauthenticated_per_address,
        ),
        token_check_s=_parse(env, "WS_TOKEN_CHECK", _positive_float, d.token_check_s),
        masking=_parse(env, "CHAT_MASKING", _masking, d.masking),
        upload_max_bytes=_parse(env, "UPLOAD_MAX_BYTES", _positive_int, d.upload_max_bytes),
        upload_types=_parse(env, "UPLOAD_TYPES", _content_types, d.upload_types),
        upload_quota=_upload_quota(env, d.upload_quota),
        presence_node_ttl_s=_parse(
            env, "PRESENCE_NODE_TTL", _positive_float, d.presence_node_ttl_s
        ),
        presence_heartbeat_s=_parse(
            env, "PRESENCE_HEARTBEAT", _positive_float, d.presence_heartbeat_s
        ),
        waitlist_offer_s=_parse(env, "WAITLIST_OFFER", _positive_float, d.waitlist_offer_s),
        chat_writers=_parse(env, "CHAT_DB_WRITERS", _positive_int, d.chat_writers),
    )


def load_environment(dotenv_path: Path | None = Path(".env")) -> dict[str, str]:
    """The process environment over an optional ``.env`` file (the environment wins)."""
    merged: dict[str, str] = {}
    if dotenv_path is not None and dotenv_path.is_file():
        merged.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    merged.update(os.environ)
    return merged


def from_env(env: Mapping[str, str]) -> Settings:
    """Build and validate :class:`Settings`; raises :class:`ConfigError` naming the variable."""
    environment = _parse(env, "ENV", _choice(ENVIRONMENTS), "development")
    jwt_secret = env.get("JWT_SECRET", "").strip()
    if environment == "production":
        _check_production_secret("JWT_SECRET", jwt_secret)
    client_dir = env.get("CLIENT_DIR", "").strip()
    settings = Settings(
        env=environment,
        host=_text(env, "HOST", "127.0.0.1"),
        port=_parse(env, "PORT", _port, 8080),
        database_url=_parse(env, "DATABASE_URL", _dsn(("postgres://", "postgresql://")), None),
        embedded_pg_dir=Path(_text(env, "EMBEDDED_PG_DIR", "var/pg")),
        redis_url=_parse(env, "REDIS_URL", _dsn(("redis://", "rediss://", "unix://")), None),
        redis_prefix=_text(env, "REDIS_PREFIX", "kundlinow:"),
        migrate_on_start=_parse(env, "MIGRATE_ON_START", _bool, True),
        jwt_ttl_s=_parse(env, "JWT_TTL_SECONDS", _positive_int, 3600),
        log_format=_parse(env, "LOG_FORMAT", _choice(LOG_FORMATS), "auto"),
        log_level=_parse(env, "LOG_LEVEL", _choice(("DEBUG", "INFO", "WARNING", "ERROR")), "INFO"),
        max_body_bytes=_parse(env, "MAX_BODY_BYTES", _positive_int, 1 << 20),
        login_ip_limit=_parse(env, "LOGIN_IP_LIMIT", _positive_int, 20),
        login_account_limit=_parse(env, "LOGIN_ACCOUNT_LIMIT", _positive_int, 5),
        login_window_s=_parse(env, "LOGIN_WINDOW_SECONDS", _positive_int, 300),
        login_account_wide_limit=_parse(env, "LOGIN_ACCOUNT_WIDE_LIMIT", _positive_int, 100),
        login_account_wide_window_s=_parse(
            env, "LOGIN_ACCOUNT_WIDE_WINDOW_SECONDS", _positive_int, 3600
        ),
        trusted_proxies=_parse(env, "TRUSTED_PROXIES", parse_networks, ()),
        metrics_token=env.get("METRICS_TOKEN", "").strip() or None,
        db_pool_min=_parse(env, "DB_POOL_MIN", _non_negative_int, 1),
        db_pool_max=_parse(env, "DB_POOL_MAX", _positive_int, 10),
        client_dir=Path(client_dir) if client_dir else None,
        turn=_turn(env, environment == "production"),
        media=_media(env),
        signalling=signalling_from_env(env),
        node_id=_text(env, "NODE_ID", "") or None,
        drain_deadline_s=_parse(env, "DRAIN_DEADLINE", _float_seconds, 300.0),
        recording=_recording(env),
        tracing=_tracing(env),
    )
    if environment == "production":
        # /metrics reveals traffic, routes and error rates: never public in production.
        if settings.metrics_token is None:
            raise ConfigError("METRICS_TOKEN: required in production (/metrics is not public)")
        _check_production_secret("METRICS_TOKEN", settings.metrics_token)
    if jwt_secret:
        settings = replace(settings, jwt_secret=jwt_secret)
    settings = replace(settings, birth_data_key=_birth_data_key(env, environment))
    return replace(settings, billing=billing_from_env(env, environment == "production"))


def _birth_data_key(env: Mapping[str, str], environment: str) -> bytes | None:
    raw = env.get("BIRTH_DATA_KEY", "").strip()
    if not raw:
        if environment == "production":
            raise ConfigError("BIRTH_DATA_KEY: must be set in production (base64 of 32 bytes)")
        return None
    try:
        key = base64.b64decode(raw, validate=True)
    except ValueError:
        raise ConfigError("BIRTH_DATA_KEY: must be base64") from None
    if len(key) != 32:
        raise ConfigError("BIRTH_DATA_KEY: must decode to 32 bytes (AES-256)")
    return key


def _float_seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"must be a number of seconds, got {raw!r}") from None
    if not value > 0:
        raise ValueError(f"must be more than zero seconds, got {raw!r}")
    return value


def _percent(raw: str) -> int:
    value = _int(raw)
    if not 0 <= value <= 100:
        raise ValueError(f"must be a percentage 0-100, got {raw!r}")
    return value


def billing_from_env(env: Mapping[str, str], production: bool) -> BillingSettings:
    """The money settings (MIN_START_MINUTES, COMMISSION_PERCENT, RAZORPAY_* ...)."""
    razorpay = RazorpaySettings(
        key_id=_text(env, "RAZORPAY_KEY_ID", ""),
        key_secret=env.get("RAZORPAY_KEY_SECRET", "").strip(),
        webhook_secret=env.get("RAZORPAY_WEBHOOK_SECRET", "").strip(),
        base_url=_parse(
            env, "RAZORPAY_BASE_URL", _dsn(("https://", "http://")), "https://api.razorpay.com"
        ),
        timeout_seconds=_parse(env, "RAZORPAY_TIMEOUT", _float_seconds, 10.0),
    )
    if bool(razorpay.key_id) != bool(razorpay.key_secret):
        raise ConfigError(
            "RAZORPAY_KEY_SECRET: RAZORPAY_KEY_ID and RAZORPAY_KEY_SECRET go together"
        )
    if razorpay.configured and not razorpay.webhook_secret:
        raise ConfigError("RAZORPAY_WEBHOOK_SECRET: required when Razorpay keys are set")
    return BillingSettings(
        min_start_minutes=_parse(env, "MIN_START_MINUTES", _positive_int, 5),
        commission_percent=_parse(env, "COMMISSION_PERCENT", _percent, 30),
        free_first_minutes=_parse(env, "FREE_FIRST_MINUTES", _non_negative_int, 0),
        minute_seconds=_parse(env, "BILLING_MINUTE_SECONDS", _positive_int, 60),
        request_timeout_seconds=request_timeout_from_env(env),
        internal_ticker=_parse(env, "BILLING_INTERNAL_TICKER", _bool, True),
        tick_interval_seconds=_parse(env, "BILLING_TICK_INTERVAL", _float_seconds, 5.0),
        production=production,
        razorpay=razorpay,
    )
