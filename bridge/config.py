"""Service settings, read from `BRIDGE_*` environment variables and validated once at start-up.

Every value a deployment can set lives here, so `rtvbp-bridge serve --help` can document them all and a
bad value stops the process before it listens, with one clear line per problem.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bridge.auth import AuthMode
from bridge.broker.addresses import BrokerTLS, parse_addresses
from bridge.protocol.codecs import FRAME_MS, CodecKey

DrainAction = Literal["move", "hangup"]

CommaList = Annotated[tuple[str, ...], NoDecode]


def _split_commas(value: object) -> object:
    """Lists come from the environment as comma-separated text (JSON would be hostile to operators)."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class Settings(BaseSettings):
    """All settings of the bridge. Environment variable = `BRIDGE_` + upper-case field name."""

    model_config = SettingsConfigDict(env_prefix="BRIDGE_", extra="ignore", frozen=True)

    # --- listening -------------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address to listen on (0.0.0.0 in containers).")
    port: int = Field(8080, ge=0, le=65535, description="TCP port for WebSocket, health and metrics.")
    ws_path: str = Field("/", description="HTTP path of the RTVBP WebSocket endpoint.")
    workers: int = Field(1, ge=1, le=64, description="Worker processes sharing the port (SO_REUSEPORT).")
    event_loop: Literal["auto", "asyncio", "uvloop"] = Field(
        "auto", description="asyncio event loop: uvloop when installed (auto), or force one."
    )
    instance_id: str = Field(
        default_factory=socket.gethostname, description="Identifies this replica in session.started."
    )

    # --- admission -------------------------------------------------------------------------------
    auth_mode: AuthMode = Field("none", description="none (local development only), token or jwt.")
    auth_allow_insecure: bool = Field(
        False, description="Allow auth_mode=none on a non-loopback address (never in production)."
    )
    auth_tokens: Annotated[tuple[SecretStr, ...], NoDecode] = Field(
        (), description="Static bearer tokens for auth_mode=token, comma-separated."
    )
    jwt_public_keys: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="RS256 public keys (PEM) for auth_mode=jwt; several allowed for rotation."
    )
    jwt_keys_dir: Path | None = Field(
        None, description="Directory of <kid>.pem public keys (a mounted Secret)."
    )
    jwt_issuer: str = Field("auth.babelforce.com", description="Required `iss` claim.")
    jwt_subject: str = Field("com.babelforce.svc.telephony.realtime", description="Required `sub` claim.")
    jwt_accounts: CommaList = Field((), description="Allowed `aud` values (babelforce account ids).")
    jwt_leeway_s: float = Field(30.0, ge=0, le=600, description="Clock skew tolerated on exp/nbf/iat.")
    allowed_origins: CommaList = Field(
        (), description="Exact Origins allowed to use the browser `bearer.` subprotocol carrier."
    )

    # --- WebSocket limits --------------------------------------------------------------------------
    max_sessions: int = Field(200, ge=1, description="Concurrent calls per process; more get HTTP 503.")
    max_message_bytes: int = Field(262_144, ge=4096, description="Largest WebSocket message accepted.")
    handshake_timeout_s: float = Field(10.0, gt=0, description="Time allowed for the opening handshake.")
    ws_ping_interval_s: float = Field(5.0, gt=0, description="WebSocket keepalive ping interval.")
    ws_ping_timeout_s: float = Field(15.0, gt=0, description="Close a peer whose pong is this late.")
    init_timeout_s: float = Field(10.0, gt=0, description="Close a session not initialized in this time.")
    request_timeout_s: float = Field(5.0, gt=0, description="Wait for the voice's answer to our requests.")
    terminal_grace_ms: int = Field(
        100, ge=0, le=5000, description="Pause between a terminal reply and close."
    )

    # --- audio ---------------------------------------------------------------------------------------
    codec_preference: CommaList = Field(
        ("L16/8000/1", "L16/16000/1", "L16/24000/1"),
        description="Codec ids in order of preference; the first one the voice offers is chosen.",
    )
    audio_chunk_ms: int = Field(
        100, ge=FRAME_MS, le=1000, description="Caller audio per AMQP message (x20 ms)."
    )
    playout_lead_ms: int = Field(
        100, ge=FRAME_MS, le=2000, description="How far ahead of real time audio is sent."
    )
    playout_max_ms: int = Field(60_000, ge=1000, description="Playout buffer bound per call.")
    mirror_out: bool = Field(False, description="Publish a copy of played audio to <session>.out.")

    # --- RabbitMQ ------------------------------------------------------------------------------------
    amqp_url: SecretStr = Field(
        SecretStr("amqp://guest:guest@127.0.0.1:5672/"),
        description="Broker URL, or several comma-separated (cluster nodes): the first that answers is used.",
    )
    amqp_ca_file: Path | None = Field(None, description="CA bundle (PEM) that signs the amqps:// brokers.")
    amqp_cert_file: Path | None = Field(None, description="Client certificate (PEM) for amqps://, optional.")
    amqp_key_file: Path | None = Field(None, description="Private key (PEM) of the client certificate.")
    amqp_verify_hostname: bool = Field(
        True, description="Check that an amqps:// broker's certificate names the host in its URL."
    )
    exchange_prefix: str = Field("rtvbp", pattern=r"^[A-Za-z0-9_.:-]{1,64}$", description="Exchange prefix.")
    confirm_window: int = Field(256, ge=1, le=10_000, description="Unconfirmed control messages in flight.")
    audio_backlog_ms: int = Field(
        10_000, ge=0, description="Caller audio held per call while the broker is away."
    )
    publish_timeout_s: float = Field(
        1.5, gt=0, le=30, description="Budget to start a call on the broker (session.started confirmed)."
    )
    amqp_heartbeat_s: int = Field(
        7,  # RabbitMQ drops a silent peer after 2-3 of these: ~20 s at worst, no false alarm under load
        ge=0,
        le=600,
        description="AMQP heartbeat timeout (s): how fast a silent peer is noticed (0 = off).",
    )
    replay: bool = Field(False, description="Also keep every event and audio chunk in <prefix>.replay.")
    replay_max_age_s: int = Field(3600, ge=1, description="Replay stream retention by age (seconds).")
    replay_max_bytes: int = Field(0, ge=0, description="Replay stream retention by size (bytes, 0 = none).")

    # --- lifecycle and telemetry ---------------------------------------------------------------------
    drain_timeout_s: float = Field(30.0, ge=0, description="Live calls may continue this long after SIGTERM.")
    drain_action: DrainAction = Field("move", description="How calls still up after the drain are ended.")
    log_format: Literal["text", "json"] = Field("text", description="Log line format.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    metrics_enabled: bool = Field(False, description="Serve Prometheus metrics at GET /metrics.")

    @field_validator(
        "auth_tokens", "jwt_public_keys", "jwt_accounts", "allowed_origins", "codec_preference", mode="before"
    )
    @classmethod
    def _lists(cls, value: object) -> object:
        return _split_commas(value)

    @field_validator("jwt_public_keys", mode="before")
    @classmethod
    def _pems(cls, value: object) -> object:
        # PEM blocks contain no commas, but a single env var may hold several concatenated blocks.
        if isinstance(value, tuple) and len(value) == 1 and value[0].count("-----BEGIN") > 1:
            blocks = value[0].split("-----BEGIN")
            return tuple("-----BEGIN" + b for b in blocks if b.strip())
        return value

    @field_validator("ws_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or value in ("/healthz", "/readyz", "/metrics"):
            raise ValueError("must start with '/' and not be a health or metrics path")
        return value

    @field_validator("audio_chunk_ms")
    @classmethod
    def _chunk(cls, value: int) -> int:
        if value % FRAME_MS:
            raise ValueError(f"must be a multiple of {FRAME_MS} ms (the RTVBP frame time)")
        return value

    @field_validator("codec_preference")
    @classmethod
    def _codecs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one codec id is needed, e.g. L16/8000/1")
        for codec_id in value:
            problem = CodecKey.parse(codec_id).unsupported()  # ValueError for a malformed id
            if problem is not None:
                raise ValueError(f"{codec_id!r}: {problem}")
        return value

    @field_validator("amqp_url")
    @classmethod
    def _addresses(cls, value: SecretStr) -> SecretStr:
        parse_addresses(value.get_secret_value())  # AddressError is a ValueError; its text has no password
        return value

    @field_validator("amqp_ca_file", "amqp_cert_file", "amqp_key_file")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a readable file")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        if (self.amqp_cert_file is None) != (self.amqp_key_file is None):
            raise ValueError("BRIDGE_AMQP_CERT_FILE and BRIDGE_AMQP_KEY_FILE go together")
        if self.auth_mode == "none" and not self.auth_allow_insecure and not _is_loopback(self.host):
            raise ValueError(
                f"auth_mode=none would accept unauthenticated calls on {self.host}; use token or jwt, "
                "listen on 127.0.0.1, or set BRIDGE_AUTH_ALLOW_INSECURE=true"
            )
        if self.auth_mode == "token" and not self.auth_tokens:
            raise ValueError("auth_mode=token needs BRIDGE_AUTH_TOKENS")
        if self.auth_mode == "jwt":
            if not self.jwt_public_keys and self.jwt_keys_dir is None:
                raise ValueError("auth_mode=jwt needs BRIDGE_JWT_PUBLIC_KEYS or BRIDGE_JWT_KEYS_DIR")
            if not self.jwt_accounts:
                raise ValueError("auth_mode=jwt needs BRIDGE_JWT_ACCOUNTS (the aud allow-list)")
        if self.workers > 1 and self.port == 0:
            raise ValueError("BRIDGE_WORKERS > 1 needs a fixed BRIDGE_PORT (the workers share it)")
        if self.ws_ping_timeout_s < self.ws_ping_interval_s:
            raise ValueError("ws_ping_timeout_s must be at least ws_ping_interval_s")
        return self


def broker_tls(settings: Settings) -> BrokerTLS:
    return BrokerTLS(
        ca_file=settings.amqp_ca_file,
        cert_file=settings.amqp_cert_file,
        key_file=settings.amqp_key_file,
        verify_hostname=settings.amqp_verify_hostname,
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SettingsError(Exception):
    """Bad configuration; str() is one line per problem, naming the environment variable."""


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            var = f"BRIDGE_{field.upper()}" if field else "configuration"
            lines.append(f"{var}: {err['msg']}")
        raise SettingsError("\n".join(lines)) from None


def describe_settings() -> str:
    """Text for `serve --help`: every variable, its default and what it does."""
    rows = []
    for name, info in Settings.model_fields.items():
        default = info.get_default(call_default_factory=False)
        if isinstance(default, SecretStr):
            default = "(secret)"
        elif isinstance(default, tuple):
            default = ",".join(str(d) for d in default)
        elif info.default_factory is not None:
            default = "(computed)"
        rows.append(f"  BRIDGE_{name.upper():<26} {info.description or ''} [default: {default}]")
    return "\n".join(rows)
