"""Screenshot of report.html in headless Chromium: the picture in docs/img/report.png.

    python scripts/report_screenshot.py [--out docs/img/report.png] [--report PATH]

Without --report it analyzes a synthetic study (`tests/analysis/synth.py`: seven cells
one axis at a time, sqrt truth, three seeds, with per-evaluation history) into a
temporary directory and shoots the top of its report: the headline box and the start
of the evidence. The browser helpers here are also what tests/analysis/
test_report_headline.py drives Chromium with (writing to its own tmp_path).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZE = (1200, 1500)  # the browser window: the headline and the first of the evidence


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _flags(exe: str, profile: Path) -> list[str]:
    return [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
            "--virtual-time-budget=5000"]


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"chromium failed ({r.returncode}): {r.stderr[-2000:]}")
    return r


def dump_dom(html: Path, profile: Path, exe: str | None = None) -> str:
    """The page's DOM after its scripts ran, as Chromium serializes it."""
    exe = exe or chromium()
    assert exe, "no chromium on PATH"
    return _run([*_flags(exe, profile), "--dump-dom", html.resolve().as_uri()]).stdout


def screenshot(html: Path, png: Path, profile: Path, size: tuple[int, int] = SIZE,
               exe: str | None = None) -> Path:
    """The top `size` pixels of the page, as Chromium renders it, into `png`."""
    exe = exe or chromium()
    assert exe, "no chromium on PATH"
    png.parent.mkdir(parents=True, exist_ok=True)
    _run([*_flags(exe, profile), f"--screenshot={png.resolve()}",
          f"--window-size={size[0]},{size[1]}", html.resolve().as_uri()])
    if not png.exists():
        raise RuntimeError(f"chromium wrote no screenshot to {png}")
    return png


def example_report(root: Path) -> Path:
    """A synthetic seven-cell study with history, analyzed into root/report."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from analysis import analyze
    from tests.analysis.synth import make_history, make_study, write_study

    res = make_study((0.5, -0.5, -0.5), seeds=3, seed=21)
    res = res.assign(config_hash=[f"h{i:04d}" for i in range(len(res))])
    study = write_study(root / "study", res, make_history(res, n_evals=20, every=100))
    analyze(study, root / "report")
    return root / "report" / "report.html"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "report.png")
    p.add_argument("--report", type=Path, help="an existing report.html (default: a "
                   "synthetic study's)")
    args = p.parse_args(argv)
    if chromium() is None:
        print("no chromium on PATH (apt-get install chromium)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        html = args.report or example_report(Path(tmp))
        screenshot(html, args.out, Path(tmp) / "profile")
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
