"""Planted bugs, one at a time, against the test suite: which does it catch?

Each mutant is a one-line edit of a committed file. It is applied to a fresh copy of
the repository at a git revision (`git archive`, so the working tree, which others may
be editing, is never touched), and the tests that guard that code run on the copy with
this venv's Python. A mutant is *caught* when those tests fail, *missed* when they pass.
The unmutated copy must pass the same tests first, or the result means nothing.

    .venv/bin/python scripts/mutants.py [--rev HEAD] [--only NAME ...] [--json OUT]

Not collected by pytest (outside tests/); takes ~10-20 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The trainer's fast tests (every tests/trainer/test_*.py of the exported tree), the most
# discriminating first: -x stops at the first failure.
TRAINER_FAST = ["@trainer", "-m", "not slow and not gpu"]
FIRST = ("train_reference", "resume_record", "golden", "units", "flat_optim", "equivalence")
ANALYSIS = ["tests/analysis", "-m", "not slow"]
UNITS = ["tests/trainer/test_units.py", "tests/trainer/test_golden.py",
         "tests/trainer/test_config.py"]


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    note: str = ""


MUTANTS = [
    Mutant("zero-grad-before-step", "trainer/step.py",
           "        self.model.zero_grad()\n        loss.sum().backward()\n",
           "        loss.sum().backward()\n        self.model.zero_grad()\n", tuple(TRAINER_FAST),
           "gradients zeroed after backward, before the optimizer step: learns nothing"),
    Mutant("bn-grads-never-zeroed", "trainer/model.py",
           "        for sl in self._autograd_slices:\n",
           "        for sl in self._autograd_slices[:0]:\n", tuple(TRAINER_FAST),
           "own-backward packs stop zeroing the batch-norm gradients: they accumulate"),
    Mutant("linear-bias-grad-accumulates", "trainer/packed_linear.py",
           "        torch.sum(gyk, dim=1, keepdim=True, dtype=ctx.gb.dtype, out=ctx.gb)\n",
           "        ctx.gb.add_(gyk.sum(1, keepdim=True))\n", tuple(TRAINER_FAST),
           "the bias gradient adds to last step's instead of overwriting it"),
    Mutant("bf16-never-applied", "trainer/step.py",
           '    if precision == "fp32":\n', '    if True:\n', tuple(TRAINER_FAST),
           "precision = bf16 silently trains in fp32"),
    Mutant("no-resume", "trainer/checkpoint.py", "    paths = list_checkpoints(ckpt_dir)\n",
           "    paths: list[Path] = []  # load_latest disabled\n", tuple(TRAINER_FAST),
           "checkpoint.load_latest finds nothing: every restart starts from step 0"),
    Mutant("resume-drops-optimizer-state", "trainer/loop.py",
           '        opt.load_state(st["opt"])\n', "        pass  # optimizer state dropped\n",
           tuple(TRAINER_FAST)),
    Mutant("resume-drops-rng", "trainer/loop.py", '        torch.set_rng_state(st["rng"])\n',
           "        pass  # CPU RNG state dropped\n", tuple(TRAINER_FAST),
           "equivalent on this model: nothing draws from the global RNG after init"),
    Mutant("norm-factor-no-sqrt", "trainer/units.py",
           "    return (batch_size / (train_size * epochs)) ** 0.5",
           "    return (batch_size / (train_size * epochs)) ** 1.0", tuple(UNITS)),
    Mutant("norm-factor-wrong-grouping", "trainer/units.py",
           "    return (batch_size / (train_size * epochs)) ** 0.5",
           "    return (batch_size / train_size * epochs) ** 0.5", tuple(UNITS)),
    Mutant("sgdw-decay-sign", "trainer/optim.py", "torch._foreach_mul_(p, 1 - lr * wd)",
           "torch._foreach_mul_(p, 1 + lr * wd)", tuple(TRAINER_FAST)),
    Mutant("adam-decay-scale", "trainer/optim.py", "weight_decay=wd, eps=self.eps",
           "weight_decay=2 * wd, eps=self.eps", tuple(TRAINER_FAST)),
    Mutant("flat-decay-sign", "trainer/optim.py", "[1 - a * b for a, b in zip(lr, wd)]",
           "[1 + a * b for a, b in zip(lr, wd)]", tuple(TRAINER_FAST),
           "the flat update (CUDA's default; CPU tests reach it only where they ask for it)"),
    Mutant("hash-float-precision", "trainer/config.py", 'return float(f"{v:.12g}")',
           'return float(f"{v:.10g}")', tuple(UNITS)),
    Mutant("hash-keeps-epochs-T", "trainer/config.py",
           '"lambda_norm", "epochs", "steps", "epochs_T"):', '"lambda_norm", "epochs", "steps"):',
           tuple(UNITS)),
    Mutant("shuffle-order", "trainer/loop.py", "manual_seed(seed * 1_000_003 + epoch)",
           "manual_seed(seed * 1_000_003 + epoch + 1)", tuple(TRAINER_FAST)),
    Mutant("eval-in-train-mode", "trainer/loop.py", "    model.training = False\n",
           "    model.training = True\n", tuple(TRAINER_FAST)),
    Mutant("sweep-resume-from-step-0", "sweep/runner/trainable.py",
           '        elif trial.init:', "        elif False:",
           ("tests/sweep/runner/test_resume_values.py", "-m", "slow", "-k", "retried"),
           "`wdsweep resume` ignores each pack's newest trainer checkpoint: trials restart"),
    # The analysis: estimators whose wrong versions still produce plausible numbers.
    Mutant("sqrt-rule-exponents", "analysis/_fit.py", '"sqrt": (0.5, -0.5, -0.5),',
           '"sqrt": (0.5, -0.5, 0.0),', tuple(ANALYSIS), "the sqrt rule's T exponent dropped"),
    Mutant("every-rule-compatible", "analysis/_fit.py",
           '"compatible": p is None or p >= ALPHA,', '"compatible": True,', tuple(ANALYSIS),
           "no rule is ever rejected: the verdict can never name one"),
    Mutant("rules-never-compatible", "analysis/_fit.py",
           '"compatible": p is None or p >= ALPHA,', '"compatible": p is None,',
           tuple(ANALYSIS), "every testable rule rejected"),
    Mutant("no-grid-term", "analysis/_best.py",
           "(h**2 / 12 if math.isfinite(h) else 0.0)", "0.0", tuple(ANALYSIS),
           "λ* intervals ignore the grid's resolution"),
    Mutant("no-scale-floor", "analysis/_fit.py", "if dof > 0 and rss / dof > 1.0:",
           "if dof > 0:", tuple(ANALYSIS),
           "residual scale below the cells' own errors: overconfident fits"),
    Mutant("no-seed-cap", "analysis/_decide.py", 'if caps and strength != "weak":',
           "if False:", tuple(ANALYSIS), "2 seeds can give a strong verdict"),
    Mutant("window-whole-run", "analysis/_summary.py",
           'h = h[~(h["step"] < (1.0 - window) * end)]', "h = h", tuple(ANALYSIS),
           "final metrics average the whole run"),
    Mutant("onset-scans-from-the-top", "analysis/_edges.py", "j = int(hit[0])",
           "j = int(hit[-1])", tuple(ANALYSIS), "onset edge taken at the last crossing"),
]


def export(rev: str, dest: Path) -> None:
    """The committed tree at `rev`, without .git."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)


