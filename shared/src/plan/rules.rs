//! Checks a rules file against the catalog and turns it into each table's applied rules:
//! which unit (plain table or partition root) an entry names, what SQL computes each ruled
//! column, whether a rule fits its column's type and keeps keys unique and foreign keys
//! joinable, and each table's row condition (its filter, and that its FK parents' rows are
//! exported too, so a filtered subset never orphans a child; `pg::rules` writes its SQL).
//! Pure: the source checks the SQL itself afterwards (`pg::verify::check_rules`).

use crate::error::{Error, Result};
use crate::model::catalog::{Catalog, ForeignKey, Table};
use crate::model::ident::{quote_ident, QualName};
use crate::model::rules::{
    AppliedRules, ColumnRule, ComputedColumn, ParentRow, RowCondition, RulesFile, TableRules,
    SETTING,
};
use crate::plan::column_rules::compile_columns;
use std::collections::{BTreeMap, BTreeSet};

type Units<'a> = BTreeMap<QualName, (&'a str, &'a TableRules)>;

/// What the rules decided for one table, which the caller records on its applied rules as
/// SQL (`pg::rules::condition_sql`, `pg::column_rules::column_sql`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decided {
    /// The row condition, one `AND` of these (none: every row).
    pub condition: Vec<RowCondition>,
    /// Per ruled column, what its value is computed as.
    pub columns: BTreeMap<String, ComputedColumn>,
}

/// Checks `file` against the catalog and records on every table it touches that its export
/// applies rules (its filter as written); answers what was decided for each table, in the
/// catalog's order. `keyed`: the source sessions hold a hash key.
pub fn apply(catalog: &mut Catalog, file: &RulesFile, keyed: bool) -> Result<Vec<Decided>> {
    if file.needs_key() && !keyed {
        return Err(err(
            "the rules hash, email, name and phone need a key: set DBSYNC_RULES_KEY \
             (serverless: rules_key_secret)",
        ));
    }
    let units = resolve(catalog, file)?;
    for (key, r) in units.values() {
        if let Some(f) = &r.filter {
            check_predicate(f).map_err(|m| err(format!("where of {key}: {m}")))?;
        }
    }
    let mut columns_of = Vec::with_capacity(catalog.tables.len());
    for t in &catalog.tables {
        columns_of.push(match units.get(t.unit()) {
            Some((key, r)) => compile_columns(t, key, r)?,
            None => BTreeMap::new(),
        });
    }
    check_foreign_keys(catalog, &units)?;
    let filtered = filtered_units(catalog, &units);
    refuse_filters_through_cycles(catalog, &filtered)?;
    let conditions = Conditions {
        catalog,
        units: &units,
        filtered: &filtered,
    };
    let mut applied = Vec::with_capacity(catalog.tables.len());
    let mut decided = Vec::with_capacity(catalog.tables.len());
    for (t, columns) in catalog.tables.iter().zip(columns_of) {
        let entry = units.get(t.unit());
        let condition = conditions.of(&t.name, t.unit())?;
        let filter = entry.and_then(|(_, r)| r.filter.clone());
        let any = filter.is_some() || !condition.is_empty() || !columns.is_empty();
        applied.push(any.then_some(AppliedRules {
            filter,
            condition: None,
            columns: BTreeMap::new(),
        }));
        decided.push(Decided { condition, columns });
    }
    for (t, a) in catalog.tables.iter_mut().zip(applied) {
        t.rules = a;
    }
    Ok(decided)
}

fn err(message: impl Into<String>) -> Error {
    Error::config(SETTING, message)
}

/// Which unit each entry of the file names: `schema.table` (quoted where it needs it, or
/// not), or a bare table name that only one schema has.
fn resolve<'a>(catalog: &Catalog, file: &'a RulesFile) -> Result<Units<'a>> {
    let units: BTreeSet<&QualName> = catalog.tables.iter().map(Table::unit).collect();
    let names = |k: &str, q: &QualName| {
        k == q.to_string()
            || k == format!("{}.{}", q.schema, q.name)
            || (!k.contains('.') && k == q.name)
    };
    let mut out = Units::new();
    for (k, r) in &file.tables {
        let found: Vec<&&QualName> = units.iter().filter(|q| names(k, q)).collect();
        match found.as_slice() {
            [one] => {
                out.insert((**one).clone(), (k.as_str(), r));
            }
            [] => {
                if let Some(t) = catalog.tables.iter().find(|t| names(k, &t.name)) {
                    return Err(err(format!(
                        "rules name {k}, a partition: write them for its partitioned table {}",
                        t.unit()
                    )));
                }
                return Err(err(format!(
                    "rules name table {k}, which is not in scope (check the name as \
                     schema.table, and --schemas/--tables/--exclude)"
                )));
            }
            many => {
                let list: Vec<String> = many.iter().map(|q| q.to_string()).collect();
                return Err(err(format!(
                    "rules name {k}, which matches {}: write schema.table",
                    list.join(", ")
                )));
            }
        }
    }
    Ok(out)
}

