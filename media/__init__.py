"""The SFU: forwards encoded media between consultation participants (see ``engine``)."""

from media.config import MediaSettings
from media.engine import MediaEngine
from media.errors import MediaError, MediaErrorCode

__all__ = ["MediaEngine", "MediaError", "MediaErrorCode", "MediaSettings"]
