"""Offline checks of the Helm chart: lint, schema, Kubernetes API validation and the rendered objects.

No cluster exists here, so the chart is verified the way `tooling.md` §2 proved workable: the real
`helm` binary (`make helm-tool`) for lint and template, `kubernetes-validate --strict` in place of
kubeconform, `yamllint`, and pytest assertions on `helm template` output in place of helm-unittest.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "rtvbp-bridge"
CI_VALUES = REPO / "helm" / "ci"
DEFAULT_VALUES = CI_VALUES / "default-values.yaml"
FULL_VALUES = CI_VALUES / "full-values.yaml"
RELEASE = "calls"
NAMESPACE = "voice"
KUBE_VERSION = "1.30.0"
VENV_BIN = Path(sys.executable).parent

SCENARIOS = {"default": DEFAULT_VALUES, "full": FULL_VALUES}
STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
)
SECRET_ENV = ("BRIDGE_AMQP_URL", "BRIDGE_AUTH_TOKENS", "BRIDGE_JWT_PUBLIC_KEYS")

Manifest = dict[str, Any]


# --- running the tools -------------------------------------------------------------------------------


@functools.cache
def helm_binary() -> str:
    found = shutil.which("helm")
    if found:
        return found
    local = REPO / ".tools" / "bin" / "helm"
    if local.is_file():
        return str(local)
    pytest.fail("helm binary not found on PATH nor in .tools/bin: run `make helm-tool` (make test does it)")


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=60, check=False)


@functools.cache
def helm_template(values_file: Path | None, sets: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    args = [helm_binary(), "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    args += ["--kube-version", KUBE_VERSION]
    if values_file is not None:
        args += ["-f", str(values_file)]
    for item in sets:
        args += ["--set", item]
    return run(*args)


def render_text(values_file: Path | None, *sets: str) -> str:
    result = helm_template(values_file, sets)
    assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
    return result.stdout


def render(values_file: Path | None, *sets: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(render_text(values_file, *sets)) if doc]


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: list[Manifest], kind: str) -> Manifest:
    found = of_kind(manifests, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def bridge_config(manifests: list[Manifest]) -> Manifest:
    """The bridge's settings ConfigMap (the Grafana dashboard may be a second ConfigMap)."""
    found = [m for m in of_kind(manifests, "ConfigMap") if m["metadata"]["name"] == f"{RELEASE}-rtvbp-bridge"]
    assert len(found) == 1, found
    return found[0]


def container(manifests: list[Manifest]) -> Manifest:
    containers = one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["bridge"]
    bridge: Manifest = containers[0]
    return bridge


def env_by_name(manifests: list[Manifest]) -> dict[str, Manifest]:
    return {entry["name"]: entry for entry in container(manifests)["env"]}


def load_values(path: Path) -> Manifest:
    values: Manifest = yaml.safe_load(path.read_text())
    return values


def chart_meta() -> Manifest:
    return load_values(CHART / "Chart.yaml")


def chart_defaults() -> Manifest:
    return load_values(CHART / "values.yaml")


@pytest.fixture(params=sorted(SCENARIOS))
def scenario(request: pytest.FixtureRequest) -> Path:
    return SCENARIOS[request.param]


# --- lint, API schema, YAML style --------------------------------------------------------------------


def test_helm_lint_strict(scenario: Path) -> None:
    result = run(helm_binary(), "lint", "--strict", str(CHART), "-f", str(scenario))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "0 chart(s) failed" in output
    # Lint mode turns template `fail` calls into INFO lines instead of errors; none may fire.
    assert "Fail:" not in output, output


def test_rendered_manifests_pass_strict_kubernetes_validation(scenario: Path) -> None:
    rendered = render_text(scenario)
    result = run(str(VENV_BIN / "kubernetes-validate"), "--strict", "-k", KUBE_VERSION, "-", stdin=rendered)
    assert result.returncode == 0, result.stdout + result.stderr
    kinds = {m["kind"].lower() for m in yaml.safe_load_all(rendered) if m}
    for kind in kinds - {"servicemonitor", "prometheusrule"}:  # CRDs: no bundled schema, checked below
        assert f"passed for resource {kind}/" in result.stdout


