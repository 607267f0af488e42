"""`cluster.yaml` checked offline with Ray's own launcher code, plus the promises we make.

Validation takes the same first steps as `ray up`
(`ray.autoscaler._private.commands._bootstrap_config`): `prepare_config` (which calls
`fillout_defaults`: a shallow merge with `ray/autoscaler/aws/defaults.yaml`, read from the
installed package) then `validate_config` (jsonschema against `ray/autoscaler/ray-schema.json`
plus cross-field checks). `ray up` then calls the AWS provider's `bootstrap_config`, which uses
boto3 and credentials; we never get there. A fixture blocks sockets to prove no step goes online.
`prepare_config` and `validate_config` are private Ray API and may move between Ray versions.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import socket
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[3]
CLUSTER_YAML = ROOT / "cluster.yaml"
CLUSTER_DOC = ROOT / "docs" / "cluster.md"
MOUNT = "/mnt/wdsweep"
WORLD = ("0.0.0.0/0", "::/0")


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to resolve a name or open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


@pytest.fixture
def prepared(raw, offline) -> dict:
    """The config as `ray up` sees it after defaults are merged, validated by Ray."""
    cfg = prepare_config(copy.deepcopy(raw))
    validate_config(cfg)
    return cfg


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def _ingress_rules(obj):
    """Every IpPermissions rule anywhere in the config."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "IpPermissions":
                yield from v
            else:
                yield from _ingress_rules(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _ingress_rules(v)


def _all_nodes_setup(cfg: dict) -> list[list[str]]:
    """The setup command list each node type actually runs (a node type's own
    worker_setup_commands replaces the merged global list)."""
    out = []
    for name, nt in cfg["available_node_types"].items():
        if name == cfg["head_node_type"]:
            out.append(cfg["head_setup_commands"])
        else:
            out.append(nt.get("worker_setup_commands", cfg["worker_setup_commands"]))
    return out


# --- Ray's own validation ---------------------------------------------------------------


def test_ray_accepts_config_offline(prepared):
    assert prepared["provider"]["type"] == "aws"
    assert prepared["cluster_name"] == "wdsweep"


def test_raw_file_matches_ray_schema(raw):
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(raw, schema)
    # The schema has teeth: a misspelt key is rejected, not silently ignored.
    bad = copy.deepcopy(raw)
    bad["available_node_types"]["head"]["node_confg"] = bad["available_node_types"]["head"].pop(
        "node_config"
    )
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


# --- Node types ---------------------------------------------------------------------------


def test_head_cpu_and_gpu_node_types(prepared):
    types = prepared["available_node_types"]
    head = prepared["head_node_type"]
    assert head in types
    workers = {k: v for k, v in types.items() if k != head}
    gpu = [v for v in workers.values() if v["resources"].get("GPU", 0) >= 1]
    cpu = [v for v in workers.values() if v["resources"].get("GPU", 0) == 0]
    assert gpu, "no worker type declares GPU resources"
    assert cpu, "no CPU-only worker type"
    for nt in workers.values():
        assert nt["resources"].get("CPU", 0) >= 1
        assert 0 <= nt["min_workers"] <= nt["max_workers"] <= prepared["max_workers"]
        assert nt["node_config"]["InstanceType"]
    assert types[head]["max_workers"] == 0


# --- Network exposure ---------------------------------------------------------------------


def test_every_node_uses_the_prepared_security_group(raw):
    # Without SecurityGroupIds, Ray's AWS bootstrap creates a group whose SSH rule is open to
    # 0.0.0.0/0 (ray/autoscaler/_private/aws/config.py, _create_default_ssh_inbound_rules),
    # whatever provider.security_group adds. With it, Ray creates and changes no rules.
    for name, nt in raw["available_node_types"].items():
        sgs = nt["node_config"].get("SecurityGroupIds")
        assert sgs and all(isinstance(s, str) and s.startswith("sg-") for s in sgs), name


def test_no_ingress_rule_open_to_the_world(prepared):
    for rule in _ingress_rules(prepared):
        cidrs = [r.get("CidrIp") for r in rule.get("IpRanges", [])]
        cidrs += [r.get("CidrIpv6") for r in rule.get("Ipv6Ranges", [])]
        assert not set(cidrs) & set(WORLD), rule
        if cidrs:  # an address-based rule (not group-to-group) may only open SSH
            assert (rule.get("FromPort"), rule.get("ToPort")) == (22, 22), rule


def test_nothing_binds_or_opens_to_all_addresses(prepared):
    # Catches Ray's default head command (`--dashboard-host=0.0.0.0`) creeping back in.
    for s in _strings(prepared):
        assert "0.0.0.0" not in s and "::/0" not in s, s
    head_cmds = " ".join(prepared["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_cmds


def test_documented_security_group_rules(raw):
    # The rules users are told to create: SSH from a CIDR they choose, or group-internal.
    text = CLUSTER_DOC.read_text()
    cmds = [
        " ".join(shlex.split(m.replace("\\\n", " ")))
        for m in re.findall(r"aws ec2 authorize-security-group-ingress(?:[^\n]*\\\n)*[^\n]*", text)
    ]
    assert len(cmds) >= 2, "docs/cluster.md should show how to create the security group"
    for cmd in cmds:
        if "--source-group" in cmd:
            continue
        assert "--port 22" in cmd and "--cidr" in cmd, cmd
        assert not any(w in cmd for w in WORLD), cmd


# --- Setup: project, Ray pin, shared storage ------------------------------------------------


def test_working_copy_mounted_and_project_installed(prepared, raw):
    assert prepared["file_mounts"].get("~/wdsweep") == "."
    for cmds in _all_nodes_setup(prepared):
        joined = "\n".join(cmds)
        torch_at = joined.find("requirements/torch.txt")
        project_at = joined.find("install -q -e ~/wdsweep")
        assert 0 <= torch_at < project_at, "torch must be installed before the project"
        assert "[dev]" not in joined


def test_ray_version_pinned_to_the_launchers(raw):
    # Launcher and cluster must run one Ray version; saved experiments may not restore
    # across versions. Upgrading local Ray means updating cluster.yaml too.
    pins = set(re.findall(r"ray\[[^\]]*\]==([\w.]+)", "\n".join(_strings(raw))))
    assert pins == {ray.__version__}


def test_shared_storage_mounted_on_every_node(prepared):
    for cmds in _all_nodes_setup(prepared):
        assert any(
            re.search(rf"\bmount -t nfs4?\b.*\s{re.escape(MOUNT)}(\s|\)|$)", c) for c in cmds
        ), "every node must mount the shared results storage"
        assert any(f"{MOUNT}/runs" in c for c in cmds)
