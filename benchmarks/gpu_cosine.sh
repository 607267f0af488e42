#!/usr/bin/env bash
# Issue 21's cosine rule study (studies/rules_cosine.md) as one prepared device run: the
# full seed factorial (studies/rules_cosine_bT.toml, 63.9 M member-steps) and the digits
# design, each its own `wdsweep run` with an embedded local Ray, until BUDGET seconds;
# what finished by then is exported (`wdsweep export`: gzipped tables + manifest) under
# $OUT/<study>/; on a warm machine the next call continues each study (`wdsweep refine`
# for a refined one, else `wdsweep resume`).
#   OUT=/some/dir BUDGET=480 bash benchmarks/gpu_cosine.sh
# Ray's wheels travel in .whl (../shared/tools/offline-wheels.sh .whl) where the image
# has no Ray; on a machine with Ray installed the install step is skipped.
set -u
PY=${PY:-python3}  # the interpreter with torch (and Ray, or the wheels in .whl)
OUT=${OUT:-/tmp/out}
BUDGET=${BUDGET:-480}  # seconds for the studies
S=${S:-/tmp/st}        # the studies' directories (kept between calls on a warm machine)
SPECS=${SPECS:-"studies/rules_cosine_bT.toml:rules_cosine studies/rules_cosine_digits.toml:rules_cosine_digits"}
mkdir -p "$OUT" "$S"
if ! "$PY" -c "import ray" 2>/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=$PWD:/tmp/site
fi
export RAY_USAGE_STATS_ENABLED=0 PYTHONUNBUFFERED=1 RAY_ADDRESS=local
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
"$PY" -c "import torch, ray; print('torch', torch.__version__, 'ray', ray.__version__)"
w() { "$PY" -m sweep.cli.main "$@"; }
t0=$(date +%s)
for pair in $SPECS; do  # one after another: each takes the whole card
  spec=${pair%%:*}; name=${pair##*:}; left=$(( BUDGET - ($(date +%s) - t0) ))
  [ "$left" -gt 10 ] || break
  if [ ! -f "$S/$name/study.json" ]; then cmd=(run "$spec" --study "$S/$name" --yes --no-report)
  elif grep -q '^\[refine\]' "$spec"; then cmd=(refine "$S/$name" --yes --no-report)
  else cmd=(resume "$S/$name" --yes --no-report); fi  # (a finished study: nothing to do)
  # SIGINT straight to the driver: Tune stops its trials, the study is left resumable
  timeout --signal=INT --kill-after=60 "$left" "$PY" -m sweep.cli.main "${cmd[@]}" \
    > "$S/$name.log" 2>&1
  echo "$name: exit $? after $(( $(date +%s) - t0 )) s"
done
for pair in $SPECS; do
  name=${pair##*:}
  [ -f "$S/$name/study.json" ] || continue
  rm -rf "$OUT/$name"
  w export "$S/$name" "$OUT/$name" || echo "$name: export failed"
  tail -n 30 "$S/$name.log" > "$OUT/$name.log"
  w status "$S/$name" | head -n 5
done
