//! The statements a load runs on the target around the data, each a [`Step`] that says what
//! it does: what the start takes away (cyclic foreign keys, NOT VALID checks, secondary
//! indexes, user triggers), what finishes a table (index rebuilds, ANALYZE), what the end puts
//! back (keys re-added and validated, checks re-added NOT VALID, triggers, sequences), and
//! what a failed or interrupted load puts back so the target never claims what is not true.
//! Every put-back statement is idempotent, so a resumed job may run it again.

use crate::error::{Error, Result, Role};
use crate::model::catalog::{ForeignKey, KeyConstraint, SecondaryIndex, Sequence};
use crate::model::ident::{quote_ident, quote_literal, QualName};
use crate::model::restore::Restore;
use tokio_postgres::{Client, GenericClient};

/// A statement of the finalize phase, with what it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What it does, for errors and logs (`rebuilding index i on t`).
    pub what: String,
    /// The statement.
    pub sql: String,
}

impl Step {
    fn new(what: String, sql: String) -> Self {
        Step { what, sql }
    }

    /// Runs it on `client` (a session or a transaction); an error says what it was doing.
    pub async fn run(&self, client: &impl GenericClient) -> Result<()> {
        client
            .batch_execute(&self.sql)
            .await
            .map_err(|e| Error::pg(Role::Target, self.what.clone(), e))
    }
}

/// Runs `steps` one after the other on `client`.
pub async fn run_steps(client: &Client, steps: &[Step]) -> Result<()> {
    for step in steps {
        step.run(client).await?;
    }
    Ok(())
}

/// A group of finalize statements; `parallel` says whether they may run at the same time.
pub struct StepGroup {
    /// Run the statements concurrently (else one after the other, on one session).
    pub parallel: bool,
    /// The statements.
    pub steps: Vec<Step>,
}

/// What finishes one table once all its parts are in: add back its dropped keys, rebuild its
/// dropped indexes
/// (idempotently, so a resumed job does not trip over one it already built), then ANALYZE
/// (unless the job says `--analyze off`).
/// Runs on the worker that loaded the table's last part, while other tables still load.
pub fn table_steps(restore: &Restore, table: &QualName) -> Vec<Step> {
    let mut steps: Vec<Step> = restore
        .keys
        .iter()
        .filter(|k| &k.table == table)
        .map(readd_key)
        .collect();
    steps.extend(
        restore
            .indexes
            .iter()
            .filter(|ix| &ix.table == table)
            .map(rebuild_index),
    );
    if !restore.no_analyze {
        // After the keys and indexes: building them sets the table's page and row counts.
        steps.push(match restore.stats.iter().find(|s| &s.table == table) {
            Some(copy) => Step::new(
                format!("copying the statistics of {table}"),
                crate::pg::stats::restore_sql(copy),
            ),
            None => analyze(table),
        });
    }
    // A key from the table to itself depends on no other table's rows: it is re-added and
    // validated here, while other tables load, rather than at the end, where it would run
    // alone (orders.parent_order_id: 0.5 s of a 10 s sync). After ANALYZE, so validation is
    // planned on statistics. [`finalize_steps`] keeps it, a no-op by then (both statements
    // are idempotent), so no resume path can miss it.
    for fk in restore.fks.iter().filter(|fk| self_referencing(fk, table)) {
        steps.push(readd_fk(fk));
        steps.push(validate_fk(fk));
    }
    steps
}

/// `fk` is a dropped key of plain `table` to its own rows.
fn self_referencing(fk: &ForeignKey, table: &QualName) -> bool {
    &fk.table == table && fk.references == fk.table && !fk.on_partitioned && fk.table_unit.is_none()
}

/// Re-adds a dropped foreign key (`NOT VALID` where PostgreSQL allows it), unless it exists.
fn readd_fk(fk: &ForeignKey) -> Step {
    readd(
        format!("re-adding foreign key {} on {}", fk.name, fk.table),
        Constrained::Table(&fk.table),
        &fk.name,
        &fk.definition,
        !fk.on_partitioned,
    )
}

