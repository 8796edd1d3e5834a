"""Extra RabbitMQ nodes on this machine: own node names, ports, data directories and Erlang cookie.

The machine's own broker (rabbit@localhost on 5672/25672) is shared and never touched: every node here
runs `rabbitmq-server` in the foreground as a child of the test process, with its environment pointing
at a temporary folder, and is stopped by name (then by its own process group if it does not go).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.process import free_port

from .certs import Issued, TestCA

# Debian's /usr/sbin wrappers switch to the rabbitmq user and its fixed directories; the real scripts
# take the environment as given.
RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
START_TIMEOUT_S = 120.0
BRIDGE_USER = "bridge"
BRIDGE_PASSWORD = "cluster-pw-" + secrets.token_hex(4)


def _bin(name: str) -> str:
    path = RABBIT_BIN / name
    return str(path) if path.exists() else (shutil.which(name) or name)


@dataclass
class TLSFiles:
    ca: TestCA
    server: Issued


@dataclass
class Node:
    name: str
    folder: Path
    amqp_port: int
    tls_port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    def url(self, user: str = "guest", password: str = "guest") -> str:
        """guest may only connect from localhost, as here; `BRIDGE_USER` works from anywhere."""
        return f"amqp://{user}:{password}@127.0.0.1:{self.amqp_port}/"

    def tls_url(self, host: str = "localhost") -> str:
        return f"amqps://guest:guest@{host}:{self.tls_port}/"

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        result = subprocess.run(
            [_bin("rabbitmqctl"), "-n", self.name, "-q", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"rabbitmqctl {' '.join(args)} on {self.name}: {result.stderr or result.stdout}"
            )
        return result.stdout

    def start(self) -> None:
        with open(self.folder / "console.log", "wb") as log:  # the child keeps its own copy of the fd
            self.process = subprocess.Popen(
                [_bin("rabbitmq-server")],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def await_startup(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:  # await_startup fails until the Erlang node is registered, so ping first
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.console()}")
            ping = subprocess.run(
                [_bin("rabbitmq-diagnostics"), "-n", self.name, "-q", "ping"],
                env=self.env,
                capture_output=True,
            )
            if ping.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} never answered:\n{self.console()}")
            time.sleep(0.5)
        self.ctl("await_startup", "--timeout", str(int(START_TIMEOUT_S)), timeout=START_TIMEOUT_S + 5)

    def stop(self) -> None:
        """Stop the whole node (its Erlang VM too), the way a crashed or drained machine goes away."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(Exception):
            self.ctl("stop", timeout=60)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def connection_names(self) -> list[str]:
        return [line.strip() for line in self.ctl("list_connections", "client_properties").splitlines()]

    def console(self) -> str:
        with contextlib.suppress(OSError):
            return (self.folder / "console.log").read_text(errors="replace")[-4000:]
        return ""


def _node(root: Path, tag: str, index: int, cookie_home: Path, tls: TLSFiles) -> Node:
    name = f"rtvbp-{tag}-{index}@localhost"
    folder = root / f"node{index}"
    folder.mkdir(parents=True)
    amqp_port, tls_port, dist_port = free_port(), free_port(), free_port()
    (folder / "enabled_plugins").write_text("[].\n")  # no management plugin: its port is the shared broker's
    (folder / "rabbitmq-env.conf").write_text("")  # not the machine's /etc/rabbitmq/rabbitmq-env.conf
    (folder / "rabbitmq.conf").write_text(
        "\n".join(
            [
                f"listeners.tcp.default = 127.0.0.1:{amqp_port}",
                f"listeners.ssl.default = 127.0.0.1:{tls_port}",
                f"ssl_options.cacertfile = {tls.ca.bundle}",
                f"ssl_options.certfile = {tls.server.cert}",
                f"ssl_options.keyfile = {tls.server.key}",
                "ssl_options.verify = verify_peer",
                "ssl_options.fail_if_no_peer_cert = true",  # so a passing test proves the client cert is sent
                "",
            ]
        )
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(cookie_home),
        "LANG": "C.UTF-8",
        "RABBITMQ_NODENAME": name,
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(amqp_port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
        "RABBITMQ_LOG_BASE": str(folder / "log"),
        "RABBITMQ_PID_FILE": str(folder / "node.pid"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
        "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(folder / "advanced.config"),
        "RABBITMQ_CONF_ENV_FILE": str(folder / "rabbitmq-env.conf"),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
    }
    return Node(name, folder, amqp_port, tls_port, env)


@contextmanager
def rabbit_cluster(root: Path, size: int = 3) -> Iterator[tuple[list[Node], TLSFiles]]:
    """`size` nodes joined by RabbitMQ's own `join_cluster`, each with a TLS listener; torn down after."""
    tag = secrets.token_hex(3)
    cookie_home = root / "home"
    cookie_home.mkdir(parents=True)
    cookie = cookie_home / ".erlang.cookie"
    cookie.write_text(secrets.token_hex(16))
    cookie.chmod(0o400)
    ca = TestCA(root / "pki", "test-ca")
    tls = TLSFiles(ca, ca.issue("localhost", server=True, dns=("localhost",)))
    nodes = [_node(root, tag, i + 1, cookie_home, tls) for i in range(size)]
    try:
        for node in nodes:
            node.start()
        with ThreadPoolExecutor(size) as pool:
            list(pool.map(Node.await_startup, nodes))
        for node in nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", nodes[0].name)
            node.ctl("start_app")
        # A user whose password the tests look for in the logs (users are cluster-wide).
        nodes[0].ctl("add_user", BRIDGE_USER, BRIDGE_PASSWORD)
        nodes[0].ctl("set_permissions", "-p", "/", BRIDGE_USER, ".*", ".*", ".*")
        yield nodes, tls
    finally:
        with ThreadPoolExecutor(size) as pool:
            list(pool.map(Node.stop, nodes))
        shutil.rmtree(root, ignore_errors=True)
