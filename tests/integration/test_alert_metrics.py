"""Every metric the chart's alerts and Grafana dashboard name is one a live bridge exports on /metrics.

A rule on a metric that does not exist never fires and a panel on one stays empty, silently; so the names
are taken from the rendered chart (PrometheusRule and dashboard ConfigMap) and looked up in the samples a
real `rtvbp-bridge serve` exposes after a call that touches every instrument.
"""

from __future__ import annotations

import contextlib
import json
import re
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bridge.audio.signal import tone
from bridge.tools.voicepeer import VoicePeer
from tests.helm.test_chart import DEFAULT_VALUES, one, render
from tests.support.amqp import Agent
from tests.support.polling import until
from tests.support.process import bridge_process
from tests.support.ws import status_of

METRIC = re.compile(r"\brtvbp_[a-z0-9_]+")


def names_in_chart() -> dict[str, set[str]]:
    manifests = render(
        DEFAULT_VALUES,
        "metrics.enabled=true",
        "metrics.prometheusRule.enabled=true",
        "metrics.grafanaDashboard.enabled=true",
    )
    rule = one([m for m in manifests if m["kind"] == "PrometheusRule"], "PrometheusRule")
    where: dict[str, set[str]] = {}
    for group in rule["spec"]["groups"]:
        for alert in group["rules"]:
            for name in METRIC.findall(alert["expr"]):
                where.setdefault(name, set()).add(alert["alert"])
    [dashboard_map] = [m for m in manifests if m["kind"] == "ConfigMap" and "rtvbp-bridge.json" in m["data"]]
    dashboard = json.loads(dashboard_map["data"]["rtvbp-bridge.json"])
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            for name in METRIC.findall(target["expr"]):
                where.setdefault(name, set()).add(f"panel {panel['title']!r}")
    return where


async def test_alerts_and_dashboard_only_name_metrics_the_bridge_exports(
    prefix: str, amqp_url: str, tmp_path: Path
) -> None:
    referenced = names_in_chart()
    assert len(referenced) >= 12, sorted(referenced)  # the extraction found the rules and panels
    env = {
        "BRIDGE_EXCHANGE_PREFIX": prefix,
        "BRIDGE_METRICS_ENABLED": "true",
        "BRIDGE_AUTH_MODE": "token",
        "BRIDGE_AUTH_TOKENS": "metrics-token",
        "OTEL_METRICS_EXPORTER": "none",
    }
    agent = await Agent(amqp_url, prefix).start()
    try:
        with bridge_process(env, tmp_path) as bridge:
            assert await status_of(bridge.ws_url) == 401  # an admission refusal, labelled by cause
            voice = VoicePeer(
                bridge.ws_url, session_id="metrics", headers={"Authorization": "Bearer metrics-token"}
            )
            await voice.connect()
            await voice.initialize()
            await agent.wait_event("session.started", "metrics")
            await voice.send_audio(tone(440, 200, 8000))
            played = await agent.command("metrics", {"type": "audio", "audio": tone(330, 1200, 8000)})
            assert played is not None and played["ok"]
            pcm_bytes = 19_200  # 1.2 s paced in real time: the lead is sampled about every 0.5 s of playout
            await until(lambda: len(voice.played.audio) >= pcm_bytes, timeout=5, what="the audio played")
            ping = await agent.command("metrics", {"type": "request", "method": "ping", "params": {"t0": 1}})
            assert ping is not None and ping["ok"]
            await voice.hangup()
            await voice.close()
            await agent.wait_event("session.ended", "metrics")
            exported: set[str] = set()

            def all_exported() -> bool:  # the call's last counters land just after session.ended
                text = urllib.request.urlopen(f"http://127.0.0.1:{bridge.port}/metrics", timeout=5).read()
                families = text_string_to_metric_families(text.decode())
                exported.update(sample.name for family in families for sample in family.samples)
                return referenced.keys() <= exported

            with contextlib.suppress(AssertionError):
                await until(all_exported, timeout=5, what="the metrics", interval=0.2)
    finally:
        await agent.stop()
    missing = {name: sorted(users) for name, users in referenced.items() if name not in exported}
    assert not missing, f"named in the chart but not exported: {missing}"