/// Validates a re-added foreign key (a no-op on one already valid).
fn validate_fk(fk: &ForeignKey) -> Step {
    Step::new(
        format!("validating foreign key {} on {}", fk.name, fk.table),
        format!(
            "ALTER TABLE {} VALIDATE CONSTRAINT {}",
            fk.table.sql(),
            quote_ident(&fk.name)
        ),
    )
}

/// `ANALYZE` of `table`.
pub fn analyze(table: &QualName) -> Step {
    Step::new(
        format!("analyzing {table}"),
        format!("ANALYZE {}", table.sql()),
    )
}

/// Sets sequence `s` to the state read from the source.
pub fn set_sequence(s: &Sequence) -> Step {
    Step::new(
        format!("setting sequence {}", s.name),
        format!(
            "SELECT pg_catalog.setval({}::regclass, {}, {})",
            quote_literal(&s.name.sql()),
            s.last_value,
            s.is_called
        ),
    )
}

/// The end of a job, after every table's [`table_steps`]; groups run one after the other:
/// re-add dropped foreign keys as NOT VALID (serial: the two keys of a cycle lock both tables
/// in opposite orders and would deadlock); validate them (parallel); re-enable triggers and
/// set sequences (serial).
pub fn finalize_steps(restore: &Restore, sequences: &[Sequence]) -> Vec<StepGroup> {
    let mut add = restore.fks.iter().map(readd_fk).collect::<Vec<_>>();
    add.extend(readd_checks(restore));
    let validate = restore.fks.iter().map(validate_fk).collect();
    let mut last: Vec<Step> = enable_triggers(restore).collect();
    last.extend(sequences.iter().map(set_sequence));
    let group = |parallel, steps| StepGroup { parallel, steps };
    vec![group(false, add), group(true, validate), group(false, last)]
}

/// What a failed or interrupted load puts back at once, so the target claims nothing that
/// is not true: dropped primary/unique keys added back, indexes rebuilt, dropped foreign
/// keys re-added `NOT VALID` (a foreign key on a partitioned table, which cannot be
/// `NOT VALID`, stays dropped), checks re-added `NOT VALID`,
/// triggers enabled; and the keys left in place but not enforced during the load
/// (`restore.unenforced`: replica mode fires no FK trigger) made `NOT VALID`, since their
/// rows may not hold any more. Returns the steps and what a later finish must still do
/// (re-add and validate every such key).
pub fn put_back_steps(restore: &Restore) -> (Vec<Step>, Restore) {
    let unenforced = &restore.unenforced;
    let mut out: Vec<Step> = restore.keys.iter().map(readd_key).collect();
    out.extend(restore.indexes.iter().map(rebuild_index));
    out.extend(
        restore
            .fks
            .iter()
            .filter(|fk| !fk.on_partitioned)
            .map(|fk| {
                readd(
                    format!(
                        "re-adding foreign key {} on {} NOT VALID",
                        fk.name, fk.table
                    ),
                    Constrained::Table(&fk.table),
                    &fk.name,
                    &fk.definition,
                    true,
                )
            }),
    );
    out.extend(readd_checks(restore));
    out.extend(enable_triggers(restore));
    out.extend(unenforced.iter().map(|fk| {
        let (table, name) = (fk.table.sql(), quote_ident(&fk.name));
        let sql = if fk.on_partitioned {
            format!("ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}")
        } else {
            format!(
                "ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}, ADD CONSTRAINT {name} {} NOT VALID",
                fk.definition.trim_end_matches(" NOT VALID")
            )
        };
        Step::new(
            format!("marking foreign key {} on {} NOT VALID", fk.name, fk.table),
            sql,
        )
    }));
    let mut pending = Restore {
        fks: restore.fks.clone(),
        indexes: restore.indexes.clone(),
        keys: restore.keys.clone(),
        checks: restore.checks.clone(),
        triggers: Vec::new(),
        no_analyze: restore.no_analyze,
        unenforced: Vec::new(),
        stats: restore.stats.clone(),
        shadow: None,
    };
    pending.merge(Restore {
        fks: unenforced.to_vec(),
        ..Default::default()
    });
    (out, pending)
}

