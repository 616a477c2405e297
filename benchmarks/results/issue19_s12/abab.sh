#!/bin/bash
# ABAB: b3da70c (before issue 19) vs /work/main working tree, benchmarks.train_speed, one process per run.
set -e
OUT=${OUT:-/tmp/s12b/abab}
ROUNDS=${ROUNDS:-3}
NOW=${NOW:-/work/main}
PY=/work/main/.venv/bin/python
mkdir -p $OUT
echo "start $(date +%T) $(uptime)"
for r in $(seq 1 $ROUNDS); do
  echo "A round $r $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  (cd /work/before19 && PYTHONPATH=/work/before19 $PY -m benchmarks.train_speed --data /work/shared/data/ml-100k --variants project_default,project_ids --rounds 1 --epochs ${EPOCHS:-4} --out $OUT/before_r$r) 2>&1 | grep -E "round|examples" || true
  echo "B round $r $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  (cd $NOW && PYTHONPATH=$NOW $PY -m benchmarks.train_speed --data /work/shared/data/ml-100k --variants project_default,project_no_history,project_ids --rounds 1 --epochs ${EPOCHS:-4} --out $OUT/now_r$r) 2>&1 | grep -E "round|examples" || true
done
echo "end $(date +%T) $(uptime)"
