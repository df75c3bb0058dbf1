#!/usr/bin/env python3
"""The shop's HTTP API: a small, ordinary cache-aside web service.

Routes (web proxies /api/<route> here, stripping the /api prefix):

  GET  /items/<id>       the item as JSON; read from the cache (Redis), on a miss
                         from the db (PostgreSQL), then cached for CACHE_TTL seconds
  POST /items            JSON body {"name": str, "price": int}: INSERT, 201 + the row
  GET  /health           liveness, {"status": "ok"}
  GET  /diag?host=<h>    name resolution check, runs `getent hosts <h>`

/diag is DELIBERATELY VULNERABLE to command injection: it builds a shell command
by string concatenation and runs it through /bin/sh. The client's health check
uses it legitimately (host=cache); the attack scenarios exploit it
(host=cache;<anything>). Never copy it anywhere real.

One log line per request goes to stdout (docker logs). Errors from the cache or
the db (a restart, a scale-down) turn into a cache miss or a 503, never a crash.
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import psycopg2
import psycopg2.pool
import redis

PORT = int(os.environ.get("APP_PORT", "8000"))
REDIS_HOST = os.environ.get("REDIS_HOST", "cache")
CACHE_TTL = int(os.environ.get("CACHE_TTL", "60"))
DB_POOL_MAX = int(os.environ.get("DB_POOL_MAX", "16"))

ITEM_PATH = re.compile(r"^/items/([0-9]{1,9})$")
DB_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError, psycopg2.pool.PoolError)


def log(line):
    """Print one line to stdout (the container log) with a UTC timestamp."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%03dZ" % (now % 1 * 1000)
    sys.stdout.write("%s %s\n" % (stamp, line))
    sys.stdout.flush()


# Redis reconnects by itself on the next command after a failure, so a restart of
# the cache costs a few misses and nothing else.
cache = redis.Redis(
    host=REDIS_HOST, port=6379, socket_timeout=2, socket_connect_timeout=2, decode_responses=True
)


class Db:
    """A lazily created pool of libpq connections (PG* environment variables).

    Lazy so that the app starts (and answers /health) before the db is up; a
    connection that failed is closed instead of returned, so that a db restart
    heals on the next request.
    """

    def __init__(self):
        self._pool = None
        self._lock = threading.Lock()

    def _get_pool(self):
        with self._lock:
            if self._pool is None:
                self._pool = psycopg2.pool.ThreadedConnectionPool(
                    0, DB_POOL_MAX, connect_timeout=3, application_name="shop-app"
                )
            return self._pool

    def query(self, sql, args=()):
        """Run one statement in its own transaction; return all rows (or [])."""
        pool = self._get_pool()
        conn = pool.getconn()
        broken = False
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                rows = cur.fetchall() if cur.description is not None else []
            conn.commit()
            return rows
        except DB_ERRORS:
            broken = True
            raise
        except Exception:
            try:
                conn.rollback()
            except Exception:
                broken = True
            raise
        finally:
            pool.putconn(conn, close=broken or conn.closed != 0)


db = Db()


def item_json(row):
    item_id, name, price, created = row
    return {"id": item_id, "name": name, "price": price, "created": created.isoformat()}


class Handler(BaseHTTPRequestHandler):
    server_version = "shop-app/1.0"

    # ---- plumbing ---------------------------------------------------------

    def log_message(self, fmt, *args):
        # The standard per-request stderr line is replaced by our own (_log).
        pass

    def _reply(self, status, body, note=""):
        data = (json.dumps(body) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if note:
            self.send_header("X-Cache", note)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self._status = status
        self._note = note

    def _handle(self, route):
        self._status = 0
        self._note = ""
        started = time.monotonic()
        try:
            route()
        except DB_ERRORS as e:
            self._reply(503, {"error": "db unavailable"})
            first_line = (str(e).strip().splitlines() or [""])[0][:120]
            self._note = "db-error: %s" % first_line
        except subprocess.TimeoutExpired:
            self._reply(504, {"error": "diag timed out"})
            self._note = "diag timeout"
        except (BrokenPipeError, ConnectionResetError):
            self._note = "client gone"
        except Exception as e:  # a bug or bad input: answer 500, keep serving
            try:
                self._reply(500, {"error": "internal"})
            except Exception:
                pass
            self._note = "error: %s: %s" % (type(e).__name__, e)
        forwarded = self.headers.get("X-Forwarded-For", "-")
        log(
            "%s %s %s %d %.1fms xff=%s %s"
            % (
                self.client_address[0],
                self.command,
                self.path,
                self._status,
                (time.monotonic() - started) * 1000,
                forwarded,
                self._note,
            )
        )

    def do_GET(self):
        self._handle(self._route_get)

    def do_POST(self):
        self._handle(self._route_post)

    # ---- routes -----------------------------------------------------------

    def _route_get(self):
        url = urlsplit(self.path)
        m = ITEM_PATH.match(url.path)
        if m:
            return self._get_item(int(m.group(1)))
        if url.path == "/health":
            return self._reply(200, {"status": "ok"})
        if url.path == "/diag":
            return self._diag(parse_qs(url.query).get("host", [""])[0])
        self._reply(404, {"error": "not found"})

    def _route_post(self):
        if urlsplit(self.path).path != "/items":
            return self._reply(404, {"error": "not found"})
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > 65536:
            return self._reply(400, {"error": "body required (at most 64 KiB)"})
        try:
            body = json.loads(self.rfile.read(length))
            name = str(body["name"])[:200]
            price = int(body["price"])
        except (ValueError, KeyError, TypeError):
            return self._reply(400, {"error": "expected {\"name\": str, \"price\": int}"})
        rows = db.query(
            "INSERT INTO items (name, price) VALUES (%s, %s) RETURNING id, name, price, created",
            (name, price),
        )
        self._reply(201, item_json(rows[0]))

    def _get_item(self, item_id):
        key = "item:%d" % item_id
        try:
            cached = cache.get(key)
        except redis.RedisError:
            cached = None
            cache_ok = False
        else:
            cache_ok = True
        if cached is not None:
            return self._reply(200, json.loads(cached), "hit")
        rows = db.query("SELECT id, name, price, created FROM items WHERE id = %s", (item_id,))
        if not rows:
            return self._reply(404, {"error": "no such item"}, "miss")
        item = item_json(rows[0])
        note = "miss"
        if cache_ok:
            try:
                cache.setex(key, CACHE_TTL, json.dumps(item))
            except redis.RedisError:
                note = "miss cache-down"
        else:
            note = "miss cache-down"
        self._reply(200, item, note)

    def _diag(self, host):
        # DELIBERATE COMMAND INJECTION (the RCE scenario's way in): `host` comes
        # straight from the query string and is pasted into a shell command line.
        # A real service would validate it or call socket.getaddrinfo().
        proc = subprocess.run(
            "getent hosts " + host, shell=True, capture_output=True, text=True, timeout=10
        )
        self._reply(
            200 if proc.returncode == 0 else 502,
            {"host": host, "rc": proc.returncode, "output": proc.stdout + proc.stderr},
        )


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # Room for bursts while a replica is starting or the db is slow.
    request_queue_size = 128


def main():
    # As PID 1 the process would ignore SIGTERM (no default action for init), and
    # docker stop would wait for its kill timeout: exit on it instead.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = Server(("0.0.0.0", PORT), Handler)
    log("shop app listening on :%d (cache %s, db %s/%s)" % (
        PORT, REDIS_HOST, os.environ.get("PGHOST", "?"), os.environ.get("PGDATABASE", "?")))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
