#!/bin/sh
# Every benchmark of issue #7, SQLite then PostgreSQL; outputs next to this script.
set -e
cd "$(dirname "$0")/.."
PY=.venv/bin/python
run() { name=$1; shift; echo "== $name: $*"; $PY -m "$@" --json "bench/$name.json" | tee "bench/$name.txt"; }
run w1_sqlite bench.w1_fanout --subscribers 100,1000 --posts 30
run w1_im_sqlite bench.w1_fanout --subscribers 100,1000 --posts 30 --im
run w1_postgres bench.w1_fanout --subscribers 100,1000 --posts 30 --db postgres
run w2_sqlite bench.w2_publishers
run w2_postgres bench.w2_publishers --db postgres
run w2_sqlite_f1000 bench.w2_publishers --users 10 --posts 10 --followers 1000
run w2_postgres_f1000 bench.w2_publishers --users 10 --posts 10 --followers 1000 --db postgres
run w3_sqlite bench.w3_retrieval
run w3_postgres bench.w3_retrieval --db postgres
run w4 bench.w4_federation
run memory bench.memory
run w5_multicast bench.w5_multicast
