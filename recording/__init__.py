"""Recordings: the live recorder the SFU feeds (``recorder``, ``track``, ``writer``), storage
(``store``), the ``recordings`` table (``catalog``), the offline review composer and retention.
Imports nothing of the web layers."""
