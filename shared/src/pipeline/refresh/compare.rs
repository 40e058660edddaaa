//! The refresh's comparison: every unit fingerprinted on both sides at once, a sample of
//! each table of many ranges first (a table where most of it differs is decided whole
//! without reading the rest), then the rest: the ranges of a table whose key allows it in
//! one scan per side (`pg::refresh::table_fingerprints_sql`), the others range by range.

use crate::error::Result;
use crate::model::catalog::Table;
use crate::model::chunk::{ChunkRange, Plan};
use crate::pg::sample::keys_within;
use crate::pg::{refresh as sql, slice};
use crate::pipeline::interrupt::Interrupt;
use crate::pipeline::workers::{run_pool, SyncWorker};
use crate::plan::narrow;
use crate::plan::refresh::{
    bounds_between, most_of_the_data, mostly_changed, sample, Compared, Unit,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Each table's row hash on the source (over what its export produces) and on the target.
pub(super) struct Hashes(Vec<(sql::RowHash, sql::RowHash)>);

impl Hashes {
    pub(super) fn new(plan: &Plan, targets: &[Option<Table>]) -> Hashes {
        let pairs = plan
            .catalog
            .tables
            .iter()
            .enumerate()
            .map(|(i, t)| sql::row_hashes(t, targets.get(i).and_then(Option::as_ref)));
        Hashes(pairs.collect())
    }
}

/// One comparison: a unit, or every range of a table in one scan per side.
enum Work {
    Unit(usize),
    /// The table's units in key order and the lower bounds of all but the first.
    Table(Vec<usize>, Vec<Vec<String>>),
}

/// Fingerprints one unit on both sides of a worker pair.
async fn compare_unit(
    w: &SyncWorker,
    plan: &Plan,
    hashes: &Hashes,
    units: &[Unit],
    i: usize,
) -> Result<Compared> {
    let u = &units[i];
    let t = &plan.catalog.tables[u.table];
    let cond = slice::range_condition(t.key.as_ref(), &u.range);
    let both = (&w.src, &w.tgt);
    let (s, d) =
        sql::range_fingerprints(both, t, &hashes.0[u.table], cond.as_deref(), &u.what(plan))
            .await?;
    Ok(Compared {
        unit: i,
        differs: s != d,
        source_rows: s.rows.max(0) as u64,
    })
}

/// Fingerprints every range of a table in one scan on each side of a worker pair.
async fn compare_table(
    w: &SyncWorker,
    plan: &Plan,
    hashes: &Hashes,
    units: &[Unit],
    (ids, thresholds): (&[usize], &[Vec<String>]),
) -> Result<Vec<Compared>> {
    let table = units[ids[0]].table;
    let t = &plan.catalog.tables[table];
    let what = format!("table {}", t.name);
    let both = (&w.src, &w.tgt);
    let Some((s, d)) =
        sql::table_fingerprints(both, t, &hashes.0[table], (thresholds, None), &what).await?
    else {
        // Only tables whose key allows one scan are handed here; range by range otherwise.
        let mut out = Vec::with_capacity(ids.len());
        for &i in ids {
            out.push(compare_unit(w, plan, hashes, units, i).await?);
        }
        return Ok(out);
    };
    Ok(ids
        .iter()
        .zip(s.iter().zip(&d))
        .map(|(&unit, (s, d))| Compared {
            unit,
            differs: s != d,
            source_rows: s.rows.max(0) as u64,
        })
        .collect())
}

async fn compare(
    w: SyncWorker,
    plan: Arc<Plan>,
    hashes: Arc<Hashes>,
    units: Arc<Vec<Unit>>,
    work: Work,
) -> (SyncWorker, Result<Vec<Compared>>) {
    let r = match &work {
        Work::Unit(i) => compare_unit(&w, &plan, &hashes, &units, *i)
            .await
            .map(|c| vec![c]),
        Work::Table(ids, th) => compare_table(&w, &plan, &hashes, &units, (ids, th)).await,
    };
    (w, r)
}

/// What replaces `unit`, a key range that differs: the runs of it that differ, compared on
/// both sides after cutting it at the source's keys ([`narrow::cut`]); the unit itself when
/// it is too small to cut or most of it differs ([`narrow::to_replace`]).
async fn narrow_unit(
    w: &SyncWorker,
    plan: &Plan,
    hashes: &Hashes,
    unit: Unit,
) -> Result<Vec<Unit>> {
    let t = &plan.catalog.tables[unit.table];
    let Some(key) = t
        .key
        .as_ref()
        .filter(|_| matches!(unit.range, ChunkRange::Key { .. }))
    else {
        return Ok(vec![unit]);
    };
    let cond = slice::range_condition(Some(key), &unit.range).unwrap_or_else(|| "true".into());
    let cuts = keys_within(&w.src, t, key, &cond, (narrow::PARTS, narrow::MIN_ROWS)).await?;
    let Some(runs) = narrow::cut(&unit.range, &cuts) else {
        return Ok(vec![unit]);
    };
    let (both, rows, what) = ((&w.src, &w.tgt), &hashes.0[unit.table], unit.what(plan));
    let scanned = sql::table_fingerprints(both, t, rows, (&cuts, Some(&cond)), &what).await?;
    let differs: Vec<bool> = match scanned {
        Some((s, d)) => s.iter().zip(&d).map(|(s, d)| s != d).collect(),
        None => {
            let mut out = Vec::with_capacity(runs.len());
            for r in &runs {
                let c = slice::range_condition(Some(key), r);
                let (s, d) = sql::range_fingerprints(both, t, rows, c.as_deref(), &what).await?;
                out.push(s != d);
            }
            out
        }
    };
    Ok(match narrow::to_replace(runs, &differs) {
        Some(runs) => runs
            .into_iter()
            .map(|range| Unit {
                table: unit.table,
                range,
            })
            .collect(),
        None => vec![unit],
    })
}

/// The lower bounds of a table's ranges after the first, when `ids` are contiguous key
/// ranges in key order.
fn thresholds(units: &[Unit], ids: &[usize]) -> Option<Vec<Vec<String>>> {
    bounds_between(ids.iter().map(|&i| &units[i].range))
}

/// What the comparing works with.
pub(super) struct Comparing<'a> {
    pub plan: &'a Arc<Plan>,
    pub hashes: Arc<Hashes>,
    pub units: &'a Arc<Vec<Unit>>,
    pub interrupt: &'a Interrupt,
}