def expand(tree: Path, args: tuple[str, ...] | list[str]) -> list[str]:
    if "@trainer" not in args:
        return list(args)
    files = sorted((tree / "tests" / "trainer").glob("test_*.py"))
    rank = {f"test_{n}.py": i for i, n in enumerate(FIRST)}
    files.sort(key=lambda p: rank.get(p.name, len(rank)))
    i = list(args).index("@trainer")
    return [*args[:i], *(str(p.relative_to(tree)) for p in files), *args[i + 1:]]


def run_tests(tree: Path, args: tuple[str, ...] | list[str],
              timeout: float) -> tuple[bool, float, str]:
    args = expand(tree, args)
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    t0 = time.monotonic()
    try:
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                            *args], cwd=tree, env=env, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, time.monotonic() - t0, "timed out"
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    failed = next((ln for ln in lines if ln.startswith(("FAILED tests/", "ERROR tests/"))), "")
    return r.returncode == 0, time.monotonic() - t0, failed or (lines[-1] if lines else "")


def check_isolation(tree: Path) -> None:
    """The copy's packages, not the editable install's, are what the tests import."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    code = "import trainer, sweep; print(trainer.__file__); print(sweep.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    if not all(Path(p).resolve().is_relative_to(tree.resolve()) for p in out):
        sys.exit(f"imports resolve outside the copy: {out}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", default="HEAD")
    ap.add_argument("--only", nargs="*", default=None, help="mutant names")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--timeout", type=float, default=900)
    args = ap.parse_args()
    chosen = [m for m in MUTANTS if args.only is None or m.name in args.only]
    results = []
    with tempfile.TemporaryDirectory(prefix="wdsweep-mutants-") as tmp:
        base = Path(tmp) / "base"
        export(args.rev, base)
        check_isolation(base)
        for suite in sorted({m.tests for m in chosen}):
            ok, secs, last = run_tests(base, suite, args.timeout)
            print(f"baseline {' '.join(suite)}: {'pass' if ok else 'FAIL'} ({secs:.0f} s)",
                  flush=True)
            if not ok:
                sys.exit(f"the unmutated tree fails {suite}: {last}")
        for m in chosen:
            tree = Path(tmp) / m.name
            shutil.copytree(base, tree)
            f = tree / m.path
            text = f.read_text() if f.exists() else ""
            if text.count(m.old) != 1:
                results.append(dict(name=m.name, result="not applied",
                                    detail=f"{m.path}: pattern found {text.count(m.old)} times"))
            else:
                f.write_text(text.replace(m.old, m.new))
                ok, secs, last = run_tests(tree, m.tests, args.timeout)
                results.append(dict(name=m.name, result="missed" if ok else "caught",
                                    seconds=round(secs), detail=last, note=m.note))
            shutil.rmtree(tree, ignore_errors=True)
            r = results[-1]
            print(f"{r['name']:<30} {r['result']:<12} {r.get('seconds', '-'):>4} s  "
                  f"{r['detail'][:110]}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    caught = sum(r["result"] == "caught" for r in results)
    print(f"\n{caught} of {len(results)} mutants caught")
    return 0


if __name__ == "__main__":
    sys.exit(main())
