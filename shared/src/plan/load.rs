//! Load decisions: what a load takes away from the target (cyclic foreign keys, plain
//! secondary indexes, user triggers where replica mode is not allowed), the units whose
//! outside references forbid emptying, and the waves parts load in. Pure.

use crate::model::catalog::{ForeignKey, NotValidCheck, Table};
use crate::model::chunk::FkOrder;
use crate::model::ident::QualName;
use crate::model::restore::Restore;
use std::collections::BTreeSet;

/// How a load runs on the target, as far as the decisions below care.
#[derive(Debug, Clone, Copy)]
pub struct LoadMode {
    /// Loads run with `session_replication_role = replica`: no trigger fires.
    pub replica: bool,
    /// Keep the secondary indexes in place during the load.
    pub keep_indexes: bool,
    /// ANALYZE each table once it is loaded (`--analyze on`).
    pub analyze: bool,
}

/// What the load takes away from the target's tables `tables` (the target's own catalog
/// entries, in source order) and must put back afterwards.
/// `not_valid` are the target's NOT VALID checks on these tables and their columns' domains:
/// COPY would apply them to every row, so they are set aside too (and come back NOT VALID,
/// exactly as they were).
pub fn what_to_take(
    tables: &[Table],
    not_valid: &[NotValidCheck],
    order: &FkOrder,
    mode: LoadMode,
) -> Restore {
    Restore {
        no_analyze: !mode.analyze,
        checks: not_valid.to_vec(),
        fks: order.cyclic.clone(),
        indexes: dropped(tables, mode, |t| &t.secondary_indexes),
        // Keys nothing depends on go too: rebuilt from the loaded rows, they cost less than
        // keeping them up to date row by row, and parallel loads of one table stop
        // contending on the key's pages.
        keys: dropped(tables, mode, |t| &t.rebuildable_keys),
        // Replica mode keeps every trigger quiet; otherwise user triggers are disabled per
        // table (FK triggers stay, and the wave order satisfies them).
        triggers: if mode.replica {
            Vec::new()
        } else {
            tables
                .iter()
                .filter(|t| !t.user_triggers.is_empty())
                .map(|t| t.name.clone())
                .collect()
        },
        // Known only once the target's keys are read (the pre-flight fills it in).
        unenforced: Vec::new(),
        // Known only once the target's major is (the pre-flight fills it in).
        stats: Vec::new(),
        shadow: None,
    }
}

/// What of each table's `what` the load drops and rebuilds: all of it, unless
/// `--keep-indexes`.
fn dropped<T: Clone>(tables: &[Table], mode: LoadMode, what: impl Fn(&Table) -> &Vec<T>) -> Vec<T> {
    if mode.keep_indexes {
        return Vec::new();
    }
    tables
        .iter()
        .flat_map(|t| what(t).iter().cloned())
        .collect()
}

/// The target's foreign keys a replica-mode load does not enforce, split by where they point.
#[derive(Debug, Default)]
pub struct UnenforcedKeys {
    /// Between tables in scope (left in place; made NOT VALID if the load fails).
    pub inside: Vec<ForeignKey>,
    /// From a table in scope to one outside it (nothing vouches for them: re-validated).
    pub outward: Vec<ForeignKey>,
}

/// Which of the target's keys touching `tables` no one checks in replica mode, leaving out
/// the ones the load drops anyway (`dropped`).
pub fn unenforced_keys(
    tables: &[Table],
    target_fks: &[ForeignKey],
    dropped: &[ForeignKey],
) -> UnenforcedKeys {
    let units = fk_units(tables);
    let mut out = UnenforcedKeys::default();
    for fk in target_fks.iter().filter(|fk| !dropped.contains(fk)) {
        match (
            units.contains(fk.unit()),
            units.contains(fk.referenced_unit()),
        ) {
            (true, true) => out.inside.push(fk.clone()),
            (true, false) => out.outward.push(fk.clone()),
            _ => {}
        }
    }
    out
}

