"""`rtvbp-bridge` command line: serve, and the user tools simulate and tap."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from bridge import __version__
from bridge.config import SettingsError, describe_settings, load_settings
from bridge.loop import run as run_loop
from bridge.telemetry import LogContext

SERVE_EPILOG = (
    "Configuration comes from environment variables:\n\n{settings}\n\n"
    "OpenTelemetry is configured with the standard OTEL_* variables."
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the call's session id when the record carries one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("session_id", "trace_id", "span_id"):
            value = getattr(record, key, None)
            if value:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(session_id)s] %(message)s")
        )
    handler.addFilter(LogContext())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # websockets logs raw request headers (Authorization included) at DEBUG: never let it.
    logging.getLogger("websockets").setLevel(max(logging.INFO, logging.getLevelName(level)))
    # The server's own websockets logger (credentials redacted) says "connection open/closed" and
    # "HTTP response sent" for every probe and call at INFO: keep that for DEBUG.
    if level != "DEBUG":
        logging.getLogger("bridge.websockets").setLevel(logging.WARNING)
    logging.getLogger("aio_pika").setLevel(logging.WARNING)
    logging.getLogger("aiormq").setLevel(logging.WARNING)


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
    from bridge.tools import simulate_cli as simulate
    from bridge.tools import tap

    sim = sub.add_parser(
        "simulate",
        help="call a bridge like telephony does (WAV or tone, DTMF, hang-up); --calls N for load",
        description=simulate.__doc__,
        epilog=simulate.EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    simulate.add_arguments(sim)
    sim.set_defaults(func=simulate.run)
    watch = sub.add_parser(
        "tap",
        help="watch calls on the bus: print events, write caller/played audio to WAV files",
        description=tap.__doc__,
        epilog=tap.EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tap.add_arguments(watch)
    watch.set_defaults(func=tap.run)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