/// A predicate must be one expression: no statement separators or comments outside
/// quotes, parentheses balanced (it is pasted into the source's query inside parentheses).
fn check_predicate(p: &str) -> std::result::Result<(), String> {
    if p.trim().is_empty() {
        return Err("is empty".into());
    }
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut chars = p.chars().peekable();
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err("has a ')' without its '('".into());
                }
            }
            ';' => return Err("has a ';': write one condition, not statements".into()),
            '-' if chars.peek() == Some(&'-') => return Err("has a comment (--)".into()),
            '/' if chars.peek() == Some(&'*') => return Err("has a comment (/*)".into()),
            _ => {}
        }
    }
    if quote.is_some() {
        return Err("has an unterminated quote".into());
    }
    if depth != 0 {
        return Err("has a '(' without its ')'".into());
    }
    Ok(())
}

/// The rule a unit's column has (keep when none).
fn rule_of<'a>(units: &'a Units<'_>, unit: &QualName, column: &str) -> &'a ColumnRule {
    units
        .get(unit)
        .and_then(|(_, r)| r.columns.get(column))
        .unwrap_or(&ColumnRule::Keep)
}

/// A foreign key's two sides must change alike, or child rows lose their parent.
fn check_foreign_keys(catalog: &Catalog, units: &Units<'_>) -> Result<()> {
    let types = column_types(catalog);
    for fk in &catalog.foreign_keys {
        let (c, p) = (fk.unit(), fk.referenced_unit());
        for (cc, pc) in fk.columns.iter().zip(&fk.referenced_columns) {
            let (rc, rp) = (rule_of(units, c, cc), rule_of(units, p, pc));
            let same_type = types.get(&(c, cc.as_str())) == types.get(&(p, pc.as_str()));
            if rc != rp || (*rc != ColumnRule::Keep && !same_type) {
                return Err(err(format!(
                    "foreign key {} joins {c}.{} ({}) to {p}.{} ({}): give both columns the \
                     same rule{}, or the child rows would not find their parent",
                    fk.name,
                    quote_ident(cc),
                    rc.name(),
                    quote_ident(pc),
                    rp.name(),
                    if same_type { "" } else { " and the same type" }
                )));
            }
        }
    }
    Ok(())
}

fn column_types(catalog: &Catalog) -> BTreeMap<(&QualName, &str), &str> {
    catalog
        .tables
        .iter()
        .flat_map(|t| {
            t.columns
                .iter()
                .map(move |c| ((t.unit(), c.name.as_str()), c.type_name.as_str()))
        })
        .collect()
}

/// Units whose rows are filtered: by their own `where`, or because a parent's are.
fn filtered_units(catalog: &Catalog, units: &Units<'_>) -> BTreeSet<QualName> {
    let mut set: BTreeSet<QualName> = units
        .iter()
        .filter(|(_, (_, r))| r.filter.is_some())
        .map(|(u, _)| u.clone())
        .collect();
    loop {
        let more: Vec<QualName> = catalog
            .foreign_keys
            .iter()
            .filter(|f| set.contains(f.referenced_unit()) && !set.contains(f.unit()))
            .map(|f| f.unit().clone())
            .collect();
        if more.is_empty() {
            return set;
        }
        set.extend(more);
    }
}

/// A filter cannot be followed around a foreign-key cycle (a row's parent may be its own
/// descendant): refused, naming the key.
fn refuse_filters_through_cycles(catalog: &Catalog, filtered: &BTreeSet<QualName>) -> Result<()> {
    for fk in &catalog.foreign_keys {
        let (c, p) = (fk.unit(), fk.referenced_unit());
        if filtered.contains(p) && reaches(catalog, p, c) {
            return Err(err(format!(
                "the where filter reaching {p} cannot follow foreign key {} of {c}, which is \
                 part of a cycle: rows would be orphaned; filter a table outside the cycle",
                fk.name
            )));
        }
    }
    Ok(())
}

