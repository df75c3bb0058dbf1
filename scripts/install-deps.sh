#!/usr/bin/env bash
# Install the Debian packages kanary needs, and nothing when they are all there.
#
#   scripts/install-deps.sh          build chain (clang/LLVM 19, libelf, zlib, bpftool)
#   scripts/install-deps.sh --test   ... plus what the test bed needs (docker, busybox,
#                                    debootstrap, iproute2, curl, procps, prometheus,
#                                    chromium)
#
# Idempotent and cheap: presence is checked with dpkg-query first, so a second run
# touches neither the network nor apt's lists. All output goes to stderr, because
# scripts/run.sh may stream events on stdout.
set -euo pipefail

log() { printf 'install-deps: %s\n' "$*" >&2; }

with_test=0
for arg in "$@"; do
    case "$arg" in
        --test) with_test=1 ;;
        -h | --help)
            sed -n '2,10p' "$0" >&2
            exit 0
            ;;
        *)
            log "unknown argument: $arg (expected --test)"
            exit 2
            ;;
    esac
done

# Build chain for libbpf-cargo: clang compiles bpf/*.bpf.c, libelf/zlib are linked
# by libbpf-sys, bpftool is handy for inspecting loaded programs and regenerating vmlinux.h.
packages=(clang-19 llvm-19 libelf-dev zlib1g-dev pkg-config bpftool)
if ((with_test)); then
    # docker.io brings dockerd (the machine may only have a docker client);
    # busybox-static and debootstrap build the local test images without any registry;
    # iproute2/curl/procps are used by the integration tests and the helper scripts;
    # prometheus scrapes a live agent in tests/prometheus.rs (every dashboard query must answer);
    # chromium (headless, over the DevTools protocol) is the browser of tests/web_ui.rs.
    packages+=(docker.io busybox-static debootstrap iproute2 curl procps prometheus chromium)
fi

missing=()
for pkg in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} == 0)); then
    log "all ${#packages[@]} packages already installed (${packages[*]})"
    exit 0
fi

log "missing: ${missing[*]}"

# Root is needed only when something must be installed.
sudo=()
if ((EUID != 0)); then
    if command -v sudo >/dev/null 2>&1; then
        sudo=(sudo)
    else
        log "not root and no sudo: install these by hand: ${missing[*]}"
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
# A fresh machine may have no package lists at all, so update before installing.
log "apt-get update"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
log "apt-get install ${missing[*]}"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -q -y --no-install-recommends "${missing[@]}" >&2
log "done"
