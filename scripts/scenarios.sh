#!/usr/bin/env bash
# THE scenario suite command: installs what it needs, starts dockerd, builds the local images
# and kanary in release mode, then runs the attack and workload suite (scenarios/README.md):
#   bash scripts/scenarios.sh            full suite: 15 min learning (kanary's default), 10 min normal period, every attack
#   bash scripts/scenarios.sh --short    the short form CI runs (a few attacks, short learning)
# Extra arguments go to kanary-scenarios (see `--help`), e.g. --only 04 --only 11.
# The report lands in scenarios/results/ (latest.md, latest.json, one JSON per run).
# Needs root: the kanary agent loads eBPF programs.
set -euo pipefail

cd "$(dirname "$0")/.."

log() { printf 'scenarios.sh: %s\n' "$*" >&2; }

if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi

bash scripts/install-deps.sh --test
bash scripts/start-dockerd.sh
bash scripts/build-test-images.sh

log "cargo build --release -p kanary -p kanary-scenarios"
cargo build --release -p kanary -p kanary-scenarios

bin="${CARGO_TARGET_DIR:-target}/release/kanary-scenarios"
log "exec $bin --suite scenarios $*"
exec "$bin" --suite scenarios "$@"
