//! The refresh's comparison: every unit fingerprinted on both sides at once, a sample of
//! each table of many ranges first (a table where most of it differs is decided whole
//! without reading the rest; where the table's scan answers for the whole ranges later,
//! only their heads), then the rest: the ranges of a table whose key allows it in one scan
//! per side (`pg::refresh::table_fingerprints_sql`), the others range by range.

use crate::error::Result;
use crate::model::catalog::Table;
use crate::model::chunk::{ChunkRange, Plan};
use crate::model::verify::Fingerprint;
use crate::pg::sample::{keys_within, Cut};
use crate::pg::{refresh as sql, slice};
use crate::pipeline::interrupt::Interrupt;
use crate::pipeline::workers::{run_pool, SyncWorker};
use crate::plan::narrow;
use crate::plan::refresh::{
    bounds_between, most_of_the_data, mostly_changed, sample, spanning, Compared, RefreshReport,
    Unit, HEAD_ROWS,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Each table's row hash on the source (over what its export produces) and on the target.
pub(super) struct Hashes(Vec<sql::RowHashes>);

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

    /// Table `table` of `plan` compared on the two sides of `w`, called `what`.
    fn on<'a>(
        &'a self,
        w: &'a SyncWorker,
        plan: &'a Plan,
        table: usize,
        what: &'a str,
    ) -> sql::OnBoth<'a> {
        sql::OnBoth {
            sides: w.sides(),
            table: &plan.catalog.tables[table],
            hashes: &self.0[table],
            what,
        }
    }
}

/// What the comparisons of a plan read: the plan, each table's row hashes, its units.
#[derive(Clone, Copy)]
struct Basis<'a> {
    plan: &'a Plan,
    hashes: &'a Hashes,
    units: &'a [Unit],
}

/// One comparison: a unit, the head of one, or every range of a table in one scan per side.
enum Work {
    Unit(usize),
    /// The unit's first [`HEAD_ROWS`] rows in key order: whether it surely differs.
    Head(usize),
    /// The table's units, contiguous key ranges in key order ([`range_pairs`]).
    Table(Vec<usize>),
}

/// Fingerprints one unit on both sides of a worker pair, or only its head (`head`): its
/// first [`HEAD_ROWS`] rows in key order, where heads that differ tell the units do and
/// heads alike tell nothing ([`sql::head_fingerprint_sql`]).
async fn compare_unit(w: &SyncWorker, b: Basis<'_>, i: usize, head: bool) -> Result<Compared> {
    let u = &b.units[i];
    let what = u.what(b.plan);
    let c = b.hashes.on(w, b.plan, u.table, &what);
    let cond = slice::range_condition(c.table.key.as_ref(), &u.range);
    let found = match head {
        true => sql::head_fingerprints(c, cond.as_deref(), HEAD_ROWS).await?,
        false => Some(sql::range_fingerprints(c, cond.as_deref()).await?),
    };
    let (differs, rows) = found.map_or((false, 0), |(s, d)| (s != d, s.rows.max(0) as u64));
    Ok(Compared {
        unit: i,
        differs,
        source_rows: if head { 0 } else { rows },
    })
}

/// Both sides' fingerprints of `ranges`, key ranges of the table `c` compares: one scan per
/// side over all of them where they are contiguous and the key allows
/// ([`sql::table_fingerprints`], the scan kept to the rows they span), else range by range.
/// The local refresh's tables, the narrowing's runs and the service's spans all compare so.
pub(super) async fn range_pairs(
    c: sql::OnBoth<'_>,
    ranges: &[ChunkRange],
) -> Result<Vec<(Fingerprint, Fingerprint)>> {
    let key = c.table.key.as_ref();
    if let Some(bounds) = bounds_between(ranges) {
        let cond = slice::range_condition(key, &spanning(ranges));
        if let Some((s, d)) = sql::table_fingerprints(c, &bounds, cond.as_deref()).await? {
            return Ok(s.into_iter().zip(d).collect());
        }
    }
    let mut out = Vec::with_capacity(ranges.len());
    for r in ranges {
        let cond = slice::range_condition(key, r);
        out.push(sql::range_fingerprints(c, cond.as_deref()).await?);
    }
    Ok(out)
}

