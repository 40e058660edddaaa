//! The pre-flight compatibility check: before anything in the target changes, compare the
//! source's tables, columns, types and sequences (from a plan or manifest) with the target's
//! catalog and list every mismatch at once. Pure.

use crate::error::Error;
use crate::model::catalog::{
    Catalog, CheckConstraint, EnumType, ForeignKey, Sequence, ServerInfo, Table, UniqueKey,
};
use crate::model::ident::{quote_ident, quote_literal, QualName};
use std::collections::BTreeSet;

/// What the target is checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Emptying and loading it (sync, import).
    Load,
    /// Only reading it (verify).
    Compare,
}

/// What the source side of a check is: from a live catalog or a manifest.
#[derive(Clone, Copy)]
pub struct SourceSide<'a> {
    /// The source server.
    pub server: &'a ServerInfo,
    /// Its tables in scope.
    pub tables: &'a [Table],
    /// Its sequences in scope.
    pub sequences: &'a [Sequence],
    /// The enum types its columns use.
    pub enums: &'a [EnumType],
}

/// Every reason the target cannot take (or, for [`Purpose::Compare`], be compared with) the
/// source's data; empty when it can.
pub fn check(src: &SourceSide<'_>, target: &Catalog, purpose: Purpose) -> Vec<String> {
    let SourceSide {
        server: source,
        tables,
        sequences,
        enums,
    } = *src;
    let mut problems = Vec::new();
    if source.encoding != target.server.encoding {
        problems.push(format!(
            "the source database is encoded {} but the target is {}",
            source.encoding, target.server.encoding
        ));
    }
    for t in tables {
        check_table(t, target, purpose, &mut problems);
    }
    if purpose == Purpose::Load {
        extra_partitions(tables, target, &mut problems);
        missing_enum_labels(enums, target, &mut problems);
    }
    for s in sequences {
        match target.sequences.iter().find(|x| x.name == s.name) {
            None => problems.push(format!("sequence {} is missing on the target", s.name)),
            Some(ts) if purpose == Purpose::Load && !ts.can_set => problems.push(format!(
                "the target role may not set sequence {} (needs UPDATE)",
                s.name
            )),
            Some(_) => {}
        }
    }
    problems
}

/// Enum labels the source has that the target's type of the same name lacks: a row using
/// one would fail the load after the target was emptied.
fn missing_enum_labels(enums: &[EnumType], target: &Catalog, problems: &mut Vec<String>) {
    for e in enums {
        let Some(te) = target.enums.iter().find(|t| t.name == e.name) else {
            continue;
        };
        let missing: Vec<String> = e
            .labels
            .iter()
            .filter(|l| !te.labels.contains(l))
            .map(|l| quote_literal(l))
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "enum {} on the target lacks the label{} {} the source has; add {} (ALTER TYPE {} ADD VALUE {})",
                e.name,
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", "),
                if missing.len() == 1 { "it" } else { "them" },
                e.name,
                missing[0]
            ));
        }
    }
}

/// A target constraint the source does not have, whose rule the source's rows may break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetOnly<'a> {
    /// A unique index no unique key of the source implies.
    Unique(&'a UniqueKey),
    /// A validated CHECK constraint with no equal on the source.
    Check(&'a CheckConstraint),
}

/// The target's unique keys and checks on table `tt` that the source's table `t` does not
/// guarantee: a source unique key on a subset of the columns (not partial, and treating NULLs
/// at least as strictly) implies a target one; a check is guaranteed by the same expression.
pub fn target_only<'a>(t: &Table, tt: &'a Table) -> Vec<TargetOnly<'a>> {
    let implied = |k: &UniqueKey| {
        t.unique_keys.iter().any(|s| {
            s.predicate.is_none()
                && (s.nulls_not_distinct || !k.nulls_not_distinct)
                && s.columns.iter().all(|c| k.columns.contains(c))
        })
    };
    let uniques = tt
        .unique_keys
        .iter()
        .filter(|k| !implied(k))
        .map(TargetOnly::Unique);
    let checks = tt
        .checks
        .iter()
        .filter(|c| !t.checks.iter().any(|s| s.expression == c.expression))
        .map(TargetOnly::Check);
    uniques.chain(checks).collect()
}

/// Partitions the target has under a partitioned table in scope that are not among the
/// source's tables: emptying the partitioned table whole (which its foreign keys need)
/// would lose their rows, and loading it partition by partition would leave them stale.
fn extra_partitions(tables: &[Table], target: &Catalog, problems: &mut Vec<String>) {
    let roots: BTreeSet<&QualName> = tables
        .iter()
        .filter_map(|t| t.partition_of.as_ref())
        .collect();
    let names: BTreeSet<&QualName> = tables.iter().map(|t| &t.name).collect();
    for tt in &target.tables {
        if let Some(root) = tt.partition_of.as_ref().filter(|r| roots.contains(r)) {
            if !names.contains(&tt.name) {
                problems.push(format!(
                    "table {} is a partition of {root} on the target but not among the source's tables in scope (attached only on the target, or left out of the scope); detach it on the target, or include it",
                    tt.name
                ));
            }
        }
    }
}

