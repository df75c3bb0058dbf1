#!/usr/bin/env bash
# Build the local Docker images the integration tests run, without any registry:
#
#   kanary-test/busybox:1  busybox-static in an otherwise empty tree
#   kanary-test/debian:1   Debian bookworm minbase (debootstrap) with nginx-light,
#                          redis-server, curl, python3, procps, iproute2, netcat,
#                          and (since recipe debian-2) PostgreSQL 15 with the
#                          python3-psycopg2 and python3-redis clients that the
#                          scenario suite's deployment (scenarios/deployment/) runs
#
# Cached between runs: an image is skipped when it exists with the expected recipe
# label. Bump the *_RECIPE string below to force a rebuild. The debootstrap tree is
# kept as a tarball under /var/cache/kanary, so rebuilding after `docker rmi` only
# re-imports it. The Debian mirror is whatever the host's apt uses (override with
# KANARY_DEBIAN_MIRROR=<url>).
set -euo pipefail

cd "$(dirname "$0")/.."

log() { printf 'build-test-images: %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

# Tags are what the tests refer to; recipes are what the cache is keyed on.
BUSYBOX_IMAGE=kanary-test/busybox:1
BUSYBOX_RECIPE=busybox-1
DEBIAN_IMAGE=kanary-test/debian:1
DEBIAN_RECIPE=debian-2
DEBIAN_SUITE=bookworm
DEBIAN_INCLUDE=nginx-light,redis-server,curl,python3,ca-certificates,procps,iproute2,netcat-openbsd,postgresql,python3-psycopg2,python3-redis
LABEL_KEY=org.kanary.test-image.recipe
CACHE_DIR=/var/cache/kanary

command -v docker >/dev/null 2>&1 || die "no docker CLI (run scripts/install-deps.sh --test)"
timeout 10 docker info >/dev/null 2>&1 || die "docker daemon not answering (run scripts/start-dockerd.sh)"

# True when IMAGE exists and carries the recipe label RECIPE.
image_current() {
    local image=$1 recipe=$2 have
    have=$(docker image inspect --format "{{ index .Config.Labels \"$LABEL_KEY\" }}" "$image" 2>/dev/null) || return 1
    [[ "$have" == "$recipe" ]]
}

# An image under IMAGE's tag but from an older recipe is removed before rebuilding,
# so it does not linger as an untagged layer.
drop_stale() {
    if docker image inspect "$1" >/dev/null 2>&1; then
        log "removing stale $1"
        docker rmi -f "$1" >/dev/null 2>&1 || true
    fi
}

# Scratch space; cleaned on exit. Anything debootstrap left mounted under it is
# unmounted first so that rm -rf can never walk into the host's /proc or /sys.
WORK=""
cleanup() {
    [[ -n "$WORK" && -d "$WORK" ]] || return 0
    local mnt
    # /proc/mounts escapes spaces as \040; our paths have none.
    while read -r mnt; do
        umount -l "$mnt" 2>/dev/null || true
    done < <(awk -v w="$WORK/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r)
    if awk -v w="$WORK/" 'index($2, w) == 1 { found = 1 } END { exit !found }' /proc/mounts; then
        log "WARNING: mounts remain under $WORK; not deleting it"
        return 0
    fi
    rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT
# Turn signals into a normal exit so the EXIT trap (and its unmounting) runs.
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$CACHE_DIR"
WORK=$(mktemp -d "$CACHE_DIR/work.XXXXXX")

# ---------------------------------------------------------------------------
# kanary-test/busybox
# ---------------------------------------------------------------------------
build_busybox() {
    if image_current "$BUSYBOX_IMAGE" "$BUSYBOX_RECIPE"; then
        log "$BUSYBOX_IMAGE is current ($BUSYBOX_RECIPE); skipping"
        return 0
    fi
    local bb=/bin/busybox
    [[ -x "$bb" ]] || die "$bb missing (Debian package busybox-static; run scripts/install-deps.sh --test)"
    # The image must not depend on host libraries, so insist on the static build.
    if ldd "$bb" >/dev/null 2>&1; then
        die "$bb is dynamically linked; install busybox-static"
    fi

    drop_stale "$BUSYBOX_IMAGE"
    log "building $BUSYBOX_IMAGE from $bb"
    local root=$WORK/busybox-root applet
    mkdir -p "$root"/{bin,etc,tmp,root,proc,sys,dev}
    chmod 1777 "$root/tmp"
    chmod 700 "$root/root"
    cp "$bb" "$root/bin/busybox"
    # One symlink per applet, all in /bin (on Docker's default PATH).
    while read -r applet; do
        [[ -n "$applet" && "$applet" != busybox ]] || continue
        ln -sf busybox "$root/bin/$applet"
    done < <("$bb" --list)
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"

    tar -C "$root" --numeric-owner --owner=0 --group=0 -cf - . |
        docker import \
            --change 'CMD ["/bin/sh"]' \
            --change "LABEL $LABEL_KEY=$BUSYBOX_RECIPE" \
            --message "kanary test image $BUSYBOX_RECIPE" \
            - "$BUSYBOX_IMAGE" >/dev/null

    local out
    out=$(docker run --rm "$BUSYBOX_IMAGE" echo ok 2>&1) || true
    if [[ "$out" != ok ]]; then
        docker rmi -f "$BUSYBOX_IMAGE" >/dev/null 2>&1 || true
        die "$BUSYBOX_IMAGE failed its check: 'echo ok' printed: $out"
    fi
    log "$BUSYBOX_IMAGE built and checked"
}

# ---------------------------------------------------------------------------
# kanary-test/debian
# ---------------------------------------------------------------------------

# Print the Debian mirror the host's apt uses for $DEBIAN_SUITE: the first http(s)
# URI of an enabled "deb" entry whose suites include it and whose components
# include main. Reads deb822 *.sources and one-line *.list files.
host_debian_mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] || continue
        awk -v suite="$DEBIAN_SUITE" '
            function flush() {
                if (!printed && enabled != "no" && has(types, "deb") && has(suites, suite) && has(comps, "main")) {
                    n = split(uris, u, /[ \t]+/)
                    for (i = 1; i <= n; i++) if (u[i] ~ /^https?:\/\//) { print u[i]; printed = 1; break }
                }
                types = uris = suites = comps = ""; enabled = "yes"
            }
            function has(list, word,   n, a, i) {
                n = split(list, a, /[ \t]+/)
                for (i = 1; i <= n; i++) if (a[i] == word) return 1
                return 0
            }
            BEGIN { enabled = "yes" }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            {
                line = $0; key = tolower(line); sub(/:.*/, "", key)
                val = line; sub(/^[^:]*:[ \t]*/, "", val)
                if (key == "types") types = val
                else if (key == "uris") uris = val
                else if (key == "suites") suites = val
                else if (key == "components") comps = val
                else if (key == "enabled") enabled = tolower(val)
            }
            END { flush() }
        ' "$f" | head -n 1
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f "$f" ]] || continue
        # deb [options] URI SUITE COMPONENT...
        awk -v suite="$DEBIAN_SUITE" '
            $1 != "deb" { next }
            {
                i = 2
                if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                uri = $i; s = $(i + 1); main = 0
                for (j = i + 2; j <= NF; j++) if ($j == "main") main = 1
                if (s == suite && main && uri ~ /^https?:\/\//) { print uri; exit 0 }
            }
        ' "$f"
    done
}

build_debian() {
    if image_current "$DEBIAN_IMAGE" "$DEBIAN_RECIPE"; then
        log "$DEBIAN_IMAGE is current ($DEBIAN_RECIPE); skipping"
        return 0
    fi

    # The cached tarball is keyed on everything that shapes the tree (not the mirror).
    local key tarball
    key=$(printf '%s\n' "$DEBIAN_RECIPE" "$DEBIAN_SUITE" minbase "$DEBIAN_INCLUDE" "$(dpkg --print-architecture)" |
        sha256sum | cut -c1-12)
    tarball=$CACHE_DIR/debian-$DEBIAN_SUITE-$key.tar

    if [[ -s "$tarball" ]]; then
        log "using cached rootfs $tarball"
    else
        command -v debootstrap >/dev/null 2>&1 ||
            die "debootstrap missing (run scripts/install-deps.sh --test)"
        local mirror=${KANARY_DEBIAN_MIRROR:-}
        if [[ -z "$mirror" ]]; then
            mirror=$(host_debian_mirror | head -n 1)
        fi
        [[ -n "$mirror" ]] ||
            die "no Debian mirror for '$DEBIAN_SUITE' (main) found in /etc/apt/sources.list or /etc/apt/sources.list.d/; set KANARY_DEBIAN_MIRROR=<url>"

        local root=$WORK/debian-root
        log "debootstrap --variant=minbase $DEBIAN_SUITE from $mirror (takes a few minutes; output in $WORK/debootstrap.log)"
        local t0=$SECONDS
        if ! debootstrap --variant=minbase --include="$DEBIAN_INCLUDE" \
            "$DEBIAN_SUITE" "$root" "$mirror" >"$WORK/debootstrap.log" 2>&1; then
            tail -n 30 "$WORK/debootstrap.log" >&2 || true
            [[ -f "$root/debootstrap/debootstrap.log" ]] && tail -n 30 "$root/debootstrap/debootstrap.log" >&2
            die "debootstrap failed"
        fi
        log "debootstrap done in $((SECONDS - t0))s"

        # Slim the tree: downloaded .debs and apt lists are not needed to run tests.
        rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/tmp/* 2>/dev/null || true

        # Write to a temporary name first so an interrupted run never leaves a
        # truncated tarball that a later run would trust.
        log "saving rootfs to $tarball"
        tar -C "$root" --numeric-owner --one-file-system \
            --exclude='./proc/*' --exclude='./sys/*' --exclude='./dev/*' \
            -cf "$tarball.partial" .
        mv -f "$tarball.partial" "$tarball"
        # Older cache entries (other recipes) are dead weight.
        find "$CACHE_DIR" -maxdepth 1 -name "debian-$DEBIAN_SUITE-*.tar" ! -name "${tarball##*/}" -delete
    fi

    # The import moves the tag in one step and the stale image is removed only
    # afterwards, so tests running meanwhile never find the tag missing.
    local stale
    stale=$(docker image inspect --format '{{ .Id }}' "$DEBIAN_IMAGE" 2>/dev/null) || stale=""
    log "importing $tarball as $DEBIAN_IMAGE"
    docker import \
        --change 'CMD ["bash"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change "LABEL $LABEL_KEY=$DEBIAN_RECIPE" \
        --message "kanary test image $DEBIAN_RECIPE" \
        "$tarball" "$DEBIAN_IMAGE" >/dev/null
    if [[ -n "$stale" ]]; then
        # Fails harmlessly while a container still uses the old image.
        log "removing stale image ${stale#sha256:}"
        docker rmi "$stale" >/dev/null 2>&1 || true
    fi

    local check out
    # Debian installs the PostgreSQL server binaries outside PATH (pg_ctlcluster
    # wraps them); the scenario deployment's db image runs this one directly.
    for check in "nginx -v" "redis-server --version" "python3 --version" \
        "/usr/lib/postgresql/15/bin/postgres --version" "pg_isready --version" \
        "python3 -c 'import psycopg2, redis; print(psycopg2.__version__, redis.__version__)'"; do
        # Through sh so that a check can quote its arguments.
        if ! out=$(docker run --rm "$DEBIAN_IMAGE" sh -c "$check" 2>&1); then
            docker rmi -f "$DEBIAN_IMAGE" >/dev/null 2>&1 || true
            die "$DEBIAN_IMAGE failed its check '$check': $out"
        fi
        log "  $check: $out"
    done
    log "$DEBIAN_IMAGE built and checked"
}

t_start=$SECONDS
build_busybox
build_debian
log "done in $((SECONDS - t_start))s"
