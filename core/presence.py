"""Who is reachable right now: the narrow interface the REST API reads presence through.

The signalling hub owns presence (it sees the sockets) and provides the real implementation;
``create_app`` stores one :class:`PresenceLookup` under ``api.keys.PRESENCE``. Until a hub
is wired in, :class:`NoPresence` reports everybody offline.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Literal, Protocol

PresenceStatus = Literal["online", "busy", "offline"]
"""``online``: connected and free; ``busy``: in a live consultation; ``offline``: no socket."""


class PresenceLookup(Protocol):
    async def get_many(self, ids: Iterable[uuid.UUID]) -> Mapping[uuid.UUID, PresenceStatus]:
        """The status of each id; ids missing from the answer are offline."""
        ...


class NoPresence:
    """The default lookup: nobody is connected."""

    async def get_many(self, ids: Iterable[uuid.UUID]) -> Mapping[uuid.UUID, PresenceStatus]:
        return {user_id: "offline" for user_id in ids}
