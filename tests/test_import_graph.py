"""The packages' import graph (scripts/import_graph.py): no cycles, and the layering holds.

The trainer's configs, units and schema and the whole analysis must load without torch
or Ray (the sweep driver and the analysis run where neither is wanted), not even through
an import inside a function; trainer never imports sweep or analysis.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "import_graph.py"
# Torch-free, lazily too: the analysis and the driver import these.
TORCH_FREE = ("trainer.config", "trainer.units", "trainer.schema", "trainer.presets",
              "trainer.errors", "trainer.schedule", "trainer.refs", "trainer.registry",
              "trainer.memory", "trainer.fsutil")
# Torch-free when imported (the sweep driver plans with them); torch inside functions.
TORCH_FREE_AT_IMPORT = ("trainer", "trainer.user")
HEAVY = {"torch", "ray", "sweep"}  # sweep: it loads Ray, and the analysis never needs it


def _graph_module():
    spec = importlib.util.spec_from_file_location("import_graph", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    return mod


ig = _graph_module()


def _run(*packages: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *packages], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_trainer_and_analysis_have_no_import_cycles() -> None:
    r = _run("trainer", "analysis")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no cycles" in r.stdout and "trainer.config -> " in r.stdout


def test_sweep_has_no_import_cycles() -> None:
    r = _run("sweep")
    assert r.returncode == 0, r.stdout + r.stderr


# sweep's subpackages in layers: each imports only those before it (and trainer/analysis).
SWEEP_LAYERS = ("sweep.plan", "sweep.store", "sweep.runner", "sweep.cli")


def _layer(name: str) -> int | None:
    return next((i for i, p in enumerate(SWEEP_LAYERS)
                 if name == p or name.startswith(p + ".")), None)


def test_sweep_subpackages_are_layered_plan_store_runner_cli() -> None:
    mods = ig.build(ROOT, ["sweep"])
    assert {m for m in mods if _layer(m) is None} <= {"sweep", "sweep.result"}
    back = [(m, t) for m, mod in mods.items() for t in mod.imports
            if _layer(m) is not None and _layer(t) is not None and _layer(t) > _layer(m)]
    assert not back, back
    for m in ("sweep.plan", "sweep.store"):  # planning and the store load no Ray
        for name in [n for n in mods if n.startswith(m)]:
            assert mods[name].external.get("ray") != ig.MODULE, name


def test_the_script_finds_cycles_through_lazy_and_relative_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from . import b\n")
    (pkg / "a.py").write_text("from pkg.sub import b\nimport torch\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from .. import a\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                              "    from pkg import a\n")
    mods = ig.build(tmp_path, ["pkg"])
    assert mods["pkg.a"].imports == {"pkg.sub.b": ig.MODULE}
    assert mods["pkg.a"].external == {"torch": ig.MODULE}
    assert mods["pkg.sub.b"].imports == {"pkg.a": ig.LAZY}
    assert mods["pkg.c"].imports == {}  # typing-only imports never run
    assert ig.cycles(mods) == [["pkg.a", "pkg.sub.b"]]
    assert ig.path_around(mods, ["pkg.a", "pkg.sub.b"]) == ["pkg.a", "pkg.sub.b", "pkg.a"]


def _heavy(mods: dict, start: str, kinds: tuple[str, ...]) -> dict[str, list[str]]:
    """module -> the heavy packages it imports, among those `start` loads via `kinds`."""
    found = {}
    for m in sorted(ig.reach(mods, start, kinds)):
        bad = sorted(p for p, k in mods[m].external.items() if p in HEAVY and k in kinds)
        if bad:
            found[m] = bad
    return found


def test_analysis_and_the_torch_free_trainer_never_reach_torch_or_ray() -> None:
    mods = ig.build(ROOT, ["trainer", "analysis"])
    starts = [*TORCH_FREE, *(m for m in mods if m.split(".")[0] == "analysis")]
    for start in starts:
        assert not _heavy(mods, start, (ig.MODULE, ig.LAZY)), start
    for start in TORCH_FREE_AT_IMPORT:
        assert not _heavy(mods, start, (ig.MODULE,)), start
    for m in (m for m in mods if m.split(".")[0] == "trainer"):
        assert not {"sweep", "analysis"} & set(mods[m].external), m


def test_the_torch_free_modules_import_without_torch_or_ray() -> None:
    """The same, as Python runs it (parent packages' own imports included)."""
    names = [*TORCH_FREE, *TORCH_FREE_AT_IMPORT, "analysis"]
    code = (f"import importlib, sys\nfor n in {names!r}: importlib.import_module(n)\n"
            "bad = sorted(m for m in ('torch', 'ray') if m in sys.modules)\n"
            "assert not bad, bad\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