/// `to` is `from` or one of its FK ancestors.
fn reaches(catalog: &Catalog, from: &QualName, to: &QualName) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from];
    while let Some(u) = stack.pop() {
        if u == to {
            return true;
        }
        if seen.insert(u) {
            stack.extend(
                catalog
                    .foreign_keys
                    .iter()
                    .filter(|f| f.unit() == u)
                    .map(ForeignKey::referenced_unit),
            );
        }
    }
    false
}

/// What the row conditions are computed from: the catalog, the rules by unit, and the
/// units whose rows are filtered.
struct Conditions<'a> {
    catalog: &'a Catalog,
    units: &'a Units<'a>,
    filtered: &'a BTreeSet<QualName>,
}

impl Conditions<'_> {
    /// The row condition of table `name` of `unit`: the unit's filter, and for each key to a filtered parent, that the parent row passes too
    /// (or the key is NULL, which references nothing).
    fn of(&self, name: &QualName, unit: &QualName) -> Result<Vec<RowCondition>> {
        let mut parts = Vec::new();
        if let Some((_, r)) = self.units.get(unit) {
            if let Some(f) = &r.filter {
                parts.push(RowCondition::Filter(f.clone()));
            }
        }
        let leaf = |n: &QualName| self.catalog.tables.iter().any(|t| &t.name == n);
        for fk in self
            .catalog
            .foreign_keys
            .iter()
            .filter(|f| f.unit() == unit)
        {
            let parent = fk.referenced_unit();
            if !self.filtered.contains(parent) {
                continue;
            }
            // A key declared on one partition holds for that partition only.
            if fk.table != *name && fk.table != *unit {
                if leaf(&fk.table) {
                    continue;
                }
                return Err(err(format!(
                    "the where filter reaching {parent} cannot follow foreign key {} declared on \
                     the sub-partitioned table {}",
                    fk.name, fk.table
                )));
            }
            parts.extend(self.parent_exported(fk)?);
        }
        Ok(parts)
    }

    /// That the row `fk` points at is exported too, or `fk` is NULL.
    fn parent_exported(&self, fk: &ForeignKey) -> Result<Option<RowCondition>> {
        let parent = fk.referenced_unit();
        let Some(ptable) = self.catalog.tables.iter().find(|t| t.unit() == parent) else {
            return Ok(None);
        };
        Ok(Some(RowCondition::ParentExported(ParentRow {
            parent: parent.clone(),
            // A partitioned parent is read through its root; a plain one alone, as it is
            // exported.
            through_root: ptable.partition_of.is_some(),
            columns: fk.columns.clone(),
            referenced_columns: fk.referenced_columns.clone(),
            condition: self.of(parent, parent)?,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::catalog::{Column, Key, KeyColumn, KeyKind, ServerInfo};
    use crate::model::rules::Computed;

    fn column(name: &str, ty: &str) -> Column {
        Column::for_tests(name, ty)
    }

    fn keyed(name: &str, cols: &[(&str, &str)]) -> Table {
        let mut t = Table::for_tests("app", name);
        t.columns = cols.iter().map(|(n, ty)| column(n, ty)).collect();
        t.key = Some(Key {
            index: format!("{name}_pkey"),
            columns: vec![KeyColumn {
                name: "id".into(),
                type_name: cols[0].1.into(),
                kind: KeyKind::Integer,
            }],
        });
        t
    }

    fn fk(name: &str, child: &str, cc: &str, parent: &str, pc: &str) -> ForeignKey {
        ForeignKey {
            name: name.into(),
            table: QualName::new("app", child),
            references: QualName::new("app", parent),
            definition: String::new(),
            table_unit: None,
            references_unit: None,
            on_partitioned: false,
            columns: vec![cc.into()],
            referenced_columns: vec![pc.into()],
        }
    }

    fn catalog() -> Catalog {
        Catalog {
            server: ServerInfo {
                version: "15".into(),
                version_num: 150000,
                database: "d".into(),
                encoding: "UTF8".into(),
            },
            tables: vec![
                keyed(
                    "people",
                    &[("id", "bigint"), ("email", "text"), ("region", "text")],
                ),
                keyed(
                    "orders",
                    &[
                        ("id", "bigint"),
                        ("person_email", "text"),
                        ("code", "character varying(8)"),
                    ],
                ),
                keyed("lines", &[("id", "bigint"), ("order_id", "bigint")]),
            ],
            foreign_keys: vec![
                fk(
                    "orders_person_fk",
                    "orders",
                    "person_email",
                    "people",
                    "email",
                ),
                fk("lines_order_fk", "lines", "order_id", "orders", "id"),
            ],
            sequences: vec![],
            not_valid_checks: vec![],
            skipped: vec![],
            enums: vec![],
            unmatched_patterns: vec![],
        }
    }

    fn apply_text(cat: &mut Catalog, rules: &str) -> Result<Vec<Decided>> {
        apply(cat, &RulesFile::parse(rules).expect("parses"), true)
    }

    #[test]
    fn a_filter_on_a_parent_reaches_its_children_and_grandchildren_through_their_keys() {
        let mut cat = catalog();
        let decided = apply(
            &mut cat,
            &RulesFile::parse(r#"{"tables": {"app.people": {"where": "region = 'eu'"}}}"#)
                .expect("parses"),
            true,
        )
        .expect("applies");
        let eu = vec![RowCondition::Filter("region = 'eu'".into())];
        let parent = ParentRow::for_tests;
        let orders = parent("people", "person_email", "email", eu.clone());
        assert_eq!(decided[0].condition, eu);
        assert_eq!(decided[1].condition, vec![orders.clone()]);
        assert_eq!(
            decided[2].condition,
            vec![parent("orders", "order_id", "id", vec![orders])]
        );
        assert!(cat.tables[2]
            .rules
            .as_ref()
            .is_some_and(|r| r.filter.is_none()));
    }

    #[test]
    fn both_sides_of_a_foreign_key_must_change_alike() {
        let mut cat = catalog();
        let e = apply_text(
            &mut cat,
            r#"{"tables": {"app.people": {"columns": {"email": "email"}}}}"#,
        )
        .expect_err("child not ruled");
        assert!(e.to_string().contains("foreign key orders_person_fk joins app.orders.\"person_email\" (keep) to app.people.\"email\" (email)"), "{e}");
        let decided = apply_text(
            &mut cat,
            r#"{"tables": {"people": {"columns": {"email": "email"}}, "orders": {"columns": {"person_email": "email"}}}}"#,
        )
        .expect("both sides alike");
        let computed = &decided[1].columns["person_email"];
        assert_eq!(
            (&computed.value, computed.type_name.as_str()),
            (&Computed::Email, "text")
        );
        assert!(cat.tables[1].rules.is_some(), "the child is ruled");
    }

    #[test]
    fn rules_that_would_repeat_a_unique_value_or_misfit_a_type_are_refused() {
        let cases = [
            (
                r#"{"tables": {"app.lines": {"columns": {"id": {"value": "1"}}}}}"#,
                "would repeat values in a unique column",
            ),
            (
                r#"{"tables": {"app.orders": {"columns": {"code": "email"}}}}"#,
                "email needs at least 33 characters and the column is character varying(8)",
            ),
            (
                r#"{"tables": {"app.lines": {"columns": {"order_id": {"truncate": 2}}}}}"#,
                "truncate 2 applies to text",
            ),
            (
                r#"{"tables": {"app.lines": {"columns": {"nope": "null"}}}}"#,
                "no column \"nope\" (it has id, order_id)",
            ),
            (
                r#"{"tables": {"app.ghost": {"columns": {"a": "null"}}}}"#,
                "rules name table app.ghost, which is not in scope",
            ),
            (
                r#"{"tables": {"app.people": {"where": "true; DROP TABLE x"}}}"#,
                "where of app.people: has a ';'",
            ),
            (
                r#"{"tables": {"app.people": {"where": "(a"}}}"#,
                "has a '(' without its ')'",
            ),
        ];
        for (rules, want) in cases {
            let e = apply_text(&mut catalog(), rules)
                .expect_err(rules)
                .to_string();
            assert!(e.contains(want), "{rules}: {e}");
        }
        let e = apply(
            &mut catalog(),
            &RulesFile::parse(r#"{"tables": {"app.people": {"columns": {"region": "hash"}}}}"#)
                .expect("parses"),
            false,
        )
        .expect_err("no key");
        assert!(e.to_string().contains("DBSYNC_RULES_KEY"), "{e}");
    }

    #[test]
    fn a_filter_cannot_follow_a_self_reference() {
        let mut cat = catalog();
        cat.tables[2].columns.push(column("parent_id", "bigint"));
        cat.foreign_keys
            .push(fk("lines_parent_fk", "lines", "parent_id", "lines", "id"));
        let e = apply_text(
            &mut cat,
            r#"{"tables": {"app.lines": {"where": "id > 3"}}}"#,
        )
        .expect_err("cycle");
        assert!(
            e.to_string()
                .contains("cannot follow foreign key lines_parent_fk"),
            "{e}"
        );
        apply_text(
            &mut cat,
            r#"{"tables": {"app.people": {"columns": {"region": "name"}}}}"#,
        )
        .expect("no filter, no cycle problem");
    }
}