/// Adds back a dropped primary-key or unique constraint, unless it exists.
fn readd_key(k: &KeyConstraint) -> Step {
    readd(
        format!("adding back key {} on {}", k.name, k.table),
        Constrained::Table(&k.table),
        &k.name,
        &k.definition,
        false,
    )
}

/// Rebuilds a dropped index, unless it exists (a resumed job may have built it already).
fn rebuild_index(ix: &SecondaryIndex) -> Step {
    Step::new(
        format!("rebuilding index {} on {}", ix.name, ix.table),
        ix.definition
            .replacen("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ", 1),
    )
}

/// Re-adds the set-aside checks `NOT VALID`: as they were, old rows unchecked.
fn readd_checks(restore: &Restore) -> impl Iterator<Item = Step> + '_ {
    restore.checks.iter().map(|c| {
        let on = if c.domain {
            Constrained::Domain(&c.on)
        } else {
            Constrained::Table(&c.on)
        };
        readd(
            format!("re-adding check constraint {} on {}", c.name, c.on),
            on,
            &c.name,
            &c.definition,
            true,
        )
    })
}

/// Enables again the user triggers the load disabled.
fn enable_triggers(restore: &Restore) -> impl Iterator<Item = Step> + '_ {
    restore.triggers.iter().map(|t| {
        Step::new(
            format!("re-enabling triggers on {t}"),
            format!("ALTER TABLE {} ENABLE TRIGGER USER", t.sql()),
        )
    })
}

/// What a constraint is declared on.
#[derive(Clone, Copy)]
enum Constrained<'a> {
    Table(&'a QualName),
    Domain(&'a QualName),
}

/// Re-adds a constraint of a table or domain (`NOT VALID` when `not_valid`), unless it
/// exists (a resumed job may have re-added it already).
fn readd(what: String, on: Constrained<'_>, name: &str, definition: &str, not_valid: bool) -> Step {
    let (object, column, cast, on) = match on {
        Constrained::Domain(d) => ("DOMAIN", "contypid", "regtype", d),
        Constrained::Table(t) => ("TABLE", "conrelid", "regclass", t),
    };
    let suffix = if not_valid { " NOT VALID" } else { "" };
    let sql = format!(
        "DO $dbsync$ BEGIN
           IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = {name_lit}
                             AND {column} = {on_lit}::{cast}) THEN
             ALTER {object} {on} ADD CONSTRAINT {name} {def}{suffix};
           END IF;
         END $dbsync$",
        name_lit = quote_literal(name),
        on_lit = quote_literal(&on.sql()),
        on = on.sql(),
        name = quote_ident(name),
        def = definition.trim_end_matches(" NOT VALID"),
    );
    Step::new(what, sql)
}

