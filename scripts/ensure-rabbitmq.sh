#!/usr/bin/env bash
# Make sure a RabbitMQ broker answers on 127.0.0.1:5672; start the local one if it does not.
set -euo pipefail
answers() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }
if answers; then exit 0; fi
if ! command -v rabbitmq-server >/dev/null 2>&1; then
  echo "RabbitMQ is not installed; installing rabbitmq-server from Debian" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
fi
echo "starting rabbitmq-server" >&2
rabbitmq-server -detached
t0=$(date +%s)
# `await_startup` fails while the Erlang node is not yet registered, so ping first.
until rabbitmq-diagnostics -q ping >/dev/null 2>&1; do
  [ $(( $(date +%s) - t0 )) -ge 90 ] && { echo "rabbitmq: erlang node never came up" >&2; exit 1; }
  sleep 0.5
done
rabbitmqctl -q await_startup --timeout 90
until answers; do
  [ $(( $(date +%s) - t0 )) -ge 120 ] && { echo "rabbitmq: port 5672 never opened" >&2; exit 1; }
  sleep 0.5
done
echo "rabbitmq is up" >&2
