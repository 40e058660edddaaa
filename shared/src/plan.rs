//! The planner: pure functions from catalog data to a plan. Foreign-key levels (parents
//! before children, cycles and self-references detected), chunk splitting by bytes into
//! keyset ranges or CTID ranges, and the SQL text of each chunk's slice. No I/O here, so all
//! of it is tested without a database.

use crate::catalog::{Catalog, ForeignKey, Key, KeyKind, Table};
use crate::ident::{column_list, quote_ident, quote_literal, QualName};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Default chunk size: about 256 MB of table on disk per chunk.
pub const DEFAULT_CHUNK_BYTES: u64 = 256 * 1024 * 1024;

/// Which rows of a table a chunk covers. Bounds are inclusive below, exclusive above; a
/// missing bound is open, so the first and last chunks catch rows outside the sampled range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ChunkRange {
    /// The whole table.
    Whole,
    /// Key values in `[lower, upper)`, compared as a row (text parts in "C" collation).
    Key {
        /// Inclusive lower bound, one text value per key column.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lower: Option<Vec<String>>,
        /// Exclusive upper bound.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        upper: Option<Vec<String>>,
    },
    /// Heap pages in `[lower, upper)`, for tables without a usable key.
    Ctid {
        /// First page.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lower: Option<u64>,
        /// Page after the last.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        upper: Option<u64>,
    },
}

/// One unit of export/import work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// Index of the table in the plan.
    pub table: usize,
    /// Position within the table, from 0.
    pub seq: usize,
    /// Rows it covers.
    pub range: ChunkRange,
}

impl Chunk {
    /// Stable id, also the ledger's part id: `t0003.c00012`.
    pub fn id(&self) -> String {
        format!("t{:04}.c{:05}", self.table, self.seq)
    }
}

/// Foreign-key ordering of the tables in scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FkOrder {
    /// Level of each table (by index): a table's in-scope parents are on lower levels, except
    /// within a cycle, where all members share a level.
    pub levels: Vec<usize>,
    /// Foreign keys inside a cycle or self-reference (between in-scope tables): dropped
    /// before the load and re-added after.
    pub cyclic: Vec<ForeignKey>,
}

impl FkOrder {
    /// Number of levels.
    pub fn level_count(&self) -> usize {
        self.levels.iter().map(|l| l + 1).max().unwrap_or(0)
    }
}

/// The unit a foreign key is attached to: a partition's parent, or the table itself.
fn fk_unit(t: &Table) -> &QualName {
    t.partition_of.as_ref().unwrap_or(&t.name)
}

/// Computes foreign-key levels with Tarjan's strongly connected components over the units
/// (tables, or partitioned parents standing for their partitions).
pub fn fk_order(tables: &[Table], fks: &[ForeignKey]) -> FkOrder {
    let units: Vec<QualName> = tables
        .iter()
        .map(|t| fk_unit(t).clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let idx: BTreeMap<&QualName, usize> = units.iter().enumerate().map(|(i, u)| (u, i)).collect();
    // Edges child -> parent, only between in-scope units.
    let mut parents: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); units.len()];
    let mut edges: Vec<(usize, usize, &ForeignKey)> = Vec::new();
    for fk in fks {
        if let (Some(&c), Some(&p)) = (idx.get(&fk.table), idx.get(&fk.references)) {
            parents[c].insert(p);
            edges.push((c, p, fk));
        }
    }
    let comp = tarjan(&parents);
    let ncomp = comp.iter().copied().max().map_or(0, |m| m + 1);
    let mut comp_size = vec![0usize; ncomp];
    for &c in &comp {
        comp_size[c] += 1;
    }
    let mut cyclic = Vec::new();
    let mut comp_parents: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); ncomp];
    for &(c, p, fk) in &edges {
        if comp[c] == comp[p] {
            // Self-reference or an edge inside a cycle.
            cyclic.push(fk.clone());
        } else {
            comp_parents[comp[c]].insert(comp[p]);
        }
    }
    // Longest path to a root of the condensation (a DAG): memoised depth-first search.
    let mut level: Vec<Option<usize>> = vec![None; ncomp];
    fn depth(c: usize, ps: &[BTreeSet<usize>], memo: &mut [Option<usize>]) -> usize {
        if let Some(l) = memo[c] {
            return l;
        }
        let l = ps[c]
            .iter()
            .map(|&p| depth(p, ps, memo) + 1)
            .max()
            .unwrap_or(0);
        memo[c] = Some(l);
        l
    }
    for c in 0..ncomp {
        depth(c, &comp_parents, &mut level);
    }
    let levels = tables
        .iter()
        .map(|t| level[comp[idx[fk_unit(t)]]].unwrap_or(0))
        .collect();
    cyclic.sort_by(|a, b| (&a.table, &a.name).cmp(&(&b.table, &b.name)));
    FkOrder { levels, cyclic }
}