/// Drops the foreign keys, keys and indexes, sets aside the checks and disables the triggers
/// that `take` lists, inside the job's first transaction.
pub async fn take_away(tx: &tokio_postgres::Transaction<'_>, take: &Restore) -> Result<()> {
    let drop = |what: &str, table: &QualName, name: &str| {
        Step::new(
            format!("dropping {what} {name} on {table}"),
            format!(
                "ALTER TABLE {} DROP CONSTRAINT {}",
                table.sql(),
                quote_ident(name)
            ),
        )
    };
    let fks = take
        .fks
        .iter()
        .map(|fk| drop("foreign key", &fk.table, &fk.name));
    let indexes = take.indexes.iter().map(|ix| {
        Step::new(
            format!("dropping index {} on {}", ix.name, ix.table),
            format!(
                "DROP INDEX {}.{}",
                quote_ident(&ix.table.schema),
                quote_ident(&ix.name)
            ),
        )
    });
    let keys = take.keys.iter().map(|k| drop("key", &k.table, &k.name));
    let triggers = take.triggers.iter().map(|t| {
        Step::new(
            format!("disabling triggers on {t}"),
            format!("ALTER TABLE {} DISABLE TRIGGER USER", t.sql()),
        )
    });
    let checks = take.checks.iter().map(|c| {
        let object = if c.domain { "DOMAIN" } else { "TABLE" };
        Step::new(
            format!("setting aside check constraint {} on {}", c.name, c.on),
            format!(
                "ALTER {object} {} DROP CONSTRAINT {}",
                c.on.sql(),
                quote_ident(&c.name)
            ),
        )
    });
    for step in fks.chain(checks).chain(indexes).chain(keys).chain(triggers) {
        step.run(tx).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::catalog::SecondaryIndex;

    #[test]
    fn a_table_is_finished_by_rebuilding_its_own_indexes_idempotently_then_analyzing_it() {
        let ix = |t: &str| SecondaryIndex {
            table: QualName::new("a", t),
            name: format!("{t}_i"),
            definition: format!("CREATE INDEX {t}_i ON a.{t} USING btree (x)"),
        };
        let r = Restore {
            indexes: vec![ix("t"), ix("u")],
            ..Default::default()
        };
        let steps = table_steps(&r, &QualName::new("a", "t"));
        assert_eq!(steps.len(), 2);
        assert_eq!(
            steps[0].sql,
            "CREATE INDEX IF NOT EXISTS t_i ON a.t USING btree (x)"
        );
        assert_eq!(steps[1].sql, "ANALYZE \"a\".\"t\"");
        let groups = finalize_steps(&r, &[]);
        assert!(!groups[0].parallel && groups[1].parallel && !groups[2].parallel);
    }

    #[test]
    fn a_dropped_key_comes_back_first_idempotently_and_without_analyze_when_off() {
        let t = QualName::new("a", "t");
        let r = Restore {
            keys: vec![KeyConstraint {
                table: t.clone(),
                name: "t_pkey".into(),
                definition: "PRIMARY KEY (id)".into(),
            }],
            no_analyze: true,
            ..Default::default()
        };
        let steps = table_steps(&r, &t);
        assert_eq!(steps.len(), 1);
        assert!(
            steps[0].sql.contains("IF NOT EXISTS")
                && steps[0]
                    .sql
                    .contains("ADD CONSTRAINT \"t_pkey\" PRIMARY KEY (id);"),
            "{}",
            steps[0].sql
        );
        let (back, pending) = put_back_steps(&r);
        assert_eq!(back[0].sql, steps[0].sql);
        assert_eq!(pending.keys, r.keys);
    }

    #[test]
    fn a_key_of_a_table_to_itself_is_validated_with_the_table_and_one_of_a_cycle_only_at_the_end() {
        let fk = |name: &str, table: &str, references: &str| ForeignKey {
            name: name.into(),
            table: QualName::new("a", table),
            references: QualName::new("a", references),
            definition: format!("FOREIGN KEY (p) REFERENCES a.{references}(id)"),
            table_unit: None,
            references_unit: None,
            on_partitioned: false,
            columns: vec!["p".into()],
            referenced_columns: vec!["id".into()],
        };
        let r = Restore {
            fks: vec![
                fk("t_p", "t", "t"),
                fk("t_u", "t", "u"),
                fk("u_t", "u", "t"),
            ],
            ..Default::default()
        };
        let steps = table_steps(&r, &QualName::new("a", "t"));
        let sql: Vec<&str> = steps.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(sql.len(), 3, "{sql:?}");
        assert_eq!(sql[0], "ANALYZE \"a\".\"t\"");
        assert!(
            sql[1].contains("ADD CONSTRAINT \"t_p\" FOREIGN KEY (p) REFERENCES a.t(id) NOT VALID;")
        );
        assert_eq!(
            sql[2],
            "ALTER TABLE \"a\".\"t\" VALIDATE CONSTRAINT \"t_p\""
        );
        assert_eq!(
            table_steps(&r, &QualName::new("a", "u")).len(),
            1,
            "ANALYZE only"
        );
        // The end still names all three: for the self-reference, idempotent no-ops by then.
        let groups = finalize_steps(&r, &[]);
        assert_eq!(groups[0].steps.len(), 3);
        assert_eq!(groups[1].steps.len(), 3);
    }
}
