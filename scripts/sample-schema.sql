-- The demo's parts catalogue: FK chain, a self-reference, identity and serial keys, a
-- generated column, a keyless log table.
CREATE SCHEMA shop;
CREATE TYPE shop.unit AS ENUM ('piece', 'box', 'metre', 'kg');
CREATE TABLE shop.suppliers (
    id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name  text NOT NULL,
    notes text
);
CREATE TABLE shop.categories (
    id        serial PRIMARY KEY,
    parent_id int REFERENCES shop.categories(id),
    "Name"    text NOT NULL
);
CREATE TABLE shop.parts (
    sku         text PRIMARY KEY,
    supplier_id bigint NOT NULL REFERENCES shop.suppliers(id),
    category_id int REFERENCES shop.categories(id),
    unit        shop.unit NOT NULL,
    price       numeric(12,2),
    price_cents bigint GENERATED ALWAYS AS ((price * 100)::bigint) STORED,
    specs       jsonb,
    tags        text[],
    photo       bytea,
    updated_at  timestamptz DEFAULT now()
);
CREATE TABLE shop.stock_log (at timestamptz NOT NULL, sku text, delta int, note text);