impl Comparing<'_> {
    /// A sample of each table of many ranges first: one where most differ is replaced whole
    /// without comparing the rest (those tables are returned); then the rest, unless those
    /// tables are most of the data and `settle_early`: the refresh is a full sync then, and
    /// comparing the other tables would only delay it.
    pub(super) async fn compare_all(
        &self,
        workers: Vec<SyncWorker>,
        max_share: f64,
        settle_early: bool,
    ) -> Result<(Vec<SyncWorker>, Vec<Compared>, BTreeSet<usize>)> {
        let (first, rest) = sample(self.units);
        let first = first.into_iter().map(Work::Unit).collect();
        let (workers, mut found) = self.run(workers, first).await?;
        let early = mostly_changed(self.units, &found, max_share);
        if settle_early && most_of_the_data(self.plan, early.iter().copied()) {
            return Ok((workers, found, early));
        }
        let rest: Vec<usize> = rest
            .into_iter()
            .filter(|&i| !early.contains(&self.units[i].table))
            .collect();
        let (workers, more) = self.run(workers, self.works(&rest)).await?;
        let done: BTreeSet<usize> = found.iter().map(|c| c.unit).collect();
        // A table's scan answers for its sampled ranges too: those are counted once.
        found.extend(more.into_iter().filter(|c| !done.contains(&c.unit)));
        Ok((workers, found, early))
    }

    /// The comparisons of the units `rest`: one scan per table where its key allows and it
    /// has more than one range, else one per unit.
    fn works(&self, rest: &[usize]) -> Vec<Work> {
        let mut all: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, u) in self.units.iter().enumerate() {
            all.entry(u.table).or_default().push(i);
        }
        let mut mine: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &i in rest {
            mine.entry(self.units[i].table).or_default().push(i);
        }
        let mut out = Vec::new();
        for (table, mine) in mine {
            let all = all.remove(&table).unwrap_or_default();
            let t = &self.plan.catalog.tables[table];
            match thresholds(self.units, &all).filter(|th| sql::one_scan(t, th)) {
                Some(th) => out.push(Work::Table(all, th)),
                None => out.extend(mine.into_iter().map(Work::Unit)),
            }
        }
        out
    }

    /// Narrows the key ranges of `todo` that differ to the runs of them that do
    /// ([`narrow_unit`]), on the workers; whole tables stay whole.
    pub(super) async fn narrow(
        &self,
        workers: Vec<SyncWorker>,
        todo: Vec<Unit>,
    ) -> Result<(Vec<SyncWorker>, Vec<Unit>)> {
        let (plan, hashes) = (self.plan.clone(), self.hashes.clone());
        let (workers, found) = run_pool(workers, todo, self.interrupt, move |w, unit| {
            let (plan, hashes) = (plan.clone(), hashes.clone());
            async move {
                let r = narrow_unit(&w, &plan, &hashes, unit).await;
                (w, r)
            }
        })
        .await?;
        Ok((workers, found.into_iter().flatten().collect()))
    }

    /// Compares `works` on the workers.
    async fn run(
        &self,
        workers: Vec<SyncWorker>,
        works: Vec<Work>,
    ) -> Result<(Vec<SyncWorker>, Vec<Compared>)> {
        let (plan, units) = (self.plan.clone(), self.units.clone());
        let hashes = self.hashes.clone();
        let (workers, found) = run_pool(workers, works, self.interrupt, move |w, work| {
            compare(w, plan.clone(), hashes.clone(), units.clone(), work)
        })
        .await?;
        Ok((workers, found.into_iter().flatten().collect()))
    }
}