/// Tarjan's algorithm, iterative (deep FK chains must not overflow the stack). Returns the
/// component id of each node.
fn tarjan(succ: &[BTreeSet<usize>]) -> Vec<usize> {
    let n = succ.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut comp = vec![usize::MAX; n];
    let mut next_index = 0;
    let mut next_comp = 0;
    let lists: Vec<Vec<usize>> = succ.iter().map(|s| s.iter().copied().collect()).collect();
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut call: Vec<(usize, usize)> = vec![(root, 0)];
        index[root] = next_index;
        low[root] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut i)) = call.last_mut() {
            if *i < lists[v].len() {
                let w = lists[v][*i];
                *i += 1;
                if index[w] == usize::MAX {
                    index[w] = next_index;
                    low[w] = next_index;
                    next_index += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    call.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                call.pop();
                if let Some(&(u, _)) = call.last() {
                    low[u] = low[u].min(low[v]);
                }
                if low[v] == index[v] {
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        comp[w] = next_comp;
                        if w == v {
                            break;
                        }
                    }
                    next_comp += 1;
                }
            }
        }
    }
    comp
}

/// How many chunks a table of `bytes` needs at `chunk_bytes` each (at least one).
pub fn chunk_count(bytes: i64, chunk_bytes: u64) -> usize {
    let bytes = bytes.max(0) as u64;
    let n = bytes.div_ceil(chunk_bytes.max(1));
    n.clamp(1, 100_000) as usize
}

/// Keeps `want` evenly spaced values of a sorted sample, dropping repeats.
pub fn pick_quantiles(sorted: Vec<Vec<String>>, want: usize) -> Vec<Vec<String>> {
    if sorted.len() <= want {
        let mut v = sorted;
        v.dedup();
        return v;
    }
    let step = sorted.len() as f64 / (want as f64 + 1.0);
    let mut out: Vec<Vec<String>> = (1..=want)
        .map(|i| sorted[((i as f64 * step) as usize).min(sorted.len() - 1)].clone())
        .collect();
    out.dedup();
    out
}

/// Key ranges from sorted interior boundaries: `(-inf, b0), [b0, b1), ..., [bn, +inf)`.
pub fn key_ranges(bounds: &[Vec<String>]) -> Vec<ChunkRange> {
    if bounds.is_empty() {
        return vec![ChunkRange::Whole];
    }
    let mut out = Vec::with_capacity(bounds.len() + 1);
    let mut lower: Option<Vec<String>> = None;
    for b in bounds {
        out.push(ChunkRange::Key {
            lower: lower.take(),
            upper: Some(b.clone()),
        });
        lower = Some(b.clone());
    }
    out.push(ChunkRange::Key { lower, upper: None });
    out
}

