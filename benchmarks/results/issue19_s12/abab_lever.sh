#!/bin/bash
# ABAB: HEAD c604eb3 snapshot vs the same with the sparse-pooling lever in towers/history.py
OUT=${OUT:-/tmp/s12b/lever_abab}; ROUNDS=${ROUNDS:-3}; PY=/work/main/.venv/bin/python; mkdir -p $OUT
echo "start $(date +%T) $(uptime)"
for r in $(seq 1 $ROUNDS); do
  for t in now_head lever; do
    echo "$t round $r $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
    (cd /tmp/s12b/$t && PYTHONPATH=/tmp/s12b/$t $PY -m benchmarks.train_speed --data /work/shared/data/ml-100k --variants project_default,project_no_history --rounds 1 --epochs ${EPOCHS:-6} --out $OUT/${t}_r$r) 2>&1 | grep -E "\] round" || true
  done
done
echo "end $(date +%T) $(uptime)"
