#!/usr/bin/env bash
# Makes sure the shared test servers are up: Redis 127.0.0.1:6379, NATS with JetStream
# 127.0.0.1:4222, RabbitMQ 127.0.0.1:5672. Starts the ones that are down (never restarts or
# flushes one that runs: other tests may be using it).
set -uo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && exec 3>&- 3<&-; }

wait_port() {
  local port=$1 name=$2 tries=${3:-60}
  for _ in $(seq "$tries"); do
    port_open "$port" && { echo "ensure-servers: $name is up on :$port"; return 0; }
    sleep 1
  done
  echo "ensure-servers: $name did not come up on :$port" >&2
  return 1
}

status=0
if ! port_open 6379; then
  echo "ensure-servers: starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
fi
wait_port 6379 Redis || status=1

if ! port_open 4222; then
  echo "ensure-servers: starting NATS with JetStream"
  mkdir -p /var/lib/nats-server
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log || true
fi
wait_port 4222 NATS || status=1

if ! port_open 5672; then
  echo "ensure-servers: starting RabbitMQ"
  rabbitmq-server -detached || true
fi
wait_port 5672 RabbitMQ 120 || status=1

exit $status
