-- The shop's catalogue: the app and the report job log in as `shop`.
CREATE ROLE shop LOGIN PASSWORD 'shop-db-password';
CREATE DATABASE shop OWNER shop;
\connect shop shop
CREATE TABLE items (
    id      serial PRIMARY KEY,
    name    text NOT NULL,
    price   int NOT NULL,
    created timestamptz NOT NULL DEFAULT now()
);
-- 1000 seeded rows, spread over the last 30 days.
INSERT INTO items (name, price, created)
SELECT 'item-' || g,
       100 + (random() * 9900)::int,
       now() - random() * interval '30 days'
FROM generate_series(1, 1000) AS g;
ANALYZE items;