/// The problems of one table: privileges, row-level security, presence on the target, then
/// its columns.
fn check_table(t: &Table, target: &Catalog, purpose: Purpose, problems: &mut Vec<String>) {
    if !t.can_read {
        problems.push(format!(
            "the source role may not read table {} (needs SELECT)",
            t.name
        ));
    }
    if t.rls {
        problems.push(format!(
            "row-level security on source table {} applies to the source role; connect as its owner, a superuser or a BYPASSRLS role",
            t.name
        ));
    }
    let Some(tt) = target.table(&t.name) else {
        problems.push(format!("table {} is missing on the target", t.name));
        return;
    };
    if purpose == Purpose::Compare && !tt.can_read {
        problems.push(format!(
            "the target role may not read table {} (needs SELECT)",
            t.name
        ));
    }
    if purpose == Purpose::Load && !tt.can_load {
        problems.push(format!(
            "the target role may not empty and load table {} (needs TRUNCATE and INSERT)",
            t.name
        ));
    }
    if tt.rls {
        problems.push(format!(
            "row-level security on target table {} applies to the target role; load as a superuser or a BYPASSRLS role, or ALTER TABLE ... NO FORCE ROW LEVEL SECURITY",
            t.name
        ));
    }
    if t.partition_of != tt.partition_of {
        let side = |p: &Option<QualName>| match p {
            Some(r) => format!("a partition of {r}"),
            None => "not a partition".to_string(),
        };
        problems.push(format!(
            "table {} is {} on the source but {} on the target; attach or detach it to match",
            t.name,
            side(&t.partition_of),
            side(&tt.partition_of)
        ));
    }
    check_columns(t, tt, problems);
}

/// The problems of one table's columns: missing, generated only on the target, types that do
/// not load unchanged, and target-only NOT NULL columns without a default.
fn check_columns(t: &Table, tt: &Table, problems: &mut Vec<String>) {
    for c in t.copy_columns() {
        match tt.columns.iter().find(|x| x.name == c.name) {
            None => problems.push(format!(
                "column {}.{} ({}) is missing on the target",
                t.name,
                quote_ident(&c.name),
                c.type_name
            )),
            Some(tc) if tc.generated => problems.push(format!(
                "column {}.{} is generated on the target but not on the source",
                t.name,
                quote_ident(&c.name)
            )),
            Some(tc) if !type_compatible(&c.type_name, &tc.type_name) => problems.push(format!(
                "column {}.{} is {} on the source but {} on the target",
                t.name,
                quote_ident(&c.name),
                c.type_name,
                tc.type_name
            )),
            Some(_) => {}
        }
    }
    for tc in tt.columns.iter().filter(|c| !c.generated) {
        let in_source = t.copy_columns().any(|c| c.name == tc.name);
        if !in_source && tc.not_null && !tc.has_default {
            problems.push(format!(
                "column {}.{} is NOT NULL without a default on the target and does not exist on the source",
                t.name,
                quote_ident(&tc.name)
            ));
        }
    }
}

/// Whether values of `src` type load into a `dst` column unchanged (same text form).
pub fn type_compatible(src: &str, dst: &str) -> bool {
    if src == dst {
        return true;
    }
    let base = |t: &str| t.split('(').next().unwrap_or(t).trim().to_string();
    let typmod = |t: &str| -> Option<Vec<u64>> {
        let inner = t.split_once('(')?.1.split_once(')')?.0;
        inner.split(',').map(|p| p.trim().parse().ok()).collect()
    };
    let (sb, db) = (base(src), base(dst));
    match (sb.as_str(), db.as_str()) {
        // Widening integers and floats keeps the text form.
        ("smallint", "integer" | "bigint" | "numeric")
        | ("integer", "bigint" | "numeric")
        | ("bigint", "numeric")
        | ("real", "double precision") => typmod(dst).is_none(),
        ("character varying" | "character", "text") => true,
        ("character varying", "character varying") | ("numeric", "numeric") => {
            match (typmod(src), typmod(dst)) {
                (_, None) => true,
                (Some(s), Some(d)) if sb == "character varying" => d[0] >= s[0],
                (Some(s), Some(d)) => s.len() == d.len() && s.get(1) == d.get(1) && d[0] >= s[0],
                _ => false,
            }
        }
        _ => false,
    }
}

/// Refuses when a table outside the scope references one inside it: emptying the scope
/// would need a cascade there.
pub fn outside_references(
    scope_units: &BTreeSet<QualName>,
    target_fks: &[ForeignKey],
) -> Result<(), Error> {
    for fk in target_fks {
        if scope_units.contains(fk.referenced_unit()) && !scope_units.contains(fk.unit()) {
            return Err(Error::OutsideScope {
                referencing: fk.table.to_string(),
                constraint: fk.name.clone(),
                referenced: fk.references.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_types_are_compatible_and_narrowing_ones_are_not() {
        assert!(type_compatible("integer", "bigint"));
        assert!(type_compatible(
            "character varying(10)",
            "character varying(20)"
        ));
        assert!(type_compatible("character varying(10)", "text"));
        assert!(type_compatible("numeric(12,2)", "numeric"));
        assert!(type_compatible("numeric(12,2)", "numeric(14,2)"));
        assert!(!type_compatible("numeric(12,2)", "numeric(12,3)"));
        assert!(!type_compatible("bigint", "integer"));
        assert!(!type_compatible(
            "character varying(20)",
            "character varying(10)"
        ));
        assert!(!type_compatible("jsonb", "json"));
        assert!(!type_compatible(
            "timestamp without time zone",
            "timestamp with time zone"
        ));
    }

    #[test]
    fn a_reference_from_outside_the_scope_is_refused_naming_both_tables() {
        let fk = ForeignKey {
            name: "audit_order_fk".into(),
            table: QualName::new("app", "audit"),
            references: QualName::new("app", "orders"),
            definition: String::new(),
            table_unit: None,
            references_unit: None,
            on_partitioned: false,
            columns: vec![],
            referenced_columns: vec![],
        };
        let scope: BTreeSet<_> = [QualName::new("app", "orders")].into_iter().collect();
        let e = outside_references(&scope, &[fk]).expect_err("refused");
        let m = e.to_string();
        assert!(
            m.contains("app.audit") && m.contains("app.orders") && m.contains("audit_order_fk"),
            "{m}"
        );
    }
}