def test_kubernetes_validate_rejects_an_unknown_field() -> None:
    """The validation above is not vacuous: a stray field in the Deployment is an error."""
    manifests = render(DEFAULT_VALUES)
    one(manifests, "Deployment")["spec"]["template"]["spec"]["bogusField"] = True
    broken = yaml.safe_dump_all(manifests)
    result = run(str(VENV_BIN / "kubernetes-validate"), "--strict", "-k", KUBE_VERSION, "-", stdin=broken)
    assert result.returncode != 0
    assert "bogusField" in result.stdout + result.stderr


def test_yamllint_relaxed(tmp_path: Path) -> None:
    files = [CHART / "values.yaml", CHART / "Chart.yaml", DEFAULT_VALUES, FULL_VALUES]
    for name, values in SCENARIOS.items():
        out = tmp_path / f"rendered-{name}.yaml"
        out.write_text(render_text(values))
        files.append(out)
    result = run(str(VENV_BIN / "yamllint"), "-d", "relaxed", "-f", "parsable", *map(str, files))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[error]" not in result.stdout


# --- the workload ------------------------------------------------------------------------------------


def test_probes_hit_health_endpoints_on_the_container_port(scenario: Path) -> None:
    manifests = render(scenario)
    bridge = container(manifests)
    port = int(bridge_config(manifests)["data"]["BRIDGE_PORT"])
    assert bridge["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    expected = {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"}
    for probe, path in expected.items():
        assert bridge[probe]["httpGet"] == {"path": path, "port": "http"}, probe
    service = one(manifests, "Service")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]


