#!/usr/bin/env bash
# GNU parallel: the baseline the job-per-file local runner is benchmarked against.
set -euo pipefail
command -v parallel >/dev/null && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends parallel