/// Fingerprints every range of a table in one scan on each side of a worker pair.
async fn compare_table(w: &SyncWorker, b: Basis<'_>, ids: &[usize]) -> Result<Vec<Compared>> {
    let table = b.units[ids[0]].table;
    let what = format!("table {}", b.plan.catalog.tables[table].name);
    let ranges: Vec<ChunkRange> = ids.iter().map(|&i| b.units[i].range.clone()).collect();
    let pairs = range_pairs(b.hashes.on(w, b.plan, table, &what), &ranges).await?;
    Ok(ids
        .iter()
        .zip(pairs)
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
    let b = Basis {
        plan: &plan,
        hashes: &hashes,
        units: &units,
    };
    let r = match &work {
        Work::Unit(i) | Work::Head(i) => {
            let head = matches!(work, Work::Head(_));
            compare_unit(&w, b, *i, head).await.map(|c| vec![c])
        }
        Work::Table(ids) => compare_table(&w, b, ids).await,
    };
    (w, r)
}

/// What replaces `unit`, a key range that differs: [`narrow_range`] on a worker pair (whole
/// tables stay whole), and the source rows of its runs found alike.
async fn narrow_unit(
    w: &SyncWorker,
    plan: &Plan,
    hashes: &Hashes,
    unit: Unit,
) -> Result<(Vec<Unit>, u64)> {
    let what = unit.what(plan);
    let narrowed = narrow_range(hashes.on(w, plan, unit.table, &what), &unit.range).await?;
    let units = narrowed.runs.into_iter().map(|range| Unit {
        table: unit.table,
        range,
    });
    Ok((units.collect(), narrowed.rows_alike))
}

/// A differing range, narrowed.
pub(super) struct Narrowed {
    /// The runs of it to replace (the range itself when it was not narrowed).
    pub runs: Vec<ChunkRange>,
    /// Source rows in the runs left alone, found alike.
    pub rows_alike: u64,
}

/// What replaces `range`, a differing key range of the table `c` compares: the runs of it
/// that differ, compared on both sides after cutting it at the source's keys
/// ([`narrow::cut`]); the range itself when it is too small to cut or most of it differs
/// ([`narrow::to_replace`]). The local refresh's units and the service's spans narrow so.
pub(super) async fn narrow_range(c: sql::OnBoth<'_>, range: &ChunkRange) -> Result<Narrowed> {
    let whole = || Narrowed {
        runs: vec![range.clone()],
        rows_alike: 0,
    };
    let (t, src) = (c.table, c.sides.source);
    let Some(key) = t
        .key
        .as_ref()
        .filter(|_| matches!(range, ChunkRange::Key { .. }))
    else {
        return Ok(whole());
    };
    let cond = slice::range_condition(Some(key), range).unwrap_or_else(|| "true".into());
    let cut = Cut {
        parts: narrow::PARTS,
        min_rows: narrow::MIN_ROWS,
    };
    let cuts = keys_within(src, t, key, &cond, cut).await?;
    let Some(runs) = narrow::cut(range, &cuts) else {
        return Ok(whole());
    };
    let pairs = range_pairs(c, &runs).await?;
    let differs: Vec<bool> = pairs.iter().map(|(s, d)| s != d).collect();
    let Some(runs) = narrow::to_replace(runs, &differs) else {
        return Ok(whole());
    };
    let alike = pairs.iter().filter(|(s, d)| s == d);
    Ok(Narrowed {
        runs,
        rows_alike: alike.map(|(s, _)| s.rows.max(0) as u64).sum(),
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
        let scanned = self.scanned();
        let (first, rest) = sample(self.units);
        // Where the table's scan answers for the sampled ranges later, their heads do.
        let heads: BTreeSet<usize> = first
            .iter()
            .copied()
            .filter(|&i| scanned.contains_key(&self.units[i].table))
            .collect();
        let first = first
            .into_iter()
            .map(|i| match heads.contains(&i) {
                true => Work::Head(i),
                false => Work::Unit(i),
            })
            .collect();
        let (workers, mut found) = self.run(workers, first).await?;
        let early = mostly_changed(self.units, &found, max_share);
        if settle_early && most_of_the_data(self.plan, early.iter().copied()) {
            return Ok((workers, found, early));
        }
        // A head is no answer for its range where the table is compared further.
        found.retain(|c| !heads.contains(&c.unit) || early.contains(&self.units[c.unit].table));
        let rest: Vec<usize> = rest
            .into_iter()
            .filter(|&i| !early.contains(&self.units[i].table))
            .collect();
        let (workers, more) = self.run(workers, self.works(&rest, scanned)).await?;
        let done: BTreeSet<usize> = found.iter().map(|c| c.unit).collect();
        // A table's scan answers for its sampled ranges too: those are counted once.
        found.extend(more.into_iter().filter(|c| !done.contains(&c.unit)));
        Ok((workers, found, early))
    }

    /// The tables compared in one scan per side (their key allows and they have more than
    /// one range), each with all its units.
    fn scanned(&self) -> BTreeMap<usize, Vec<usize>> {
        let mut all: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, u) in self.units.iter().enumerate() {
            all.entry(u.table).or_default().push(i);
        }
        all.retain(|&table, ids| {
            let t = &self.plan.catalog.tables[table];
            thresholds(self.units, ids).is_some_and(|th| sql::one_scan(t, &th))
        });
        all
    }

    /// The comparisons of the units `rest`: one scan per table of `scanned` (all its units),
    /// else one per unit.
    fn works(&self, rest: &[usize], mut scanned: BTreeMap<usize, Vec<usize>>) -> Vec<Work> {
        let mut mine: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &i in rest {
            mine.entry(self.units[i].table).or_default().push(i);
        }
        let mut out = Vec::new();
        for (table, mine) in mine {
            match scanned.remove(&table) {
                Some(all) => out.push(Work::Table(all)),
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
        report: &mut RefreshReport,
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
        let mut todo = Vec::new();
        for (units, rows_alike) in found {
            if let Some(u) = units.first() {
                let table = self.plan.catalog.tables[u.table].name.to_string();
                report.narrowed(&table, rows_alike);
            }
            todo.extend(units);
        }
        Ok((workers, todo))
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
