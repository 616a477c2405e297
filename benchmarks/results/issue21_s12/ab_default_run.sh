#!/usr/bin/env bash
# A/B: README default training (recsys train --data synthetic --epochs 3 --no-publish), HEAD (in-memory input)
# vs the working tree (prepared shards through tf.data), ABAB, peak RSS by /usr/bin/time.
set -u
out=/work/notes/ab21
for round in 1 2; do
  for tree in /work/ab_head /work/main; do
    name=$(basename $tree)
    uptime > $out/$name.$round.load
    ( cd $tree && PYTHONPATH=$tree /usr/bin/time -v /work/main/.venv/bin/python -c "import sys; from recsys.cli import app; sys.argv=['recsys','train','--data','synthetic','--epochs','3','--no-publish','--model-root','/tmp/ab21_$name']; app()" ) > $out/$name.$round.log 2>&1
    uptime >> $out/$name.$round.load
  done
done
