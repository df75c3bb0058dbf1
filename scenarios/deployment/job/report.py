#!/usr/bin/env python3
"""The shop's periodic report: a short batch job against the db.

Connects with the PG* environment variables, runs a few aggregate queries over
the catalogue, writes the report to /tmp/report.txt, prints it and exits 0. A db
that does not answer within ~15 s (restarting) makes it exit 1.
"""

import sys
import time

import psycopg2

REPORT = "/tmp/report.txt"
ATTEMPTS = 5


def connect():
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return psycopg2.connect(connect_timeout=3, application_name="shop-report")
        except psycopg2.OperationalError as e:
            print("report: db not reachable (attempt %d/%d): %s" % (attempt, ATTEMPTS, str(e).strip()))
            if attempt < ATTEMPTS:
                time.sleep(2)
    sys.exit(1)


def main():
    conn = connect()
    lines = []
    with conn, conn.cursor() as cur:
        cur.execute("SELECT count(*), min(price), max(price), round(avg(price)) FROM items")
        count, low, high, avg = cur.fetchone()
        lines.append("items: %d (price min %s, max %s, avg %s)" % (count, low, high, avg))

        cur.execute("SELECT count(*) FROM items WHERE created > now() - interval '1 hour'")
        lines.append("new in the last hour: %d" % cur.fetchone()[0])

        cur.execute(
            "SELECT width_bucket(price, 0, 100000, 10) AS bucket, count(*) "
            "FROM items GROUP BY bucket ORDER BY bucket"
        )
        for bucket, n in cur.fetchall():
            lines.append("  price band %2d: %d" % (bucket, n))

        cur.execute("SELECT id, name, price FROM items ORDER BY price DESC, id LIMIT 5")
        lines.append("most expensive:")
        for item_id, name, price in cur.fetchall():
            lines.append("  #%d %s %d" % (item_id, name, price))
    conn.close()

    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    text = "shop report %s\n%s\n" % (stamp, "\n".join(lines))
    with open(REPORT, "w") as f:
        f.write(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
