#!/usr/bin/env bash
# Starts a throw-away local Redis Cluster of 3 masters (no replicas) on free ports, for tests.
#
#   test-infra/redis-cluster.sh start [DIR]   # prints "PORTS p1 p2 p3" and "DIR <dir>" once the cluster is ok
#   test-infra/redis-cluster.sh stop DIR      # stops the nodes started in DIR and removes DIR
#
# Needs redis-server and redis-cli (Debian: apt-get install redis-server). Exits 3 when they are
# missing, so a caller can skip with a visible reason. Never touches any other Redis.
set -euo pipefail

cmd="${1:-start}"

if [[ "$cmd" == "stop" ]]; then
  dir="${2:?usage: redis-cluster.sh stop DIR}"
  for pidfile in "$dir"/node-*/redis.pid; do
    [[ -f "$pidfile" ]] || continue
    pid="$(cat "$pidfile")"
    kill "$pid" 2>/dev/null || true
  done
  # wait (briefly) for the nodes to exit, then remove their files
  for _ in $(seq 1 50); do
    alive=0
    for pidfile in "$dir"/node-*/redis.pid; do
      [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile" 2>/dev/null)" 2>/dev/null && alive=1
    done
    [[ $alive -eq 0 ]] && break
    sleep 0.1
  done
  rm -rf "$dir"
  exit 0
fi

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  echo "redis-server/redis-cli not found: install redis-server to run the cluster tests" >&2
  exit 3
fi

dir="${2:-$(mktemp -d -t lightbus-redis-cluster-XXXXXX)}"
mkdir -p "$dir"

free_port() {
  # A port that is free now (the kernel picks it), and its cluster bus port (+10000) too.
  while :; do
    port="$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
    if (( port + 10000 < 65536 )) && ! (echo >"/dev/tcp/127.0.0.1/$((port + 10000))") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
}

ports=()
for i in 1 2 3; do
  port="$(free_port)"
  ports+=("$port")
  node_dir="$dir/node-$port"
  mkdir -p "$node_dir"
  redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes \
    --cluster-config-file "$node_dir/nodes.conf" --cluster-node-timeout 2000 \
    --dir "$node_dir" --appendonly no --save '' --daemonize yes \
    --pidfile "$node_dir/redis.pid" --logfile "$node_dir/redis.log" >/dev/null
done

for port in "${ports[@]}"; do
  for _ in $(seq 1 50); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
done

redis-cli --cluster create "${ports[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes >"$dir/create.log" 2>&1

for _ in $(seq 1 100); do
  ok=1
  for port in "${ports[@]}"; do
    redis-cli -p "$port" cluster info 2>/dev/null | grep -q 'cluster_state:ok' || ok=0
  done
  [[ $ok -eq 1 ]] && break
  sleep 0.1
done
if [[ $ok -ne 1 ]]; then
  echo "the cluster did not reach state ok; see $dir" >&2
  exit 1
fi

echo "PORTS ${ports[*]}"
echo "DIR $dir"
