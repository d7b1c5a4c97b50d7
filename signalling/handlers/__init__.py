"""Client message handlers, one module per concern; :mod:`signalling.dispatch` maps types here.

Each handler is ``async (ctx, conn, data) -> ack data`` and raises
:class:`~signalling.errors.SignalError` (or a domain error with a stable code) on refusal.
"""
