#!/usr/bin/env bash
# Issue 11's GPU studies, as run on one device machine (torch with CUDA, no Ray: Ray's
# wheels travel in .whl, built here by ../shared/tools/offline-wheels.sh .whl).
#   OUT=/some/dir BUDGET=420 bash benchmarks/gpu_studies.sh
# Three studies run at once, each its own `wdsweep run` with an embedded local Ray:
# seed_rules (its three parts one after another, the 60K-step part first), seed_lambda
# and seed_length. Each study's tables come back gzipped as $OUT/<study>/*.csv.gz.
set -u
OUT=${OUT:-/tmp/out}
BUDGET=${BUDGET:-420}  # seconds for the studies; what finished by then is kept
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=$PWD:/tmp/site RAY_USAGE_STATS_ENABLED=0 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, ray; print('torch', torch.__version__, 'ray', ray.__version__)"
S=/tmp/st
mkdir -p "$S"
run() { python3 -m sweep.cli.main run "$1" --study "$S/$2" --yes --no-report; }
t0=$(date +%s)
timeout "$BUDGET" bash -c "$(declare -f run); S=$S
  run studies/seed_rules_B.toml seed_rules && run studies/seed_rules_b.toml seed_rules &&
  run studies/seed_rules_T.toml seed_rules" > "$S/rules.log" 2>&1 &
timeout "$BUDGET" bash -c "$(declare -f run); S=$S; run studies/seed_lambda.toml seed_lambda" \
  > "$S/lambda.log" 2>&1 &
timeout "$BUDGET" bash -c "$(declare -f run); S=$S; run studies/seed_length.toml seed_length" \
  > "$S/length.log" 2>&1 &
wait
echo "studies took $(( $(date +%s) - t0 )) s"
for s in seed_rules seed_lambda seed_length; do
  mkdir -p "$OUT/$s"
  for t in results history; do
    [ -f "$S/$s/$t.csv" ] && gzip -c "$S/$s/$t.csv" > "$OUT/$s/$t.csv.gz"
  done
done
{ for f in "$S"/*.log; do echo "== $f"; tail -n 40 "$f"; done; } > "$OUT/run.log"
python3 - "$S" <<'PY'
import sys
from pathlib import Path
import pandas as pd
for d in sorted(Path(sys.argv[1]).iterdir()):
    if not (d / "results.csv").exists():
        print(d.name, "no results.csv"); continue
    r = pd.read_csv(d / "results.csv")
    done = r[r["status"] == "completed"]
    steps = done["steps"].sum() if "steps" in done else float("nan")
    ts = done.drop_duplicates("trial_id")["train_seconds"] if "train_seconds" in done else []
    print(f"{d.name}: {len(done)}/{len(r)} members completed, {steps:,.0f} member-steps, "
          f"trial train_seconds {sorted(round(x, 1) for x in ts)}")
PY
ls -la "$OUT" "$OUT"/*
