"""The ``kundlinow`` command: ``serve``, ``migrate`` and the subcommands other packages add.

Each entry of :data:`COMMAND_MODULES` is a module with ``register(subparsers)`` that adds its
subcommands; a subcommand's ``func(settings, args) -> int`` runs it and returns the exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Sequence

from aiohttp import web

from core.db import MigrationEdited
from core.logconfig import configure_logging
from kundlinow.config import ConfigError, Settings, from_env, load_environment
from kundlinow.database import open_database

COMMAND_MODULES: tuple[str, ...] = ("api.commands", "billing.cli", "signalling.cli")
"""Modules (beyond this one) that register subcommands."""


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from kundlinow.app import create_app, drain_on_sigterm_hook

    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    print(f"kundlinow: serving on http://{host}:{port} (Ctrl-C stops)", file=sys.stderr, flush=True)
    app = create_app(settings)
    app.on_startup.append(drain_on_sigterm_hook)
    web.run_app(app, host=host, port=port, access_log=None, print=None)
    return 0


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> list[str]:
        async with open_database(settings, migrate=True) as database:
            return await database.pending_migrations()

    pending = asyncio.run(run())
    print("migrations up to date" if not pending else f"still pending: {pending}")
    return 0 if not pending else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kundlinow", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP/WebSocket server")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.set_defaults(func=_serve)
    commands.add_parser("migrate", help="apply pending database migrations").set_defaults(
        func=_migrate
    )
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = from_env(load_environment())
    except ConfigError as exc:
        print(f"kundlinow: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    try:
        result: int = args.func(settings, args)
    except MigrationEdited as exc:
        print(f"kundlinow: {exc}", file=sys.stderr)
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
