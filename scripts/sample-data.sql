INSERT INTO shop.suppliers (name, notes)
SELECT 'Supplier ' || g, CASE g % 4 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN E'tab\there\nnew line \\N' ELSE 'Zürich 🚚' END
  FROM generate_series(1, 500) g;
INSERT INTO shop.categories (parent_id, "Name")
SELECT CASE WHEN g > 10 THEN (g % 10) + 1 END, 'Category ' || g FROM generate_series(1, 200) g;
INSERT INTO shop.parts (sku, supplier_id, category_id, unit, price, specs, tags, photo, updated_at)
SELECT 'SKU-' || lpad(g::text, 7, '0'), (g % 500) + 1, (g % 200) + 1,
       (ARRAY['piece','box','metre','kg'])[(g % 4) + 1]::shop.unit,
       round((g * 1.37)::numeric, 2),
       jsonb_build_object('weight_g', g % 1000, 'rohs', g % 2 = 0),
       ARRAY['tag' || (g % 7), NULL, 'q"uote'],
       decode(md5(g::text), 'hex'),
       timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute'
  FROM generate_series(1, 60000) g;
INSERT INTO shop.stock_log SELECT timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second',
       'SKU-' || lpad(((g % 60000) + 1)::text, 7, '0'), (g % 21) - 10, NULLIF(repeat('x', g % 3), '')
  FROM generate_series(1, 40000) g;
ANALYZE;
