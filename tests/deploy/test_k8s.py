"""deploy/k8s: the manifests validate against the Kubernetes schemas and agree with the code.

Every command a manifest runs is one the ``kundlinow`` CLI parses, every probe path is a route
of ``create_app``, every environment variable given to the server is one ``kundlinow/config.py``
reads. ``kubernetes-validate`` carries the schemas, so this runs offline.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from kundlinow.app import create_app
from kundlinow.cli import build_parser
from kundlinow.config import Settings
from tests.kundlinow.test_env_example import _READS

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30.0"
"""The oldest Kubernetes the manifests are written for (autoscaling/v2, policy/v1 and
batch/v1 CronJob are all GA there)."""

Document = dict[str, Any]


def _kustomization() -> Document:
    loaded: Document = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return loaded


def _documents() -> list[Document]:
    return [
        doc
        for name in _kustomization()["resources"]
        for doc in yaml.safe_load_all((K8S / name).read_text())
        if doc is not None
    ]


def _of_kind(kind: str) -> list[Document]:
    return [doc for doc in _documents() if doc["kind"] == kind]


def _server() -> Document:
    (deployment,) = _of_kind("Deployment")
    return deployment


def _pod_specs() -> Iterator[Document]:
    yield _server()["spec"]["template"]["spec"]
    for cron in _of_kind("CronJob"):
        yield cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def _config_reads() -> set[str]:
    source = (REPO / "kundlinow" / "config.py").read_text()
    return {a or b for a, b in _READS.findall(source)}


def test_every_file_is_listed_and_every_manifest_validates() -> None:
    listed = set(_kustomization()["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk, "list every manifest in kustomization.yaml (and only those)"
    docs = _documents()
    assert {d["kind"] for d in docs} >= {
        "Deployment", "Service", "Ingress", "HorizontalPodAutoscaler", "PodDisruptionBudget",
        "DaemonSet", "CronJob", "ConfigMap", "Secret",
    }
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {exc.path}")


def test_a_schema_violation_is_caught() -> None:
    broken = _server()
    broken["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "long"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_coturn_files_are_the_repository_ones() -> None:
    (generator,) = _kustomization()["configMapGenerator"]
    copies = {Path(f).name: (K8S / f).read_text() for f in generator["files"]}
    assert copies == {
        "coturn.conf": (REPO / "coturn.conf").read_text(),
        "entrypoint.sh": (REPO / "infra" / "coturn-entrypoint.sh").read_text(),
    }
    (coturn,) = _of_kind("DaemonSet")
    assert coturn["spec"]["template"]["spec"]["hostNetwork"] is True


def _commands() -> list[tuple[str, list[str]]]:
    cron = [
        (c["metadata"]["name"], container["command"])
        for c in _of_kind("CronJob")
        for container in c["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    ]
    (server,) = _server()["spec"]["template"]["spec"]["containers"]
    return [
        *cron,
        ("server", server["command"]),
        ("server preStop", server["lifecycle"]["preStop"]["exec"]["command"]),
    ]


@pytest.mark.parametrize(("where", "command"), _commands(), ids=[w for w, _ in _commands()])
def test_every_command_parses(where: str, command: list[str]) -> None:
    parser = build_parser()
    assert command[0] == "kundlinow"
    try:
        parser.parse_args(command[1:])
    except SystemExit:
        pytest.fail(f"{where}: `{' '.join(command)}` is not a kundlinow command")


def test_an_unknown_command_is_caught() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["billing", "tock"])


def test_probe_paths_are_routes() -> None:
    routes = {r.canonical for r in create_app(Settings()).router.resources()}
    (server,) = _server()["spec"]["template"]["spec"]["containers"]
    probes = {
        kind: server[kind]["httpGet"]["path"]
        for kind in ("readinessProbe", "livenessProbe", "startupProbe")
    }
    assert probes["readinessProbe"] == "/readyz" and probes["livenessProbe"] == "/healthz"
    assert set(probes.values()) <= routes


def test_every_variable_is_one_the_config_reads() -> None:
    reads = _config_reads()
    given: dict[str, str] = {}
    for configmap in _of_kind("ConfigMap"):
        given.update({name: configmap["metadata"]["name"] for name in configmap["data"]})
    for secret in _of_kind("Secret"):
        given.update({name: secret["metadata"]["name"] for name in secret["stringData"]})
    for spec in _pod_specs():
        for container in spec["containers"]:
            given.update({e["name"]: container["name"] for e in container.get("env", [])})
    unknown = {name: where for name, where in given.items() if name not in reads}
    assert not unknown, f"not read by kundlinow/config.py: {unknown}"
    assert {"DATABASE_URL", "REDIS_URL", "JWT_SECRET", "NODE_ID", "DRAIN_DEADLINE"} <= set(given)


def test_the_grace_period_fits_the_drain() -> None:
    spec = _server()["spec"]["template"]["spec"]
    (server,) = spec["containers"]
    deadline = float(next(e["value"] for e in server["env"] if e["name"] == "DRAIN_DEADLINE"))
    assert deadline + 15 <= spec["terminationGracePeriodSeconds"] <= deadline + 120


def test_the_recordings_volume_is_where_the_config_points() -> None:
    (configmap,) = _of_kind("ConfigMap")
    directory = configmap["data"]["RECORDINGS_DIR"]
    mounted = [
        (container["name"], mount["mountPath"])
        for spec in _pod_specs()
        for container in spec["containers"]
        for mount in container.get("volumeMounts", [])
        if mount["name"] == "recordings"
    ]
    assert {name for name, _ in mounted} >= {"server", "recordings-compose", "recordings-prune"}
    assert all(path == directory for _, path in mounted), mounted


def test_the_media_port_is_the_one_the_node_binds() -> None:
    """The server declares the SFU's one UDP port (host networking: the node's firewall rule)
    and it is the ConfigMap's MEDIA_UDP_PORT."""
    (configmap,) = _of_kind("ConfigMap")
    (server,) = _server()["spec"]["template"]["spec"]["containers"]
    udp = [p for p in server["ports"] if p["protocol"] == "UDP"]
    assert [(p["name"], p["containerPort"]) for p in udp] == [
        ("media", int(configmap["data"]["MEDIA_UDP_PORT"]))
    ]
    assert "MEDIA_UDP_PORT_MIN" not in configmap["data"]