/// CTID ranges splitting `pages` heap pages into `n` parts; the last is open-ended so pages
/// added after the estimate are still covered.
pub fn ctid_ranges(pages: u64, n: usize) -> Vec<ChunkRange> {
    if n <= 1 || pages < 2 {
        return vec![ChunkRange::Whole];
    }
    let n = (n as u64).min(pages);
    let per = pages.div_ceil(n);
    let mut out = Vec::new();
    let mut start = 0;
    while start < pages {
        let end = start + per;
        out.push(ChunkRange::Ctid {
            lower: (start > 0).then_some(start),
            upper: (end < pages).then_some(end),
        });
        start = end;
    }
    out
}

/// `ORDER BY` text of a key, text parts in "C" collation; columns qualified with `alias`
/// when given (so they cannot be confused with output columns of the same name).
pub fn key_order_by(key: &Key, alias: Option<&str>) -> String {
    let col = |name: &str| match alias {
        Some(a) => format!("{}.{}", quote_ident(a), quote_ident(name)),
        None => quote_ident(name),
    };
    key.columns
        .iter()
        .map(|c| key_expr(&col(&c.name), c.kind))
        .collect::<Vec<_>>()
        .join(", ")
}

fn key_expr(expr: &str, kind: KeyKind) -> String {
    if kind == KeyKind::Text {
        format!("{expr} COLLATE \"C\"")
    } else {
        expr.to_string()
    }
}

fn bound_row(key: &Key, values: &[String]) -> String {
    let parts: Vec<String> = key
        .columns
        .iter()
        .zip(values)
        .map(|(c, v)| key_expr(&format!("{}::{}", quote_literal(v), c.type_name), c.kind))
        .collect();
    format!("ROW({})", parts.join(", "))
}

/// The key as a row expression for comparisons.
fn key_row(key: &Key) -> String {
    format!(
        "ROW({})",
        key.columns
            .iter()
            .map(|c| key_expr(&quote_ident(&c.name), c.kind))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The `WHERE` condition of a range, or None for the whole table.
pub fn range_condition(key: Option<&Key>, range: &ChunkRange) -> Option<String> {
    match range {
        ChunkRange::Whole => None,
        ChunkRange::Key { lower, upper } => {
            let key = key?;
            let lhs = key_row(key);
            let mut conds = Vec::new();
            if let Some(l) = lower {
                conds.push(format!("{lhs} >= {}", bound_row(key, l)));
            }
            if let Some(u) = upper {
                conds.push(format!("{lhs} < {}", bound_row(key, u)));
            }
            (!conds.is_empty()).then(|| conds.join(" AND "))
        }
        ChunkRange::Ctid { lower, upper } => {
            let mut conds = Vec::new();
            if let Some(l) = lower {
                conds.push(format!("ctid >= '({l},0)'::tid"));
            }
            if let Some(u) = upper {
                conds.push(format!("ctid < '({u},0)'::tid"));
            }
            (!conds.is_empty()).then(|| conds.join(" AND "))
        }
    }
}

/// The `COPY ... TO STDOUT` statement exporting a chunk of a table.
pub fn copy_out_sql(table: &Table, range: &ChunkRange) -> String {
    let cols = column_list(table.copy_columns().map(|c| c.name.as_str()));
    let mut sql = format!("COPY (SELECT {cols} FROM ONLY {}", table.name.sql());
    if let Some(cond) = range_condition(table.key.as_ref(), range) {
        sql.push_str(" WHERE ");
        sql.push_str(&cond);
    }
    sql.push_str(") TO STDOUT");
    sql
}

/// Where a chunk export that stopped for its time budget continues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Resume {
    /// After this key (exclusive): the last key exported so far.
    Key {
        /// One text value per key column.
        after: Vec<String>,
    },
    /// From this heap page on (inclusive), for tables without a key.
    Ctid {
        /// First page not exported yet.
        from_page: u64,
    },
}

fn and_all(conds: impl IntoIterator<Item = Option<String>>) -> String {
    let c: Vec<String> = conds.into_iter().flatten().collect();
    if c.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", c.join(" AND "))
    }
}

