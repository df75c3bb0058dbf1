#!/usr/bin/env python3
"""The shop's users: an endless load generator against web.

The request rate follows a daily-traffic-like wave, compressed: a sinusoid
between MIN_RPS and MAX_RPS with period PERIOD_S seconds, times a slowly
wandering jitter factor (0.75..1.25), with exponential (Poisson) gaps between
requests. Mix of requests:

  ~75 %  GET  /api/items/<id>   mostly a hot set of ids (cache hits), some any
                                known id (misses, db reads), a few unknown (404)
  ~10 %  POST /api/items        a new item (db insert)
  ~15 %  GET  / or a static file
  every HEALTH_S seconds GET /api/diag?host=cache (the ops health check)

Requests run on a small thread pool so that a slow backend lowers throughput
instead of stalling the schedule. Every error is counted (and a few of them
logged); nothing makes the generator exit. A summary line goes to stdout every
SUMMARY_S seconds.
"""

import json
import math
import os
import random
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

TARGET = os.environ.get("TARGET", "http://web").rstrip("/")
MIN_RPS = float(os.environ.get("MIN_RPS", "2"))
MAX_RPS = float(os.environ.get("MAX_RPS", "40"))
PERIOD_S = float(os.environ.get("PERIOD_S", "180"))
HEALTH_S = float(os.environ.get("HEALTH_S", "30"))
SUMMARY_S = float(os.environ.get("SUMMARY_S", "10"))
TIMEOUT_S = float(os.environ.get("TIMEOUT_S", "5"))
WORKERS = int(os.environ.get("WORKERS", "16"))
# Beyond this many requests in flight new ones are skipped (and counted), so a
# dead backend cannot pile up an unbounded queue.
MAX_IN_FLIGHT = WORKERS * 4
HOT_IDS = 50
ERROR_LINES_PER_SUMMARY = 5
USER_AGENT = "shop-client/1.0"
STATIC = ["/", "/", "/style.css", "/shop.js"]


def log(line):
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%03dZ" % (now % 1 * 1000)
    sys.stdout.write("%s %s\n" % (stamp, line))
    sys.stdout.flush()


class Stats:
    """Counters since the last summary, shared by the worker threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()
        self.max_id = 1000  # the db is seeded with ids 1..1000; POSTs raise it
        self.in_flight = 0

    def reset(self):
        self.counts = {}
        self.latencies = []
        self.error_lines = 0

    def record(self, key, latency=None):
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1
            if latency is not None:
                self.latencies.append(latency)

    def error(self, what, err):
        self.record("err")
        with self.lock:
            self.error_lines += 1
            quiet = self.error_lines > ERROR_LINES_PER_SUMMARY
        if not quiet:
            log("error %s: %s" % (what, err))

    def summary(self, target_rps):
        with self.lock:
            counts, lat = self.counts, sorted(self.latencies)
            in_flight, max_id = self.in_flight, self.max_id
            self.reset()
        sent = sum(v for k, v in counts.items() if k[0].isdigit() or k == "err")
        p50 = lat[len(lat) // 2] * 1000 if lat else 0.0
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else 0.0
        detail = " ".join("%s=%d" % kv for kv in sorted(counts.items()))
        log(
            "summary target=%.1f/s actual=%.1f/s p50=%.0fms p99=%.0fms in_flight=%d max_id=%d %s"
            % (target_rps, sent / SUMMARY_S, p50, p99, in_flight, max_id, detail)
        )


stats = Stats()


def request(method, path, body=None):
    """One HTTP request; returns (status, headers, body bytes); raises on transport errors."""
    data = None
    headers = {"User-Agent": USER_AGENT}
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(TARGET + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:  # a status >= 400 is an answer, not a failure
        payload = e.read()
        return e.code, e.headers, payload


def pick_item_id():
    with stats.lock:
        max_id = stats.max_id
    r = random.random()
    if r < 0.70:
        return random.randint(1, min(HOT_IDS, max_id))
    if r < 0.98:
        return random.randint(1, max_id)
    return random.randint(max_id + 1, max_id + 100)


def one_request():
    """Pick a request from the mix, send it, count the outcome."""
    r = random.random()
    if r < 0.75:
        what = "GET /api/items/%d" % pick_item_id()
        method, path, body = "GET", what[4:], None
    elif r < 0.85:
        method, path = "POST", "/api/items"
        body = {"name": "widget-%06d" % random.randint(0, 999999), "price": random.randint(100, 10000)}
        what = "POST /api/items"
    else:
        method, path, body = "GET", random.choice(STATIC), None
        what = "GET " + path
    started = time.monotonic()
    try:
        status, headers, payload = request(method, path, body)
    except Exception as e:  # timeouts, refused connections, resets: keep going
        stats.error(what, e)
        return
    stats.record(str(status), time.monotonic() - started)
    cache_note = headers.get("X-Cache", "") if headers else ""
    if cache_note.startswith("hit"):
        stats.record("hit")
    elif cache_note.startswith("miss"):
        stats.record("miss")
    if status == 201:
        try:
            new_id = int(json.loads(payload)["id"])
            with stats.lock:
                stats.max_id = max(stats.max_id, new_id)
        except (ValueError, KeyError, TypeError):
            pass
    elif status >= 500:
        stats.error(what, "HTTP %d" % status)


def run_one():
    try:
        one_request()
    except Exception as e:  # never let a worker die on a bug
        stats.error("request", e)
    finally:
        with stats.lock:
            stats.in_flight -= 1


def health_check():
    """The ops check that uses the app's /diag endpoint the way it is meant to be used."""
    try:
        status, _, payload = request("GET", "/api/diag?host=cache")
        try:
            output = json.loads(payload).get("output", "").strip()
        except (ValueError, AttributeError):
            output = payload[:80]
        log("health diag host=cache -> %d %s" % (status, output))
    except Exception as e:
        log("health diag host=cache -> failed: %s" % e)


def target_rate(elapsed, jitter):
    wave = (1 - math.cos(2 * math.pi * elapsed / PERIOD_S)) / 2  # 0..1, starts low
    return max(0.5, (MIN_RPS + (MAX_RPS - MIN_RPS) * wave) * jitter)


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log("shop client: %s, %.0f..%.0f req/s, period %.0fs" % (TARGET, MIN_RPS, MAX_RPS, PERIOD_S))
    pool = ThreadPoolExecutor(max_workers=WORKERS)
    start = time.monotonic()
    next_health = start + 5
    next_summary = start + SUMMARY_S
    jitter, next_jitter = 1.0, start
    rate = MIN_RPS
    while True:
        try:
            now = time.monotonic()
            if now >= next_jitter:
                # A random walk, re-drawn every second, kept within +-25 %.
                jitter = min(1.25, max(0.75, jitter + random.uniform(-0.1, 0.1)))
                next_jitter = now + 1
            rate = target_rate(now - start, jitter)
            if now >= next_health:
                next_health = now + HEALTH_S
                pool.submit(health_check)
            if now >= next_summary:
                next_summary = now + SUMMARY_S
                stats.summary(rate)
            time.sleep(min(random.expovariate(rate), 1.0))
            with stats.lock:
                full = stats.in_flight >= MAX_IN_FLIGHT
                if not full:
                    stats.in_flight += 1
            if full:
                stats.record("skipped")
                continue
            pool.submit(run_one)
        except SystemExit:
            raise
        except Exception as e:  # keep the schedule alive whatever happens
            log("loop error: %s" % e)
            time.sleep(1)


if __name__ == "__main__":
    main()
