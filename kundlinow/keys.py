"""Every typed key of the aiohttp application, in one place."""

from __future__ import annotations

from aiohttp import web

from billing.consultations import ConsultationService
from kundlinow.bus import EventBus
from kundlinow.clock import Clock
from kundlinow.config import Settings
from kundlinow.db import Database
from media.engine import MediaEngine
from turn.config import TurnSettings

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
BUS = web.AppKey("bus", EventBus)
CLOCK = web.AppKey("clock", Clock)
CONSULTATIONS = web.AppKey("consultations", ConsultationService)
TURN_SETTINGS = web.AppKey("turn_settings", TurnSettings)
MEDIA = web.AppKey("media", MediaEngine)