/// The query finding the last key of the next page of `page_rows` rows of a keyed table's
/// chunk, after `after`; no row means the rest of the chunk fits in one page.
pub fn page_end_sql(
    table: &Table,
    key: &Key,
    range: &ChunkRange,
    after: Option<&[String]>,
    page_rows: u64,
) -> String {
    let sel = key
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{}::text AS dbsync_k{i}", quote_ident(&c.name)))
        .collect::<Vec<_>>()
        .join(", ");
    let filter = and_all([
        range_condition(Some(key), range),
        after.map(|a| format!("{} > {}", key_row(key), bound_row(key, a))),
    ]);
    format!(
        "SELECT {sel} FROM ONLY {} AS dbsync_t{filter} ORDER BY {} OFFSET {} LIMIT 1",
        table.name.sql(),
        key_order_by(key, Some("dbsync_t")),
        page_rows.max(1) - 1
    )
}

/// `COPY` of one page of a keyed table's chunk: keys in `(after, upto]`, either end open.
pub fn key_page_copy_sql(
    table: &Table,
    key: &Key,
    range: &ChunkRange,
    after: Option<&[String]>,
    upto: Option<&[String]>,
) -> String {
    let cols = column_list(table.copy_columns().map(|c| c.name.as_str()));
    let filter = and_all([
        range_condition(Some(key), range),
        after.map(|a| format!("{} > {}", key_row(key), bound_row(key, a))),
        upto.map(|u| format!("{} <= {}", key_row(key), bound_row(key, u))),
    ]);
    format!(
        "COPY (SELECT {cols} FROM ONLY {}{filter}) TO STDOUT",
        table.name.sql()
    )
}

/// `COPY` of heap pages `[from, to)` of a table (`to` None: to the end).
pub fn ctid_page_copy_sql(table: &Table, from: u64, to: Option<u64>) -> String {
    let range = ChunkRange::Ctid {
        lower: (from > 0).then_some(from),
        upper: to,
    };
    copy_out_sql(table, &range)
}

/// The `COPY ... FROM STDIN` statement loading a chunk: explicit columns, because the
/// target's column order may differ from the source's.
pub fn copy_in_sql(table: &Table) -> String {
    format!(
        "COPY {} ({}) FROM STDIN",
        table.name.sql(),
        column_list(table.copy_columns().map(|c| c.name.as_str()))
    )
}

/// The whole plan of a job: tables, their levels and chunks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// The catalog it was made from (tables in scope, FKs, sequences).
    pub catalog: Catalog,
    /// FK levels and cyclic keys.
    pub order: FkOrder,
    /// Every chunk, grouped by table, in table order.
    pub chunks: Vec<Chunk>,
    /// The chunk size used.
    pub chunk_bytes: u64,
}

impl Plan {
    /// Chunk indexes of one FK level.
    pub fn chunks_of_level(&self, level: usize) -> Vec<&Chunk> {
        self.chunks
            .iter()
            .filter(|c| self.order.levels[c.table] == level)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Column, KeyColumn};

    fn table(schema: &str, name: &str) -> Table {
        Table {
            name: QualName::new(schema, name),
            partition_of: None,
            columns: vec![Column {
                name: "id".into(),
                type_name: "bigint".into(),
                not_null: true,
                has_default: false,
                generated: false,
            }],
            key: None,
            est_rows: 0,
            bytes: 0,
            pages: 0,
            rls: false,
            can_read: true,
            can_load: true,
            user_triggers: vec![],
            secondary_indexes: vec![],
        }
    }

    fn fk(child: &str, parent: &str) -> ForeignKey {
        ForeignKey {
            name: format!("{child}_{parent}_fk"),
            table: QualName::new("s", child),
            references: QualName::new("s", parent),
            definition: String::new(),
        }
    }