/// The units foreign keys attach to: a partition's parent, or the table itself.
pub fn fk_units(tables: &[Table]) -> BTreeSet<QualName> {
    tables.iter().map(|t| t.unit().clone()).collect()
}

/// The roots of the partition trees the tables belong to, each once.
pub fn partition_roots(tables: &[Table]) -> Vec<QualName> {
    tables
        .iter()
        .filter_map(|t| t.partition_of.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Rows ANALYZE samples from a table at the default statistics target (300 x 100): it reads
/// this many rows whatever the table's size, so a small wide table costs as much to ANALYZE
/// as a large narrow one.
const ANALYZE_SAMPLE_ROWS: f64 = 30_000.0;

/// ANALYZE's work per sampled byte, in bytes of COPY: measured on the benchmark's tables
/// (jsonb, arrays, numeric, text), ANALYZE of a table it samples whole took 1.2-1.6 times
/// as long as loading it.
const ANALYZE_COST: f64 = 1.5;

/// What a chunk of `bytes` of `table` weighs when [`waves`] orders the work: its load plus,
/// when the job ANALYZEs, its share of the table's ANALYZE, which runs after the table's
/// last chunk on the same worker. Weighing it keeps a table whose ANALYZE is dear (few rows,
/// many or wide columns) from loading last and ANALYZEing alone while the other workers
/// idle.
pub fn schedule_weight(bytes: u64, table: &Table, analyze: bool) -> u64 {
    if !analyze {
        return bytes;
    }
    let sampled = (ANALYZE_SAMPLE_ROWS / table.est_rows.max(1) as f64).min(1.0);
    (bytes as f64 * (1.0 + ANALYZE_COST * sampled)).round() as u64
}

/// Groups work items into waves that run one after the other. With foreign keys enforced
/// during the load, a wave per FK level (parents before children). In replica mode no FK
/// trigger fires, so one wave holds everything: a level barrier would only leave workers
/// idle behind the level's largest table. Within a wave, largest first, so the slowest item
/// does not start last.
pub fn waves<T: Clone>(
    order: &FkOrder,
    replica: bool,
    items: &[T],
    table_of: impl Fn(&T) -> usize,
    size_of: impl Fn(&T) -> u64,
) -> Vec<Vec<T>> {
    let levels = if replica { 1 } else { order.level_count() };
    (0..levels)
        .map(|level| {
            let mut wave: Vec<T> = items
                .iter()
                .filter(|i| replica || order.levels[table_of(i)] == level)
                .cloned()
                .collect();
            wave.sort_by_key(|i| std::cmp::Reverse(size_of(i)));
            wave
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_analyze_samples_whole_weighs_more_than_its_bytes_and_a_large_one_barely_does() {
        let with_rows = |rows| Table {
            est_rows: rows,
            ..Table::for_tests("app", "t")
        };
        let small = with_rows(30_000);
        let large = with_rows(3_000_000);
        assert_eq!(schedule_weight(1000, &small, true), 2500);
        assert_eq!(schedule_weight(1000, &large, true), 1015);
        assert_eq!(schedule_weight(1000, &small, false), 1000);
        // An empty or never-analyzed table (no row estimate) is weighed as sampled whole.
        assert_eq!(schedule_weight(1000, &with_rows(-1), true), 2500);
    }

    #[test]
    fn enforced_keys_load_level_by_level_and_replica_mode_in_one_wave_largest_first() {
        let order = FkOrder {
            levels: vec![1, 0, 1],
            cyclic: vec![],
        };
        let items = [(0usize, 5u64), (1, 1), (2, 9)];
        let by_level = waves(&order, false, &items, |i| i.0, |i| i.1);
        assert_eq!(by_level, vec![vec![(1, 1)], vec![(2, 9), (0, 5)]]);
        let one = waves(&order, true, &items, |i| i.0, |i| i.1);
        assert_eq!(one, vec![vec![(2, 9), (0, 5), (1, 1)]]);
    }
}
