"""What the REST API reads of the configuration: ``kundlinow.config.Settings`` provides it.

A protocol, so ``api`` does not import the composition root that imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from billing.config import BillingSettings
from recording.config import RecordingSettings
from signalling.config import SignallingSettings


class ApiSettings(Protocol):
    @property
    def jwt_secret(self) -> str: ...

    @property
    def jwt_ttl_s(self) -> int: ...

    @property
    def login_ip_limit(self) -> int: ...

    @property
    def login_account_limit(self) -> int: ...

    @property
    def login_window_s(self) -> int: ...

    @property
    def login_account_wide_limit(self) -> int: ...

    @property
    def login_account_wide_window_s(self) -> int: ...

    @property
    def billing(self) -> BillingSettings: ...

    @property
    def metrics_token(self) -> str | None: ...

    @property
    def client_dir(self) -> Path | None: ...

    @property
    def env(self) -> str: ...

    @property
    def birth_data_key(self) -> bytes | None: ...

    @property
    def birth_data_key_file(self) -> Path: ...

    @property
    def recording(self) -> RecordingSettings: ...

    @property
    def signalling(self) -> SignallingSettings:
        """Read for ``masking``: contact details hidden in display names and bios too."""
        ...