    #[test]
    fn parents_come_before_children_in_a_chain() {
        let t = vec![table("s", "c"), table("s", "b"), table("s", "a")];
        let o = fk_order(&t, &[fk("c", "b"), fk("b", "a")]);
        assert_eq!(o.levels, vec![2, 1, 0]);
        assert!(o.cyclic.is_empty());
        assert_eq!(o.level_count(), 3);
    }

    #[test]
    fn a_self_reference_is_cyclic_but_does_not_raise_the_level() {
        let t = vec![table("s", "orders"), table("s", "customers")];
        let o = fk_order(&t, &[fk("orders", "orders"), fk("orders", "customers")]);
        assert_eq!(o.levels, vec![1, 0]);
        assert_eq!(o.cyclic.len(), 1);
        assert_eq!(o.cyclic[0].name, "orders_orders_fk");
    }

    #[test]
    fn a_two_table_cycle_shares_a_level_and_both_keys_are_dropped() {
        let t = vec![table("s", "a"), table("s", "b"), table("s", "c")];
        let o = fk_order(&t, &[fk("a", "b"), fk("b", "a"), fk("c", "a")]);
        assert_eq!(o.levels[0], o.levels[1]);
        assert_eq!(o.levels[2], o.levels[0] + 1);
        assert_eq!(o.cyclic.len(), 2);
    }

    #[test]
    fn references_to_tables_outside_the_scope_are_ignored_for_ordering() {
        let t = vec![table("s", "child")];
        let o = fk_order(&t, &[fk("child", "elsewhere")]);
        assert_eq!(o.levels, vec![0]);
    }

    #[test]
    fn partitions_inherit_the_level_of_their_parent() {
        let mut p1 = table("s", "m_2024");
        p1.partition_of = Some(QualName::new("s", "m"));
        let mut p2 = table("s", "m_default");
        p2.partition_of = Some(QualName::new("s", "m"));
        let t = vec![p1, p2, table("s", "sensor")];
        let o = fk_order(&t, &[fk("m", "sensor")]);
        assert_eq!(o.levels, vec![1, 1, 0]);
    }

    #[test]
    fn a_deep_chain_does_not_overflow_the_stack() {
        let n = 20_000;
        let t: Vec<Table> = (0..n).map(|i| table("s", &format!("t{i:05}"))).collect();
        let fks: Vec<ForeignKey> = (1..n)
            .map(|i| fk(&format!("t{i:05}"), &format!("t{:05}", i - 1)))
            .collect();
        let o = fk_order(&t, &fks);
        assert_eq!(o.levels[n - 1], n - 1);
    }

    #[test]
    fn chunk_count_rounds_up_and_is_at_least_one() {
        assert_eq!(chunk_count(0, 100), 1);
        assert_eq!(chunk_count(100, 100), 1);
        assert_eq!(chunk_count(101, 100), 2);
        assert_eq!(chunk_count(-1, 100), 1);
    }

    #[test]
    fn key_ranges_are_open_at_both_ends_and_contiguous() {
        let b = vec![vec!["10".to_string()], vec!["20".to_string()]];
        let r = key_ranges(&b);
        assert_eq!(r.len(), 3);
        assert_eq!(
            r[0],
            ChunkRange::Key {
                lower: None,
                upper: Some(vec!["10".into()])
            }
        );
        assert_eq!(
            r[2],
            ChunkRange::Key {
                lower: Some(vec!["20".into()]),
                upper: None
            }
        );
        assert_eq!(key_ranges(&[]), vec![ChunkRange::Whole]);
    }

    #[test]
    fn quantiles_drop_repeated_boundaries() {
        let s: Vec<Vec<String>> = ["a", "a", "a", "a", "b", "b", "c", "c"]
            .iter()
            .map(|v| vec![v.to_string()])
            .collect();
        let q = pick_quantiles(s, 3);
        let mut d = q.clone();
        d.dedup();
        assert_eq!(q, d);
        assert!(q.len() <= 3);
    }

