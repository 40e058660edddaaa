//! Foreign-key order: levels of the tables in scope (parents before children) by Tarjan's
//! strongly connected components, with the keys inside cycles and self-references listed as
//! cyclic. Pure.

use crate::model::catalog::{ForeignKey, Table};
use crate::model::chunk::FkOrder;
use crate::model::ident::QualName;
use std::collections::{BTreeMap, BTreeSet};

/// Computes foreign-key levels with Tarjan's strongly connected components over the units
/// (tables, or partitioned parents standing for their partitions).
pub fn fk_order(tables: &[Table], fks: &[ForeignKey]) -> FkOrder {
    let units: Vec<QualName> = tables
        .iter()
        .map(|t| t.unit().clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let idx: BTreeMap<&QualName, usize> = units.iter().enumerate().map(|(i, u)| (u, i)).collect();
    // Edges child -> parent, only between in-scope units.
    let mut parents: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); units.len()];
    let mut edges: Vec<(usize, usize, &ForeignKey)> = Vec::new();
    for fk in fks {
        if let (Some(&c), Some(&p)) = (idx.get(fk.unit()), idx.get(fk.referenced_unit())) {
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
        .map(|t| level[comp[idx[t.unit()]]].unwrap_or(0))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn table(schema: &str, name: &str) -> Table {
        Table::for_tests(schema, name)
    }

    fn fk(child: &str, parent: &str) -> ForeignKey {
        ForeignKey {
            name: format!("{child}_{parent}_fk"),
            table: QualName::new("s", child),
            references: QualName::new("s", parent),
            definition: String::new(),
            table_unit: None,
            references_unit: None,
            on_partitioned: false,
            columns: vec![],
            referenced_columns: vec![],
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
}
