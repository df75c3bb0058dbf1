#!/usr/bin/env bash
# THE test command: installs what the tests need, starts dockerd, builds the local
# test images, then runs fmt, clippy and the whole test suite (nextest if it can be
# had, else cargo test). Extra arguments go to the test runner, e.g.
#   scripts/test.sh -E 'test(docker)'        (nextest filter)
# Integration tests see KANARY_TEST_DOCKER=1: Docker and the kanary-test/* images are
# ready. Tests that need root + eBPF run in the same run (CI runs as root).
# Setup failures stop at once; fmt, clippy and tests all run and the script exits
# non-zero if any of them failed.
set -euo pipefail

cd "$(dirname "$0")/.."

log() { printf 'test.sh: %s\n' "$*" >&2; }

# rustup installs cargo under ~/.cargo/bin, which a bare CI shell may not have on PATH.
if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || {
    log "cargo not found"
    exit 1
}

log "step: install dependencies"
bash scripts/install-deps.sh --test

log "step: test runner"
runner=nextest
if ! cargo nextest --version >/dev/null 2>&1; then
    log "cargo-nextest missing; trying: cargo install cargo-nextest --locked"
    if ! cargo install cargo-nextest --locked >&2; then
        log "could not install cargo-nextest; falling back to cargo test"
        runner=cargo-test
    fi
fi
log "using $runner"

log "step: docker daemon"
bash scripts/start-dockerd.sh

log "step: test images"
bash scripts/build-test-images.sh

failed=()

log "step: cargo fmt --all -- --check"
cargo fmt --all -- --check || failed+=(fmt)

log "step: cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings || failed+=(clippy)

export KANARY_TEST_DOCKER=1
if [[ "$runner" == nextest ]]; then
    log "step: cargo nextest run --workspace --no-fail-fast $*"
    cargo nextest run --workspace --no-fail-fast "$@" || failed+=(tests)
else
    log "step: cargo test --workspace --no-fail-fast $*"
    cargo test --workspace --no-fail-fast "$@" || failed+=(tests)
fi

if ((${#failed[@]})); then
    log "FAILED: ${failed[*]}"
    exit 1
fi
log "all checks passed"
