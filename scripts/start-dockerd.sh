#!/usr/bin/env bash
# Make sure a Docker daemon answers, starting one if needed.
#
# These machines have no systemd (and apt's policy-rc.d stops package installs from
# starting services), so dockerd is started by hand, detached, logging to
# /var/log/kanary-dockerd.log. The docker CLI on PATH may be a client-only build in
# /usr/local/bin; the daemon comes from Debian's docker.io (/usr/sbin/dockerd).
set -euo pipefail

log() { printf 'start-dockerd: %s\n' "$*" >&2; }

LOG_FILE=/var/log/kanary-dockerd.log
PID_FILE=/var/run/docker.pid
TIMEOUT_S=30

docker_ok() { timeout 10 docker info >/dev/null 2>&1; }

if ! command -v docker >/dev/null 2>&1; then
    log "no docker CLI on PATH (run scripts/install-deps.sh --test)"
    exit 1
fi

if docker_ok; then
    log "docker daemon already answering; nothing to do"
    exit 0
fi

dockerd_bin=/usr/sbin/dockerd
[[ -x "$dockerd_bin" ]] || dockerd_bin=$(command -v dockerd || true)
if [[ -z "$dockerd_bin" ]]; then
    log "dockerd not found (Debian package docker.io; run scripts/install-deps.sh --test)"
    exit 1
fi

if ((EUID != 0)); then
    log "docker daemon not answering and starting dockerd needs root"
    exit 1
fi

# A dockerd that is still starting up (e.g. from a parallel run) gets waited for,
# not duplicated: a second one would fail on the pid file anyway.
pid=""
if [[ -s "$PID_FILE" ]]; then
    pid=$(<"$PID_FILE")
    if ! kill -0 "$pid" 2>/dev/null; then
        pid=""
    fi
fi

if [[ -n "$pid" ]]; then
    log "dockerd (pid $pid) is running but not answering yet; waiting"
else
    log "starting $dockerd_bin in the background, log: $LOG_FILE"
    printf '\n=== %s start-dockerd.sh: starting %s\n' "$(date -Is)" "$dockerd_bin" >>"$LOG_FILE"
    # setsid + nohup: the daemon must outlive this script and the test run's process group.
    setsid nohup "$dockerd_bin" >>"$LOG_FILE" 2>&1 </dev/null &
    pid=$!
fi

# Alive if the process we know of, or whatever dockerd wrote its pid file, still runs
# (setsid may fork when it is run as a process-group leader, so $! is not always dockerd).
dockerd_alive() {
    kill -0 "$pid" 2>/dev/null && return 0
    [[ -s "$PID_FILE" ]] && kill -0 "$(<"$PID_FILE")" 2>/dev/null
}

deadline=$((SECONDS + TIMEOUT_S))
until docker_ok; do
    if ! dockerd_alive; then
        log "dockerd exited before answering; last lines of $LOG_FILE:"
        [[ -f "$LOG_FILE" ]] && tail -n 20 "$LOG_FILE" >&2
        exit 1
    fi
    if ((SECONDS >= deadline)); then
        log "dockerd (pid $pid) did not answer 'docker info' within ${TIMEOUT_S}s; last lines of $LOG_FILE:"
        [[ -f "$LOG_FILE" ]] && tail -n 20 "$LOG_FILE" >&2
        exit 1
    fi
    sleep 0.5
done

log "docker daemon is up (pid $pid, server $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
