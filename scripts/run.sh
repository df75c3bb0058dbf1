#!/usr/bin/env bash
# THE run command: installs the build chain, builds kanary in release mode and runs
#   kanary run [ARGS...]
# With no arguments it runs `kanary run --events -` (events as JSON lines on stdout).
# Everything this script itself prints goes to stderr, so stdout is kanary's alone.
# Loading eBPF programs needs root.
set -euo pipefail

cd "$(dirname "$0")/.."

log() { printf 'run.sh: %s\n' "$*" >&2; }

if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi

bash scripts/install-deps.sh

log "cargo build --release -p kanary"
# cargo prints to stderr already; keep any stray stdout off the event stream too.
cargo build --release -p kanary >&2

if (($# == 0)); then
    set -- --events -
fi
bin="${CARGO_TARGET_DIR:-target}/release/kanary"
log "exec $bin run $*"
exec "$bin" run "$@"
