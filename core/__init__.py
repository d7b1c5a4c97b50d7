"""The infrastructure leaf: what every package stands on, with no business rules.

Database pool and migrations runner, embedded PostgreSQL, event bus, clock, audit log, the
consultations' session log, rate limits, the presence lookup interface, log configuration,
trusted-proxy handling and HTTP metrics. Nothing here imports another package of this project
(an import-linter contract checks it) and nothing reads the environment or
``kundlinow.config.Settings``: every function takes plain arguments, and ``kundlinow`` (the
composition root) passes them in.
"""