    #[test]
    fn ctid_ranges_cover_every_page_and_the_last_is_open() {
        let r = ctid_ranges(10, 3);
        assert_eq!(
            r.first(),
            Some(&ChunkRange::Ctid {
                lower: None,
                upper: Some(4)
            })
        );
        assert_eq!(
            r.last(),
            Some(&ChunkRange::Ctid {
                lower: Some(8),
                upper: None
            })
        );
        assert_eq!(ctid_ranges(1, 5), vec![ChunkRange::Whole]);
        assert_eq!(ctid_ranges(100, 1), vec![ChunkRange::Whole]);
    }

    #[test]
    fn text_keys_compare_in_c_collation_with_quoted_literals() {
        let key = Key {
            index: "pk".into(),
            columns: vec![
                KeyColumn {
                    name: "Region".into(),
                    type_name: "text".into(),
                    kind: KeyKind::Text,
                },
                KeyColumn {
                    name: "n".into(),
                    type_name: "integer".into(),
                    kind: KeyKind::Integer,
                },
            ],
        };
        let c = range_condition(
            Some(&key),
            &ChunkRange::Key {
                lower: Some(vec!["O'Brien".into(), "3".into()]),
                upper: None,
            },
        )
        .expect("condition");
        assert_eq!(
            c,
            "ROW(\"Region\" COLLATE \"C\", \"n\") >= ROW('O''Brien'::text COLLATE \"C\", '3'::integer)"
        );
    }

    #[test]
    fn pages_of_a_chunk_continue_strictly_after_the_last_key_done() {
        let mut t = table("app", "t");
        let key = Key {
            index: "pk".into(),
            columns: vec![KeyColumn {
                name: "id".into(),
                type_name: "bigint".into(),
                kind: KeyKind::Integer,
            }],
        };
        t.key = Some(key.clone());
        let range = ChunkRange::Key {
            lower: Some(vec!["10".into()]),
            upper: Some(vec!["90".into()]),
        };
        let after = vec!["41".to_string()];
        assert_eq!(
            page_end_sql(&t, &key, &range, Some(&after), 100),
            "SELECT \"id\"::text AS dbsync_k0 FROM ONLY \"app\".\"t\" AS dbsync_t WHERE ROW(\"id\") >= ROW('10'::bigint) AND ROW(\"id\") < ROW('90'::bigint) AND ROW(\"id\") > ROW('41'::bigint) ORDER BY \"dbsync_t\".\"id\" OFFSET 99 LIMIT 1"
        );
        let upto = vec!["57".to_string()];
        assert_eq!(
            key_page_copy_sql(&t, &key, &ChunkRange::Whole, Some(&after), Some(&upto)),
            "COPY (SELECT \"id\" FROM ONLY \"app\".\"t\" WHERE ROW(\"id\") > ROW('41'::bigint) AND ROW(\"id\") <= ROW('57'::bigint)) TO STDOUT"
        );
        assert_eq!(
            ctid_page_copy_sql(&t, 8, None),
            "COPY (SELECT \"id\" FROM ONLY \"app\".\"t\" WHERE ctid >= '(8,0)'::tid) TO STDOUT"
        );
    }

    #[test]
    fn copy_statements_list_columns_and_skip_generated_ones() {
        let mut t = table("app", "Order Items");
        t.columns.push(Column {
            name: "total_cents".into(),
            type_name: "bigint".into(),
            not_null: false,
            has_default: false,
            generated: true,
        });
        assert_eq!(
            copy_out_sql(&t, &ChunkRange::Ctid { lower: Some(4), upper: None }),
            "COPY (SELECT \"id\" FROM ONLY \"app\".\"Order Items\" WHERE ctid >= '(4,0)'::tid) TO STDOUT"
        );
        assert_eq!(
            copy_in_sql(&t),
            "COPY \"app\".\"Order Items\" (\"id\") FROM STDIN"
        );
    }
}
