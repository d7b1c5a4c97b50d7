"""The ``kundlinow`` command: ``serve``, ``migrate`` and the subcommands other packages add.

Each entry of :data:`COMMAND_MODULES` is a module with ``register(subparsers)`` that adds its
subcommands; a subcommand's ``func(settings, args) -> int`` runs it and returns the exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import sys
from collections.abc import Sequence

from aiohttp import web

from core import stackdump
from core.db import MigrationEdited
from core.logconfig import configure_logging
from kundlinow.config import ConfigError, Settings, from_env, load_environment
from kundlinow.database import open_database

COMMAND_MODULES: tuple[str, ...] = (
    "kundlinow.commands",
    "kundlinow.billing_commands",
    "kundlinow.recording_commands",
    "kundlinow.node_commands",
)
"""Modules (beyond this one) that register subcommands."""

SHUTDOWN_GRACE_S = 10.0
"""After the drain (SIGTERM), how long aiohttp's shutdown waits for requests still being
handled before it cancels them. Its default, 60 s, would outlast Kubernetes' grace period
(deploy/k8s/server.yaml: DRAIN_DEADLINE + 30 s) and get the pod killed mid-cleanup."""


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from kundlinow.app import create_app, drain_on_sigterm_hook, freeze_startup_heap_hook
    from kundlinow.commands import seed_demo_on_startup

    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    if args.demo and settings.is_production:
        print("kundlinow: --demo is refused when ENV=production", file=sys.stderr)
        return 2
    app = create_app(settings)
    app.on_startup.append(drain_on_sigterm_hook)
    banner: list[str] = []
    if args.demo:  # in this process: the embedded database starts once
        app.on_startup.append(functools.partial(seed_demo_on_startup, lines=banner))
    app.on_startup.append(freeze_startup_heap_hook)  # last: after everything has opened
    banner_end = f"kundlinow is running at http://{host}:{port}/ (Ctrl-C stops)"

    def ready(_: str) -> None:
        # Called once the socket listens: what a newcomer needs is the last thing on screen.
        print("\n".join([*banner, banner_end]), flush=True)

    stackdump.install()  # kill -USR1: where a stuck or slow-to-exit node waits
    web.run_app(app, host=host, port=port, access_log=None, print=ready,
                shutdown_timeout=SHUTDOWN_GRACE_S)
    return 0


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> list[str]:
        async with open_database(settings, migrate=True) as database:
            return await database.pending_migrations()

    pending = asyncio.run(run())
    print("migrations up to date" if not pending else f"still pending: {pending}")
    return 0 if not pending else 1


DESCRIPTION = """\
kundlinow: realtime astrology consultations (chat, voice, video; paid per minute).

Start with `kundlinow serve --demo` (development: embedded PostgreSQL, demo accounts).
Configuration comes from the environment or ./.env (see .env.example)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kundlinow",
        description=DESCRIPTION,
        epilog="`kundlinow COMMAND --help` describes one command.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the HTTP/WebSocket server")
    serve.add_argument("--host", default=None, help="address to listen on (default: HOST)")
    serve.add_argument("--port", type=int, default=None, help="port (default: PORT)")
    serve.add_argument(
        "--demo", action="store_true",
        help="create the demo accounts at start and print their logins (refused in production)",
    )
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
