"""`rtvbp-bridge` command line: serve, and the user tools simulate and tap."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bridge import __version__
from bridge.config import SettingsError, describe_settings, load_settings
from bridge.logs import setup_logging
from bridge.loop import run as run_loop

SERVE_EPILOG = (
    "Configuration comes from environment variables:\n\n{settings}\n\n"
    "OpenTelemetry is configured with the standard OTEL_* variables."
)


def _serve(args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"rtvbp-bridge: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings.log_format)
    if settings.workers > 1:
        from bridge.workers import run_workers

        return run_workers(settings)
    from bridge.service import serve

    try:
        run_loop(serve(settings), settings.event_loop)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"rtvbp-bridge: cannot serve: {exc}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtvbp-bridge", description="RTVBP application-role bridge to RabbitMQ"
    )
    parser.add_argument("--version", action="version", version=f"rtvbp-bridge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve",
        help="serve RTVBP calls and bridge them onto RabbitMQ",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=SERVE_EPILOG.format(settings=describe_settings()),
    )
    serve.set_defaults(func=_serve)
    _add_tools(sub)
    return parser


def _add_tools(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The user tools: a telephony simulator / load generator and a bus tap."""
    from bridge.tools import simulate_cli, tap

    tools = (
        (
            "simulate",
            simulate_cli,
            "call a bridge like telephony does (WAV or tone, DTMF, hang-up); --calls N for load",
        ),
        ("tap", tap, "watch calls on the bus: print events, write caller/played audio to WAV files"),
    )
    for name, tool, summary in tools:
        parser = sub.add_parser(
            name,
            help=summary,
            description=tool.__doc__,
            epilog=tool.EXAMPLES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        tool.add_arguments(parser)
        parser.set_defaults(func=tool.run)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
