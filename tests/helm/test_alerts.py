"""The chart's PrometheusRule checked by the real `promtool` (Debian's prometheus package, `make promtool`).

The rule groups are taken from `helm template` output, so what is checked is what the chart deploys:
`promtool check rules` for syntax and PromQL, `promtool test rules` (tests/helm/alerts.test.yaml) for what
each alert does on a healthy replica and on the failure it is about.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import pytest
import yaml

from tests.helm.test_chart import DEFAULT_VALUES, REPO, Manifest, one, render, run

ALERT_TESTS = Path(__file__).with_name("alerts.test.yaml")
RULE_SETS = ("metrics.enabled=true", "metrics.prometheusRule.enabled=true")


@functools.cache
def promtool() -> str:
    found = shutil.which("promtool") or str(REPO / ".tools" / "bin" / "promtool")
    if not Path(found).is_file():
        pytest.fail("promtool not found on PATH nor in .tools/bin: run `make promtool` (make test does it)")
    return found


def rendered_rules() -> Manifest:
    rule = one(render(DEFAULT_VALUES, *RULE_SETS), "PrometheusRule")
    spec: Manifest = rule["spec"]
    return spec


def write_rules(folder: Path, spec: Manifest) -> Path:
    path = folder / "rules.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_rules_pass_promtool_check(tmp_path: Path) -> None:
    result = run(promtool(), "check", "rules", str(write_rules(tmp_path, rendered_rules())))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 8 rules found" in result.stdout


def test_promtool_check_is_not_vacuous(tmp_path: Path) -> None:
    spec = rendered_rules()
    spec["groups"][0]["rules"][0]["expr"] = "max by (pod (rtvbp_broker_connected)"
    result = run(promtool(), "check", "rules", str(write_rules(tmp_path, spec)))
    assert result.returncode != 0 and "parse error" in result.stdout + result.stderr


def test_every_alert_has_promtool_unit_tests_and_they_pass(tmp_path: Path) -> None:
    spec = rendered_rules()
    alerts = {rule["alert"] for group in spec["groups"] for rule in group["rules"]}
    cases = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    fired = {
        check["alertname"] for case in cases for check in case["alert_rule_test"] if check.get("exp_alerts")
    }
    assert fired == alerts, f"alerts without a firing unit test: {sorted(alerts - fired)}"
    write_rules(tmp_path, spec)
    shutil.copy(ALERT_TESTS, tmp_path / ALERT_TESTS.name)
    result = run(promtool(), "test", "rules", str(tmp_path / ALERT_TESTS.name))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_summary_and_a_runbook_section() -> None:
    operations = (REPO / "docs" / "operations.md").read_text()
    for group in rendered_rules()["groups"]:
        for rule in group["rules"]:
            annotations = rule["annotations"]
            assert annotations["summary"] and annotations["description"], rule["alert"]
            assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
            anchor = annotations["runbook_url"].rpartition("#")[2]
            assert anchor == rule["alert"].lower()
            assert f"\n### {rule['alert']}\n" in operations, f"no runbook section for {rule['alert']}"