def prestop_seconds(bridge: Manifest) -> int:
    pre_stop = bridge["lifecycle"]["preStop"]
    if "sleep" in pre_stop:
        return int(pre_stop["sleep"]["seconds"])
    command = pre_stop["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2
    return int(command[1])


def test_grace_period_exceeds_drain_timeout_plus_prestop(scenario: Path) -> None:
    manifests = render(scenario)
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    drain = float(bridge_config(manifests)["data"]["BRIDGE_DRAIN_TIMEOUT_S"])
    pre_stop = prestop_seconds(container(manifests))
    assert pre_stop > 0
    # the drain, then up to 20 s to end the calls left and publish their session.ended
    assert pod["terminationGracePeriodSeconds"] >= drain + pre_stop + 20


def test_prestop_sleep_action_is_optional() -> None:
    exec_form = container(render(DEFAULT_VALUES))["lifecycle"]["preStop"]
    native = container(render(DEFAULT_VALUES, "lifecycle.useSleepAction=true"))["lifecycle"]["preStop"]
    assert "exec" in exec_form and "sleep" not in exec_form
    assert native == {"sleep": {"seconds": prestop_seconds({"lifecycle": {"preStop": exec_form}})}}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    logical: list[str] = []
    pending = ""
    for raw in (REPO / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


def dockerfile_final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    return instructions[last_from:]


def dockerfile_base_image(from_args: str) -> str:
    """The image a FROM line names, with global ARG defaults (those before the first FROM) applied."""
    image = from_args.split()[0]
    for op, args in dockerfile_instructions():
        if op == "FROM":
            break
        if op == "ARG" and "=" in args:
            name, _, default = args.partition("=")
            image = image.replace(f"${{{name}}}", default)
    return image


def test_security_context_is_restricted_and_matches_the_image_user(scenario: Path) -> None:
    manifests = render(scenario)
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    ctx = container(manifests)["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert ctx["runAsNonRoot"] is True
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"]["drop"] == ["ALL"]
    assert "add" not in ctx["capabilities"]
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False

    users = [args for op, args in dockerfile_final_stage() if op == "USER"]
    assert len(users) == 1
    uid, _, gid = users[0].partition(":")
    assert ctx["runAsUser"] == pod["securityContext"]["runAsUser"] == int(uid)
    assert ctx["runAsGroup"] == int(gid)

    # The read-only root filesystem leaves /tmp, an emptyDir, as the only writable path.
    tmp_mount = next(m for m in container(manifests)["volumeMounts"] if m["mountPath"] == "/tmp")
    tmp_volume = next(v for v in pod["volumes"] if v["name"] == tmp_mount["name"])
    assert "emptyDir" in tmp_volume


def test_dockerfile_final_stage_ships_only_the_venv() -> None:
    stage = dockerfile_final_stage()
    ops = [op for op, _ in stage]
    args = dict(stage)
    assert dockerfile_base_image(args["FROM"]).startswith("python:3.11-slim")
    builder = next(a for op, a in dockerfile_instructions() if op == "FROM" and a.endswith(" AS builder"))
    assert dockerfile_base_image(builder).startswith("python:3.11-slim")
    assert json.loads(args["ENTRYPOINT"]) == ["rtvbp-bridge"]
    assert json.loads(args["CMD"]) == ["serve"]
    assert int(args["EXPOSE"]) == chart_defaults()["containerPort"]
    assert "PYTHONDONTWRITEBYTECODE=1" in args["ENV"]
    copies = [a for op, a in stage if op == "COPY"]
    assert copies == ["--from=builder /opt/venv /opt/venv"]
    installs = " ".join(a for op, a in stage if op == "RUN")
    assert "apt-get" not in installs and "pip " not in installs
    assert ops.index("USER") < ops.index("ENTRYPOINT")


def test_env_comes_from_configmap_and_secret_refs(scenario: Path) -> None:
    manifests = render(scenario)
    configmap = bridge_config(manifests)
    bridge = container(manifests)
    assert bridge["envFrom"] == [{"configMapRef": {"name": configmap["metadata"]["name"]}}]
    assert configmap["data"]["BRIDGE_HOST"] == "0.0.0.0"
    assert not set(SECRET_ENV) & set(configmap["data"])

    env = env_by_name(manifests)
    assert env["BRIDGE_INSTANCE_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    for name in SECRET_ENV:
        if name in env:
            assert set(env[name]) == {"name", "valueFrom"}, name
            assert set(env[name]["valueFrom"]) == {"secretKeyRef"}, name
    assert "BRIDGE_AMQP_URL" in env


def test_existing_secrets_are_referenced_by_name() -> None:
    values = load_values(DEFAULT_VALUES)
    manifests = render(DEFAULT_VALUES)
    env = env_by_name(manifests)
    assert env["BRIDGE_AMQP_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": values["amqp"]["existingSecret"],
        "key": chart_defaults()["amqp"]["key"],
    }
    keys_ref = env["BRIDGE_JWT_PUBLIC_KEYS"]["valueFrom"]["secretKeyRef"]
    assert keys_ref["name"] == values["auth"]["jwt"]["publicKeys"]["existingSecret"]
    assert "BRIDGE_AUTH_TOKENS" not in env
    assert of_kind(manifests, "Secret") == []


def test_token_mode_takes_tokens_from_a_secret() -> None:
    manifests = render(DEFAULT_VALUES, "auth.mode=token", "auth.tokens.existingSecret=bridge-tokens")
    env = env_by_name(manifests)
    assert env["BRIDGE_AUTH_TOKENS"]["valueFrom"]["secretKeyRef"]["name"] == "bridge-tokens"
    assert bridge_config(manifests)["data"]["BRIDGE_AUTH_MODE"] == "token"


def secret_strings(values: Manifest) -> list[str]:
    secret = values["secret"]
    return [secret["amqpUrl"], *secret["authTokens"], *secret["jwtPublicKeys"].strip().splitlines()]


def test_secret_values_never_appear_in_plain_text() -> None:
    values = load_values(FULL_VALUES)
    rendered = render_text(FULL_VALUES)
    manifests = render(FULL_VALUES)
    for secret in secret_strings(values):
        assert secret not in rendered, f"secret value {secret[:12]}... rendered in plain text"
    # Outside the chart-created Secret not even the base64 form may appear (env values, ConfigMap...).
    encoded = [base64.b64encode(s.encode()).decode() for s in (values["secret"]["amqpUrl"],)]
    for manifest in manifests:
        if manifest["kind"] != "Secret":
            dumped = yaml.safe_dump(manifest)
            for secret in [*secret_strings(values), *encoded]:
                assert secret not in dumped, manifest["kind"]

    # ...and the Secret really carries them, under the keys the env refers to.
    created = one(manifests, "Secret")
    decoded = {k: base64.b64decode(v).decode() for k, v in created["data"].items()}
    env = env_by_name(manifests)
    by_env = {
        name: decoded[env[name]["valueFrom"]["secretKeyRef"]["key"]]
        for name in SECRET_ENV
        if env[name]["valueFrom"]["secretKeyRef"]["name"] == created["metadata"]["name"]
    }
    assert by_env == {
        "BRIDGE_AMQP_URL": values["secret"]["amqpUrl"],
        "BRIDGE_AUTH_TOKENS": ",".join(values["secret"]["authTokens"]),
        "BRIDGE_JWT_PUBLIC_KEYS": values["secret"]["jwtPublicKeys"],
    }


def test_secrets_passed_on_the_command_line_stay_out_of_env_and_configmap() -> None:
    password = "CliOnlyPassw0rd-7f3a"
    manifests = render(
        None,
        "auth.mode=token",
        "secret.create=true",
        f"secret.amqpUrl=amqp://u:{password}@rabbit:5672/",
        "secret.authTokens[0]=cli-token-e91b",
    )
    dumped = yaml.safe_dump_all(manifests)
    assert password not in dumped and "cli-token-e91b" not in dumped
    amqp_ref = env_by_name(manifests)["BRIDGE_AMQP_URL"]["valueFrom"]["secretKeyRef"]
    assert amqp_ref["name"] == one(manifests, "Secret")["metadata"]["name"]


def test_config_values_reach_the_configmap_verbatim() -> None:
    values = load_values(FULL_VALUES)
    data = bridge_config(render(FULL_VALUES))["data"]
    config = values["config"]
    # Large integers must not turn into 1.2e+06 (Helm reads numbers as float64).
    assert data["BRIDGE_PLAYOUT_MAX_MS"] == str(config["playoutMaxMs"])
    assert data["BRIDGE_AUDIO_CHUNK_MS"] == str(config["audioChunkMs"])
    assert data["BRIDGE_DRAIN_ACTION"] == config["drainAction"]
    assert data["BRIDGE_JWT_ACCOUNTS"] == ",".join(values["auth"]["jwt"]["accounts"])
    assert data["BRIDGE_METRICS_ENABLED"] == "true"
    assert data["BRIDGE_JWT_KEYS_DIR"] == chart_defaults()["auth"]["jwt"]["keysSecret"]["mountPath"]
    for name, value in config["extra"].items():
        assert data[name] == value
    assert data["OTEL_EXPORTER_OTLP_ENDPOINT"] == values["otel"]["endpoint"]
    amqp = values["amqp"]
    assert data["BRIDGE_AMQP_HEARTBEAT_S"] == str(amqp["heartbeatSeconds"])
    assert data["BRIDGE_REPLAY"] == "true"
    assert data["BRIDGE_REPLAY_MAX_AGE_S"] == str(amqp["replay"]["maxAgeSeconds"])
    assert data["BRIDGE_REPLAY_MAX_BYTES"] == str(amqp["replay"]["maxBytes"])  # 50 GiB, not 5.36e+10
    defaults = bridge_config(render(DEFAULT_VALUES))["data"]
    assert defaults["BRIDGE_REPLAY"] == "false"
    assert defaults["BRIDGE_AMQP_HEARTBEAT_S"] == str(chart_defaults()["amqp"]["heartbeatSeconds"])
    assert defaults["BRIDGE_CODEC_PREFERENCE"] == ",".join(chart_defaults()["config"]["codecPreference"])
    assert defaults["OTEL_SDK_DISABLED"] == "true"


def test_numeric_account_ids_keep_every_digit(tmp_path: Path) -> None:
    # YAML numbers reach the templates as float64; a long id must not come out as 9.8765432101e+10.
    accounts = [98765432101, 1234, "acct-7"]
    values = load_values(DEFAULT_VALUES)
    values["auth"]["jwt"]["accounts"] = accounts
    values_file = tmp_path / "numeric-accounts.yaml"
    values_file.write_text(yaml.safe_dump(values))
    data = bridge_config(render(values_file))["data"]
    assert data["BRIDGE_JWT_ACCOUNTS"] == ",".join(str(a) for a in accounts)


def test_jwt_keys_secret_is_mounted_read_only() -> None:
    manifests = render(FULL_VALUES)
    keys_secret = load_values(FULL_VALUES)["auth"]["jwt"]["keysSecret"]["name"]
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v.get("secret", {}).get("secretName") == keys_secret)
    mount = next(m for m in container(manifests)["volumeMounts"] if m["name"] == volume["name"])
    assert mount["readOnly"] is True
    assert mount["mountPath"] == bridge_config(manifests)["data"]["BRIDGE_JWT_KEYS_DIR"]


def test_checksum_annotation_follows_the_config() -> None:
    def checksum(*sets: str) -> str:
        deployment = one(render(DEFAULT_VALUES, *sets), "Deployment")
        return str(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    assert checksum() == checksum()
    assert checksum() != checksum("config.logLevel=DEBUG")


def test_image_defaults_to_app_version_and_can_be_pinned_by_digest() -> None:
    repository = chart_defaults()["image"]["repository"]
    assert container(render(DEFAULT_VALUES))["image"] == f"{repository}:{chart_meta()['appVersion']}"
    digest = "sha256:" + "ab" * 32
    assert container(render(DEFAULT_VALUES, f"image.digest={digest}"))["image"] == f"{repository}@{digest}"


# --- labels and selectors ----------------------------------------------------------------------------


def test_standard_labels_on_every_object(scenario: Path) -> None:
    meta = chart_meta()
    manifests = render(scenario)
    tag = load_values(scenario).get("image", {}).get("tag") or meta["appVersion"]
    deployment = one(manifests, "Deployment")
    labelled = [m["metadata"] for m in manifests] + [deployment["spec"]["template"]["metadata"]]
    for metadata in labelled:
        labels = metadata["labels"]
        assert set(STANDARD_LABELS) <= set(labels), metadata["name"]
        assert labels["app.kubernetes.io/name"] == meta["name"]
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/version"] == tag
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"] == f"{meta['name']}-{meta['version']}"
        assert "namespace" not in metadata  # the release namespace applies
    selector = deployment["spec"]["selector"]["matchLabels"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()
    assert one(manifests, "Service")["spec"]["selector"] == selector
    for constraint in deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]:
        assert constraint["labelSelector"] == {"matchLabels": selector}


# --- scaling, disruption, optional objects -----------------------------------------------------------


def test_hpa_scales_down_slowly_and_owns_the_replica_count() -> None:
    full = render(FULL_VALUES)
    hpa = one(full, "HorizontalPodAutoscaler")
    deployment = one(full, "Deployment")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert "replicas" not in deployment["spec"]
    scale_down = hpa["spec"]["behavior"]["scaleDown"]
    assert scale_down["stabilizationWindowSeconds"] >= 60
    assert scale_down["policies"], "scale-down needs a rate-limiting policy"
    for policy in scale_down["policies"]:
        # At most one pod (or a small share) per period: live calls drain one pod at a time.
        assert policy["type"] in ("Pods", "Percent")
        assert policy["value"] <= (1 if policy["type"] == "Pods" else 25)
        assert policy["periodSeconds"] >= 60
    assert scale_down["selectPolicy"] == "Min"
    metric_names = [m.get("resource", {}).get("name") for m in hpa["spec"]["metrics"]]
    assert "cpu" in metric_names

    default = render(DEFAULT_VALUES)
    assert of_kind(default, "HorizontalPodAutoscaler") == []
    assert one(default, "Deployment")["spec"]["replicas"] == chart_defaults()["replicaCount"]


def test_pod_disruption_budget_selects_the_pods(scenario: Path) -> None:
    manifests = render(scenario)
    pdb = one(manifests, "PodDisruptionBudget")
    selector = one(manifests, "Deployment")["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["selector"] == {"matchLabels": selector}
    assert ("minAvailable" in pdb["spec"]) != ("maxUnavailable" in pdb["spec"])
    assert of_kind(render(scenario, "podDisruptionBudget.enabled=false"), "PodDisruptionBudget") == []


def test_service_monitor_and_network_policy_only_when_enabled() -> None:
    default = render(DEFAULT_VALUES)
    assert of_kind(default, "ServiceMonitor") == []
    assert of_kind(default, "NetworkPolicy") == []

    full = render(FULL_VALUES)
    service = one(full, "Service")
    monitor = one(full, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint["path"] == "/metrics"
    extra_labels = load_values(FULL_VALUES)["metrics"]["serviceMonitor"]["labels"]
    assert extra_labels.items() <= monitor["metadata"]["labels"].items()

    policy = one(full, "NetworkPolicy")
    selector = one(full, "Deployment")["spec"]["selector"]["matchLabels"]
    assert policy["spec"]["podSelector"] == {"matchLabels": selector}
    assert policy["spec"]["ingress"][0]["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    egress_ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert {53, 5672}.issubset(egress_ports)


# --- values the chart must refuse --------------------------------------------------------------------


def _rejections() -> Iterator[Any]:
    cases: list[tuple[str, Path | None, tuple[str, ...], str]] = [
        ("auth mode outside the enum", DEFAULT_VALUES, ("auth.mode=foo",), "auth.mode"),
        ("chunk not a multiple of 20 ms", DEFAULT_VALUES, ("config.audioChunkMs=30",), "multiple of 20"),
        ("negative replicas", DEFAULT_VALUES, ("replicaCount=-1",), "replicaCount"),
        ("unknown top-level key", DEFAULT_VALUES, ("replicas=3",), "replicas"),
        ("unknown nested key", DEFAULT_VALUES, ("config.chunkMs=40",), "chunkMs"),
        ("bad drain action", DEFAULT_VALUES, ("config.drainAction=kill",), "drainAction"),
        ("bad log format", DEFAULT_VALUES, ("config.logFormat=xml",), "logFormat"),
        ("zero max sessions", DEFAULT_VALUES, ("config.maxSessions=0",), "maxSessions"),
        (
            "grace period not above drain + preStop",
            DEFAULT_VALUES,
            ("terminationGracePeriodSeconds=40",),
            "must be at least config.drainTimeoutSeconds",
        ),
        (
            "grace period leaving no time to end the calls after the drain",
            DEFAULT_VALUES,
            ("config.drainTimeoutSeconds=35", "lifecycle.preStopSleepSeconds=10"),
            "terminationGracePeriodSeconds (60) must be at least",
        ),
        (
            "secret name in extra config",
            DEFAULT_VALUES,
            ("config.extra.BRIDGE_AMQP_URL=amqp://x",),
            "config.extra",
        ),
        ("no broker secret", None, (), "amqp.existingSecret"),
        ("jwt without accounts", DEFAULT_VALUES, ("auth.jwt.accounts=null",), "auth.jwt.accounts"),
        ("auth none on the pod IP", DEFAULT_VALUES, ("auth.mode=none",), "auth.allowInsecure"),
        ("token mode without tokens", DEFAULT_VALUES, ("auth.mode=token",), "auth.tokens.existingSecret"),
        (
            "service monitor without metrics",
            DEFAULT_VALUES,
            ("metrics.serviceMonitor.enabled=true",),
            "metrics.enabled",
        ),
        ("ws path shadows a health path", DEFAULT_VALUES, ("config.wsPath=/healthz",), "wsPath"),
        (
            "ping timeout below ping interval",
            DEFAULT_VALUES,
            ("config.wsPingTimeoutSeconds=2",),
            "wsPingTimeoutSeconds",
        ),
        ("otel without an endpoint", DEFAULT_VALUES, ("otel.enabled=true",), "otel.endpoint"),
        ("heartbeat beyond 10 min", DEFAULT_VALUES, ("amqp.heartbeatSeconds=601",), "heartbeatSeconds"),
        ("replay kept 0 s", DEFAULT_VALUES, ("amqp.replay.maxAgeSeconds=0",), "maxAgeSeconds"),
        (
            "autoscaling min above max",
            DEFAULT_VALUES,
            ("autoscaling.enabled=true", "autoscaling.minReplicas=5", "autoscaling.maxReplicas=3"),
            "minReplicas",
        ),
    ]
    for case_id, values, sets, message in cases:
        yield pytest.param(values, sets, message, id=case_id)


@pytest.mark.parametrize(("values_file", "sets", "message"), list(_rejections()))
def test_bad_values_are_refused(values_file: Path | None, sets: tuple[str, ...], message: str) -> None:
    result = helm_template(values_file, sets)
    command = shlex.join(["helm", "template", *(f"--set={s}" for s in sets)])
    assert result.returncode != 0, f"{command} rendered although it should be refused"
    assert message in result.stderr, result.stderr


# --- the bridge accepts what the chart renders -------------------------------------------------------


def container_environment(manifests: list[Manifest], secret_values: dict[str, str]) -> dict[str, str]:
    """The environment the kubelet would build: ConfigMap, downward API and (faked) Secret keys."""
    environment = dict(bridge_config(manifests)["data"])
    for entry in container(manifests)["env"]:
        if "value" in entry:
            environment[entry["name"]] = entry["value"]
        elif "secretKeyRef" in entry["valueFrom"]:
            environment[entry["name"]] = secret_values[entry["name"]]
        else:
            environment[entry["name"]] = "calls-rtvbp-bridge-5d9f7-abcde"
    return environment


def test_rendered_environment_is_accepted_by_the_bridge_settings(
    scenario: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from bridge.config import Settings, load_settings

    manifests = render(scenario)
    fake_secrets = {
        "BRIDGE_AMQP_URL": "amqp://user:pass@rabbitmq:5672/",
        "BRIDGE_AUTH_TOKENS": "t1,t2",
        "BRIDGE_JWT_PUBLIC_KEYS": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    }
    environment = container_environment(manifests, fake_secrets)
    # Settings ignore unknown BRIDGE_* variables, so a misspelt name would be lost silently.
    fields = {f"BRIDGE_{name.upper()}" for name in Settings.model_fields}
    assert {name for name in environment if name.startswith("BRIDGE_")} <= fields

    # Files the settings read (AMQPS CA, client cert) must lie in a mounted volume; here they become
    # stand-in files, since the bridge checks they exist.
    mounts = [m["mountPath"] for m in container(manifests)["volumeMounts"]]
    for name, value in list(environment.items()):
        if name.endswith("_FILE"):
            assert any(value.startswith(f"{mount}/") for mount in mounts), (name, value, mounts)
            stand_in = tmp_path / name
            stand_in.write_text("PEM")
            environment[name] = str(stand_in)
    for name in list(os.environ):
        if name.startswith("BRIDGE_"):
            monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.host == "0.0.0.0"
    assert settings.port == int(environment["BRIDGE_PORT"])
    assert settings.auth_mode == environment["BRIDGE_AUTH_MODE"]
    assert settings.instance_id == environment["BRIDGE_INSTANCE_ID"]
    assert settings.drain_timeout_s == float(environment["BRIDGE_DRAIN_TIMEOUT_S"])
    assert settings.amqp_url.get_secret_value() == fake_secrets["BRIDGE_AMQP_URL"]
    assert settings.amqp_heartbeat_s == int(environment["BRIDGE_AMQP_HEARTBEAT_S"])
    assert settings.replay == (environment["BRIDGE_REPLAY"] == "true")
    assert settings.replay_max_bytes == int(environment["BRIDGE_REPLAY_MAX_BYTES"])


# --- NOTES.txt ---------------------------------------------------------------------------------------

NOTES_PROBE = """apiVersion: v1
kind: ConfigMap
metadata:
  name: notes-probe
data:
  notes: {{ tpl (.Files.Get "notes-under-test.txt") . | quote }}
"""


def render_notes(tmp_path: Path, values_file: Path) -> str:
    """`helm template` skips NOTES.txt and `helm install --dry-run` needs a cluster, so a copy of the
    chart renders the notes through `tpl` inside a throw-away ConfigMap."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    shutil.copy(chart / "templates" / "NOTES.txt", chart / "notes-under-test.txt")
    (chart / "templates" / "zz-notes-probe.yaml").write_text(NOTES_PROBE)
    result = run(
        helm_binary(), "template", RELEASE, str(chart), "--namespace", NAMESPACE, "-f", str(values_file),
        "--show-only", "templates/zz-notes-probe.yaml",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    notes: str = yaml.safe_load(result.stdout)["data"]["notes"]
    return notes


def test_notes_point_at_the_service_and_warn_about_chart_secrets(tmp_path: Path) -> None:
    full = load_values(FULL_VALUES)
    fullname = f"{RELEASE}-{chart_meta()['name']}"
    notes = render_notes(tmp_path / "full", FULL_VALUES)
    endpoint = f"ws://{fullname}.{NAMESPACE}.svc:{full['service']['port']}{full['config']['wsPath']}"
    assert endpoint in notes
    assert "WARNING: secret.create=true" in notes
    assert f"{full['amqp']['exchangePrefix']}.commands" in notes
    default_notes = render_notes(tmp_path / "default", DEFAULT_VALUES)
    assert "WARNING" not in default_notes
    assert "/metrics" not in default_notes


# --- AMQPS, alerts and dashboard ---------------------------------------------------------------------


def test_amqps_ca_and_client_certificate_are_mounted_from_secrets() -> None:
    assert not any(k.startswith("BRIDGE_AMQP_CA") for k in bridge_config(render(DEFAULT_VALUES))["data"])
    manifests = render(FULL_VALUES)
    tls = load_values(FULL_VALUES)["amqp"]["tls"]
    data = bridge_config(manifests)["data"]
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v["secret"] for v in pod["volumes"] if "secret" in v}
    mounts = {m["name"]: m for m in container(manifests)["volumeMounts"]}
    ca = volumes["amqp-ca"]
    assert ca["secretName"] == tls["caSecret"] and ca["items"] == [{"key": "ca.pem", "path": "ca.pem"}]
    assert data["BRIDGE_AMQP_CA_FILE"] == f"{mounts['amqp-ca']['mountPath']}/ca.pem"
    client = volumes["amqp-client-cert"]
    assert client["secretName"] == tls["clientCertSecret"]
    assert {i["key"] for i in client["items"]} == {"tls.crt", "tls.key"}
    assert data["BRIDGE_AMQP_CERT_FILE"] == f"{mounts['amqp-client-cert']['mountPath']}/tls.crt"
    assert data["BRIDGE_AMQP_KEY_FILE"] == f"{mounts['amqp-client-cert']['mountPath']}/tls.key"
    assert all(mounts[name]["readOnly"] for name in ("amqp-ca", "amqp-client-cert"))
    assert data["BRIDGE_AMQP_VERIFY_HOSTNAME"] == "true"


def test_prometheus_rule_and_dashboard_only_when_enabled() -> None:
    default = render(DEFAULT_VALUES)
    assert of_kind(default, "PrometheusRule") == []
    assert [m["metadata"]["name"] for m in of_kind(default, "ConfigMap")] == [f"{RELEASE}-rtvbp-bridge"]
    # both need metrics.enabled: without /metrics there is nothing to alert on or to draw
    assert of_kind(render(DEFAULT_VALUES, "metrics.prometheusRule.enabled=true"), "PrometheusRule") == []

    full = render(FULL_VALUES)
    metrics = load_values(FULL_VALUES)["metrics"]
    rule = one(full, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert metrics["prometheusRule"]["labels"].items() <= rule["metadata"]["labels"].items()
    exprs = {r["alert"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert f'job="{RELEASE}-rtvbp-bridge"' in exprs["RtvbpBrokerDisconnected"]
    assert exprs["RtvbpNearMaxSessions"].endswith("> 0.8")  # the threshold comes from the values

    [dashboard] = [m for m in of_kind(full, "ConfigMap") if m["metadata"]["name"].endswith("-dashboard")]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "Telephony"}
    assert "namespace" not in dashboard["metadata"]
    elsewhere = render(FULL_VALUES, "metrics.grafanaDashboard.namespace=monitoring")
    assert [m["metadata"].get("namespace") for m in of_kind(elsewhere, "ConfigMap")] == [None, "monitoring"]
    board = json.loads(dashboard["data"]["rtvbp-bridge.json"])
    assert board == json.loads((CHART / "dashboards" / "rtvbp-bridge.json").read_text())  # not templated
    titles = " | ".join(p["title"] for p in board["panels"]).lower()
    for topic in (
        "active calls",
        "end",
        "audio throughput",
        "publish latency",
        "playout lead",
        "request",
        "reconnects",
    ):
        assert topic in titles, topic
    assert all(p["targets"] and all(t["expr"] for t in p["targets"]) for p in board["panels"])
