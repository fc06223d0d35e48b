#!/usr/bin/env bash
# RabbitMQ for the queue integration tests and benchmarks (tests/integration/queue/).
#
# Installs Debian's rabbitmq-server only when it is missing. The tests start their own broker
# (own node name, data dir and ports on 127.0.0.1), so the system service the package starts
# is stopped and disabled: it would hold the default port and an Erlang node named rabbit.
set -euo pipefail

if command -v rabbitmqctl >/dev/null 2>&1 && [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# Other jobs may hold the dpkg lock for a while; wait for it instead of failing.
$sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
$sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends rabbitmq-server

# Stop whatever the package started, and keep it from starting on boot.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  $sudo systemctl disable --now rabbitmq-server.service >/dev/null 2>&1 || true
else
  $sudo service rabbitmq-server stop >/dev/null 2>&1 || true
  $sudo update-rc.d rabbitmq-server disable >/dev/null 2>&1 || true
fi
# The package's node may outlive its init script in a container; its epmd too.
if $sudo rabbitmqctl -q status >/dev/null 2>&1; then
  $sudo rabbitmqctl -q stop >/dev/null 2>&1 || true
fi
$sudo epmd -kill >/dev/null 2>&1 || true
