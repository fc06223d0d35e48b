#!/usr/bin/env bash
# Docker for the image integration tests and benchmarks (tests/integration/images/).
#
# Installs Debian's docker.io (dockerd, containerd, runc) and debootstrap, which builds the local
# base image, only when they are missing. The tests start their own daemon with
# scripts/docker/start-dockerd (no bridge, no iptables, own data root and socket), so a system
# daemon the package may have started is stopped and disabled.
set -euo pipefail

if command -v dockerd >/dev/null 2>&1 && command -v debootstrap >/dev/null 2>&1; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# Other jobs may hold the dpkg lock for a while; wait for it instead of failing.
$sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
$sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
  docker.io debootstrap

# The packaged service would create the docker0 bridge and iptables rules; keep it off.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  $sudo systemctl disable --now docker.service docker.socket >/dev/null 2>&1 || true
else
  $sudo service docker stop >/dev/null 2>&1 || true
  $sudo update-rc.d docker disable >/dev/null 2>&1 || true
fi
