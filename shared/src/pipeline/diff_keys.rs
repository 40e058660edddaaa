//! Which rows differ, for `dbsync verify`: in a keyed table whose checksums differ, its key
//! ranges are compared with the changed-only refresh's fingerprints (one scan per side
//! where the key allows), then the rows of the first differing ranges are listed on both
//! sides by key and row hash, and the first few keys that differ are named.

use crate::error::{Result, Role};
use crate::model::catalog::Table;
use crate::model::chunk::ChunkRange;
use crate::pg::{refresh as sql, slice};
use crate::pipeline::planning::key_bounds;
use crate::pipeline::workers::SyncWorker;
use crate::plan::chunks::{key_ranges, EXACT_KEYS_UP_TO};
use std::collections::HashMap;

/// Ranges a table is cut into to find where it differs.
const RANGES: usize = 64;
/// Keys named per table.
pub const SHOWN: usize = 5;

/// Up to [`SHOWN`] keys of `table` whose rows differ between the two sides of `w`, in key
/// order (rows only on the target last), each as `(columns)=(values): what`. Empty for a
/// table without a key.
pub async fn first_differing_keys(
    w: &SyncWorker,
    table: &Table,
    theirs: Option<&Table>,
) -> Result<Vec<String>> {
    let Some(key) = &table.key else {
        return Ok(Vec::new());
    };
    let rows = sql::row_hashes(table, theirs);
    let bounds = key_bounds(&w.src, table, key, RANGES - 1, EXACT_KEYS_UP_TO / 20).await?;
    let ranges = key_ranges(&bounds);
    let what = format!("table {}", table.name);
    let c = sql::OnBoth {
        sides: w.sides(),
        table,
        hashes: &rows,
        what: &what,
    };
    let scanned = sql::table_fingerprints(c, &bounds, None).await?;
    let names: Vec<&str> = key.columns.iter().map(|c| c.name.as_str()).collect();
    let mut out = Vec::new();
    for (at, range) in ranges.iter().enumerate() {
        if out.len() >= SHOWN {
            break;
        }
        let differs = match &scanned {
            Some((s, t)) => s.get(at) != t.get(at),
            None => {
                let cond = slice::range_condition(Some(key), range);
                let (s, t) = sql::range_fingerprints(c, cond.as_deref()).await?;
                s != t
            }
        };
        if differs {
            let found = differing_rows(c, range).await?;
            out.extend(
                found
                    .into_iter()
                    .map(|(k, why)| format!("({})=({k}): {why}", names.join(", "))),
            );
        }
    }
    out.truncate(SHOWN);
    Ok(out)
}

/// The keys of `range` whose rows differ: changed or missing on the target in the
/// source's key order, then those only on the target.
async fn differing_rows(
    c: sql::OnBoth<'_>,
    range: &ChunkRange,
) -> Result<Vec<(String, &'static str)>> {
    let cond = slice::range_condition(c.table.key.as_ref(), range);
    let (Some(s), Some(t)) = (
        sql::range_rows_sql(c.table, &c.hashes.source, cond.as_deref()),
        sql::range_rows_sql(c.table, &c.hashes.target, cond.as_deref()),
    ) else {
        return Ok(Vec::new());
    };
    let (src, tgt) = tokio::try_join!(
        sql::range_rows(c.sides.source, Role::Source, &s, c.what),
        sql::range_rows(c.sides.target, Role::Target, &t, c.what)
    )?;
    Ok(diff_rows(&src, &tgt))
}

/// The keys whose rows differ between two lists of (key, row hash) in key order.
fn diff_rows(src: &[(String, i64)], tgt: &[(String, i64)]) -> Vec<(String, &'static str)> {
    let theirs: HashMap<&str, i64> = tgt.iter().map(|(k, h)| (k.as_str(), *h)).collect();
    let ours: HashMap<&str, i64> = src.iter().map(|(k, h)| (k.as_str(), *h)).collect();
    let mut out: Vec<(String, &'static str)> = src
        .iter()
        .filter_map(|(k, h)| match theirs.get(k.as_str()) {
            None => Some((k.clone(), "missing on the target")),
            Some(t) if t != h => Some((k.clone(), "differs")),
            Some(_) => None,
        })
        .collect();
    out.extend(
        tgt.iter()
            .filter(|(k, _)| !ours.contains_key(k.as_str()))
            .map(|(k, _)| (k.clone(), "only on the target")),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_changed_missing_and_extra_are_named_in_key_order_extra_last() {
        let row = |k: &str, h: i64| (k.to_string(), h);
        let src = [row("1", 10), row("2", 20), row("3", 30), row("4", 40)];
        let tgt = [row("0", 0), row("1", 10), row("2", 21), row("4", 40)];
        assert_eq!(
            diff_rows(&src, &tgt),
            vec![
                ("2".to_string(), "differs"),
                ("3".to_string(), "missing on the target"),
                ("0".to_string(), "only on the target"),
            ]
        );
        assert!(diff_rows(&src, &src).is_empty());
    }
}
