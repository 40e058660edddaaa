//! Key sampling for the planner: sorted key values of a table (exact quantiles for small
//! tables, block samples for large ones), from which `plan` cuts keyset ranges.

use crate::error::{Error, Result, Role};
use crate::model::catalog::{Key, Table};
use crate::model::ident::column_list;
use crate::pg::slice::{key_order_by, key_text_columns};
use tokio_postgres::Client;

/// Samples key values of a table, sorted, as text: every n-th key when the table is small or
/// has never been analyzed, block sampling (TABLESAMPLE SYSTEM) when it is large. The planner
/// picks `want` boundaries from it (`plan::chunks::pick_quantiles`) and keeps chunks
/// open-ended, so nothing outside them is lost.
pub async fn sample_keys(
    client: &Client,
    role: Role,
    table: &Table,
    key: &Key,
    want: usize,
    exact_up_to: i64,
) -> Result<Vec<Vec<String>>> {
    if want == 0 {
        return Ok(Vec::new());
    }
    // Text outputs get their own names: `ORDER BY "id"` would otherwise sort the text output
    // column (lexicographic: "10" < "9") instead of the key.
    let sel = key_text_columns(key);
    let order = key_order_by(key, Some("dbsync_t"));
    let src = table.name.sql();
    // Never analyzed (-1), or analyzed while nearly empty (under a row per page): guess from
    // the heap's real size, ~60 rows a page. The guess only picks the method below.
    let est_rows = if table.est_rows >= table.pages.max(1) {
        table.est_rows
    } else {
        table.pages.max(1) * 60
    };
    let run = |sql: String| async move {
        let rows = client
            .query(sql.as_str(), &[])
            .await
            .map_err(|e| Error::pg(role, format!("sampling keys of {}", table.name), e))?;
        Ok::<_, Error>(
            rows.iter()
                .map(|r| {
                    (0..key.columns.len())
                        .map(|i| r.get::<_, String>(i))
                        .collect::<Vec<String>>()
                })
                .collect::<Vec<_>>(),
        )
    };
    let all = if est_rows <= exact_up_to {
        // Exact: every n-th key in key order, n from the real row count (same pass), so only
        // about `want` keys reach us even when the statistics are stale. Only the key columns
        // go through the sort: whole rows (wide text, jsonb) would make it many times slower.
        let parts = want as i64 + 1;
        let keys = column_list(key.columns.iter().map(|c| c.name.as_str()));
        // The count is its own scan (an init plan run once) rather than `count(*) OVER ()`,
        // which holds every row of the window until the last: 2.4x slower on 900k rows.
        run(format!(
            "SELECT {sel} FROM (SELECT {keys}, row_number() OVER (ORDER BY {order}) AS dbsync_rn
               FROM ONLY {src} AS dbsync_t) AS dbsync_t
             WHERE dbsync_rn % GREATEST(1, (SELECT count(*) FROM ONLY {src}) / {parts}) = 0
             ORDER BY dbsync_rn LIMIT {want}",
        ))
        .await?
    } else {
        // Large: ~100 keys per wanted boundary from random blocks. A wrong row estimate can make
        // the sample come back nearly empty; then sample ten times more, up to the whole table.
        let mut pct = (100.0 * (want as f64 * 100.0).max(10_000.0) / est_rows.max(1) as f64)
            .clamp(0.0001, 100.0);
        loop {
            let got = run(format!(
                "SELECT {sel} FROM ONLY {src} AS dbsync_t TABLESAMPLE SYSTEM ({pct:.6}) ORDER BY {order}"
            ))
            .await?;
            if got.len() >= want * 10 || pct >= 100.0 {
                break got;
            }
            pct = (pct * 10.0).min(100.0);
        }
    };
    Ok(all)
}

/// How finely [`keys_within`] cuts: into about `parts` runs of at least `min_rows` rows.
#[derive(Debug, Clone, Copy)]
pub struct Cut {
    pub parts: usize,
    pub min_rows: i64,
}

/// Key values that cut the rows of `table` that `condition` selects into about `cut.parts`
/// runs of at least `cut.min_rows` rows, in key order, as text (every n-th key, exact); none when the
/// rows are too few to cut. The refresh narrows a range that differs by them.
pub async fn keys_within(
    client: &Client,
    table: &Table,
    key: &Key,
    condition: &str,
    cut: Cut,
) -> Result<Vec<Vec<String>>> {
    let Cut { parts, min_rows } = cut;
    let sel = key_text_columns(key);
    let order = key_order_by(key, Some("dbsync_t"));
    let keys = column_list(key.columns.iter().map(|c| c.name.as_str()));
    let src = table.name.sql();
    let sql = format!(
        "SELECT {sel} FROM (SELECT {keys}, row_number() OVER (ORDER BY {order}) AS dbsync_rn
           FROM ONLY {src} AS dbsync_t WHERE {condition}) AS dbsync_t
         WHERE dbsync_rn % GREATEST({min_rows}, (SELECT count(*) FROM ONLY {src} WHERE {condition}) / {parts}) = 0
         ORDER BY dbsync_rn LIMIT {}",
        parts.saturating_sub(1)
    );
    let rows = client.query(sql.as_str(), &[]).await.map_err(|e| {
        Error::pg(
            Role::Source,
            format!("cutting a range of {}", table.name),
            e,
        )
    })?;
    Ok(rows
        .iter()
        .map(|r| {
            (0..key.columns.len())
                .map(|i| r.get::<_, String>(i))
                .collect()
        })
        .collect())
}
