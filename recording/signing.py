"""Short-lived signed URLs for recording content (what a ``<video src>`` can carry).

``sig`` is an HMAC-SHA256 (RFC 2104) over the recording id, the expiry and the admin the URL
was issued to (named in the audit log of each access), keyed by a key derived from the JWT
secret, base64url without padding (RFC 4648 §5).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from urllib.parse import urlencode


def url_key(jwt_secret: str) -> bytes:
    """A key of its own for content URLs, so a URL signature is never a token signature."""
    return hmac.new(jwt_secret.encode(), b"kundlinow recording url v1", hashlib.sha256).digest()


def _mac(key: bytes, recording_id: uuid.UUID, exp: int, by: uuid.UUID) -> str:
    message = f"{recording_id}:{exp}:{by}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def signed_path(key: bytes, recording_id: uuid.UUID, by: uuid.UUID, exp: int) -> str:
    """``/recordings/{id}/content?exp=…&by=…&sig=…`` valid until Unix time ``exp``."""
    query = urlencode({"exp": exp, "by": str(by), "sig": _mac(key, recording_id, exp, by)})
    return f"/recordings/{recording_id}/content?{query}"


def check(
    key: bytes, recording_id: uuid.UUID, exp: int, by: uuid.UUID, sig: str, now: float
) -> str | None:
    """``None`` if the signature is good and unexpired, else the error code."""
    if not hmac.compare_digest(_mac(key, recording_id, exp, by), sig):
        return "BAD_SIGNATURE"
    if exp < now:
        return "URL_EXPIRED"
    return None
