//! Catalog introspection: the tables in scope (leaf partitions, never views or foreign
//! tables), their copyable columns, a usable key, size estimates, the foreign-key graph,
//! sequences with their state, triggers and RLS flags. Read-only; builds the
//! [`Catalog`] model the planner works on. Must not decide anything: that is `plan`'s job.

use crate::error::{Error, Result, Role};
use crate::ident::QualName;
use crate::scope::Scope;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use tokio_postgres::Client;

/// A column that is copied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Name.
    pub name: String,
    /// Type as `format_type` prints it (schema-qualified outside pg_catalog).
    #[serde(rename = "type")]
    pub type_name: String,
    /// NOT NULL.
    #[serde(default)]
    pub not_null: bool,
    /// Has a default (or is an identity column).
    #[serde(default)]
    pub has_default: bool,
    /// A stored generated column: never copied, listed only for the compatibility check.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub generated: bool,
}

/// How a key column compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// int2/int4/int8.
    Integer,
    /// uuid.
    Uuid,
    /// A collatable type: compared in the "C" collation so ranges are byte-ordered.
    Text,
    /// Anything else with a btree order (dates, numerics, ...).
    Other,
}

/// One column of a table's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyColumn {
    /// Column name.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub type_name: String,
    /// How it compares.
    pub kind: KeyKind,
}

/// A primary key or a NOT NULL unique key without predicate or expressions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    /// The index that backs it.
    pub index: String,
    /// Its columns in index order.
    pub columns: Vec<KeyColumn>,
}

/// A table to copy: an ordinary table or a leaf partition.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Table {
    /// Name.
    #[serde(flatten)]
    pub name: QualName,
    /// The partitioned table it belongs to, for partitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_of: Option<QualName>,
    /// Columns in table order; generated ones flagged.
    pub columns: Vec<Column>,
    /// The key keyset ranges use; None means CTID ranges.
    pub key: Option<Key>,
    /// Estimated rows (`reltuples`; -1 when never analyzed).
    #[serde(default)]
    pub est_rows: i64,
    /// Size on disk including TOAST.
    #[serde(default)]
    pub bytes: i64,
    /// Heap pages now.
    #[serde(default)]
    pub pages: i64,
    /// Row-level security applies to the connected role (enabled, and the role is neither
    /// superuser, BYPASSRLS, nor an owner exempt from it): its COPY would be refused.
    #[serde(default)]
    pub rls: bool,
    /// Enabled user triggers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_triggers: Vec<String>,
    /// The connected role may read the table (SELECT). Not part of a manifest.
    #[serde(skip, default = "yes")]
    pub can_read: bool,
    /// The connected role may empty and load the table (TRUNCATE and INSERT).
    #[serde(skip, default = "yes")]
    pub can_load: bool,
    /// Plain secondary indexes (not unique, not backing a constraint, not attached to a
    /// partitioned index, not replica identity or clustered) that the connected role can
    /// build again: safe to drop during a load and rebuild after.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secondary_indexes: Vec<SecondaryIndex>,
}

fn yes() -> bool {
    true
}

/// An index that can be rebuilt from its definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondaryIndex {
    /// The table it is on.
    pub table: QualName,
    /// Index name (in the table's schema).
    pub name: String,
    /// `pg_get_indexdef` text.
    pub definition: String,
}

impl Table {
    /// The columns that are copied (not generated), in table order.
    pub fn copy_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| !c.generated)
    }
}

/// A foreign key between two tables (partitioned parents stand for their partitions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    /// Constraint name.
    pub name: String,
    /// The table holding it (partitioned parent or plain table).
    pub table: QualName,
    /// The referenced table.
    pub references: QualName,
    /// `pg_get_constraintdef` text, used to re-add it.
    pub definition: String,
}

/// A sequence with its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sequence {
    /// Name.
    #[serde(flatten)]
    pub name: QualName,
    /// The table that owns it (serial/identity), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned_by: Option<QualName>,
    /// `last_value`.
    pub last_value: i64,
    /// `is_called`.
    pub is_called: bool,
    /// The connected role may set it (UPDATE). Not part of a manifest.
    #[serde(skip, default = "yes")]
    pub can_set: bool,
}

/// The server a catalog came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerInfo {
    /// `server_version`.
    pub version: String,
    /// `server_version_num`.
    pub version_num: i32,
    /// Database name.
    pub database: String,
    /// Server encoding.
    pub encoding: String,
}

/// Everything the planner needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Catalog {
    /// Server facts.
    pub server: ServerInfo,
    /// Tables in scope, sorted by name.
    pub tables: Vec<Table>,
    /// Foreign keys touching a table in scope (either side), partition clones left out.
    pub foreign_keys: Vec<ForeignKey>,
    /// Sequences in scope, sorted by name.
    pub sequences: Vec<Sequence>,
}

impl Catalog {
    /// The table with this name, if in scope.
    pub fn table(&self, name: &QualName) -> Option<&Table> {
        self.tables.iter().find(|t| &t.name == name)
    }
}

/// Reads the server facts.
pub async fn server_info(client: &Client, role: Role) -> Result<ServerInfo> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int4,
                    current_database()::text, pg_encoding_to_char(d.encoding)::text
               FROM pg_database d WHERE d.datname = current_database()",
            &[],
        )
        .await
        .map_err(|e| Error::pg(role, "reading server facts", e))?;
    Ok(ServerInfo {
        version: row.get(0),
        version_num: row.get(1),
        database: row.get(2),
        encoding: row.get(3),
    })
}

/// Reads the catalog of the tables in `scope`. With `read_sequences`, also reads every
/// in-scope sequence's state (do it last in an export: sequences are not transactional).
pub async fn load(client: &Client, role: Role, scope: &Scope) -> Result<Catalog> {
    let err = |ctx: &'static str| move |e| Error::pg(role, ctx, e);
    let server = server_info(client, role).await?;

    // All tables (plain, partitioned, partitions) outside system and extension schemas.
    let rows = client
        .query(
            "SELECT c.oid::int8, n.nspname::text, c.relname::text, c.relkind::text,
                    rn.nspname::text, rc.relname::text,
                    pg_table_size(c.oid)::int8, c.reltuples::int8,
                    (pg_relation_size(c.oid) / current_setting('block_size')::int8)::int8,
                    c.relrowsecurity
                      AND NOT (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user)
                      AND (c.relforcerowsecurity OR NOT pg_has_role(c.relowner, 'USAGE')),
                    has_table_privilege(c.oid, 'SELECT'),
                    has_table_privilege(c.oid, 'INSERT') AND has_table_privilege(c.oid, 'TRUNCATE')
               FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               LEFT JOIN pg_class rc ON c.relispartition AND rc.oid = pg_partition_root(c.oid)
               LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace
              WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
                AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                 WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                   AND d.deptype = 'e')",
            &[],
        )
        .await
        .map_err(err("listing tables"))?;
    let mut names: HashMap<i64, QualName> = HashMap::new();
    let mut tables: BTreeMap<i64, Table> = BTreeMap::new();
    for r in rows {
        let oid: i64 = r.get(0);
        let name = QualName::new(r.get::<_, String>(1), r.get::<_, String>(2));
        names.insert(oid, name.clone());
        let kind: String = r.get(3);
        let root = match (r.get::<_, Option<String>>(4), r.get::<_, Option<String>>(5)) {
            (Some(s), Some(n)) => Some(QualName::new(s, n)),
            _ => None,
        };
        if kind != "r" || !scope.table_in_scope(&name, root.as_ref()) {
            continue;
        }
        tables.insert(
            oid,
            Table {
                name,
                partition_of: root,
                columns: Vec::new(),
                key: None,
                bytes: r.get(6),
                est_rows: r.get(7),
                pages: r.get(8),
                rls: r.get(9),
                can_read: r.get(10),
                can_load: r.get(11),
                user_triggers: Vec::new(),
                secondary_indexes: Vec::new(),
            },
        );
    }
    let oids: Vec<i64> = tables.keys().copied().collect();
    let oid_param: Vec<u32> = oids.iter().map(|o| *o as u32).collect();

    for r in client
        .query(
            "SELECT a.attrelid::int8, a.attname::text, format_type(a.atttypid, a.atttypmod),
                    a.attnotnull, (a.atthasdef OR a.attidentity <> ''), a.attgenerated <> ''
               FROM pg_attribute a
              WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
              ORDER BY a.attrelid, a.attnum",
            &[&oid_param],
        )
        .await
        .map_err(err("listing columns"))?
    {
        if let Some(t) = tables.get_mut(&r.get::<_, i64>(0)) {
            t.columns.push(Column {
                name: r.get(1),
                type_name: r.get(2),
                not_null: r.get(3),
                has_default: r.get(4),
                generated: r.get(5),
            });
        }
    }

    // Candidate keys: primary first, then the unique key with the fewest columns.
    for r in client
        .query(
            "SELECT i.indrelid::int8, ci.relname::text, i.indisprimary,
                    array_agg(a.attname::text ORDER BY k.ord),
                    array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY k.ord),
                    array_agg(CASE WHEN a.atttypid IN (20, 21, 23) THEN 'integer'
                                   WHEN a.atttypid = 2950 THEN 'uuid'
                                   WHEN t.typcollation <> 0 THEN 'text'
                                   ELSE 'other' END ORDER BY k.ord),
                    bool_and(a.attnotnull)
               FROM pg_index i
               JOIN pg_class ci ON ci.oid = i.indexrelid
               CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
               JOIN pg_type t ON t.oid = a.atttypid
              WHERE i.indrelid = ANY($1::oid[]) AND (i.indisprimary OR i.indisunique)
                AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
                AND k.ord <= i.indnkeyatts
              GROUP BY i.indrelid, ci.relname, i.indisprimary, i.indnkeyatts
              ORDER BY i.indrelid, i.indisprimary DESC, i.indnkeyatts, ci.relname",
            &[&oid_param],
        )
        .await
        .map_err(err("listing keys"))?
    {
        let not_null: bool = r.get(6);
        let Some(t) = tables.get_mut(&r.get::<_, i64>(0)) else {
            continue;
        };
        if t.key.is_some() || !not_null {
            continue;
        }
        let names: Vec<String> = r.get(3);
        let types: Vec<String> = r.get(4);
        let kinds: Vec<String> = r.get(5);
        t.key = Some(Key {
            index: r.get(1),
            columns: names
                .into_iter()
                .zip(types)
                .zip(kinds)
                .map(|((name, type_name), kind)| KeyColumn {
                    name,
                    type_name,
                    kind: match kind.as_str() {
                        "integer" => KeyKind::Integer,
                        "uuid" => KeyKind::Uuid,
                        "text" => KeyKind::Text,
                        _ => KeyKind::Other,
                    },
                })
                .collect(),
        });
    }

    for r in client
        .query(
            "SELECT tgrelid::int8, tgname::text FROM pg_trigger
              WHERE tgrelid = ANY($1::oid[]) AND NOT tgisinternal AND tgenabled <> 'D'
              ORDER BY tgrelid, tgname",
            &[&oid_param],
        )
        .await
        .map_err(err("listing triggers"))?
    {
        if let Some(t) = tables.get_mut(&r.get::<_, i64>(0)) {
            t.user_triggers.push(r.get(1));
        }
    }

    for r in client
        .query(
            "SELECT i.indrelid::int8, ci.relname::text, pg_get_indexdef(i.indexrelid)
               FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid
               JOIN pg_class t ON t.oid = i.indrelid
              WHERE i.indrelid = ANY($1::oid[]) AND NOT i.indisunique AND NOT i.indisprimary
                -- only what this role can build again: table owner with CREATE on the schema
                AND pg_has_role(t.relowner, 'USAGE') AND has_schema_privilege(ci.relnamespace, 'CREATE')
                AND NOT i.indisexclusion AND i.indisvalid AND NOT i.indisreplident AND NOT i.indisclustered
                AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
                AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)
              ORDER BY i.indrelid, ci.relname",
            &[&oid_param],
        )
        .await
        .map_err(err("listing indexes"))?
    {
        if let Some(t) = tables.get_mut(&r.get::<_, i64>(0)) {
            t.secondary_indexes.push(SecondaryIndex {
                table: t.name.clone(),
                name: r.get(1),
                definition: r.get(2),
            });
        }
    }

    // Foreign keys: only the top constraint of a partition tree (conparentid = 0); the
    // partitioned parents then stand for their partitions.
    let in_scope_or_root = |oid: i64, tables: &BTreeMap<i64, Table>| {
        tables.contains_key(&oid)
            || tables
                .values()
                .any(|t| t.partition_of.as_ref() == names.get(&oid))
    };
    let mut foreign_keys = Vec::new();
    for r in client
        .query(
            "SELECT con.conname::text, con.conrelid::int8, con.confrelid::int8,
                    pg_get_constraintdef(con.oid)
               FROM pg_constraint con
              WHERE con.contype = 'f' AND con.conparentid = 0
              ORDER BY con.conrelid, con.conname",
            &[],
        )
        .await
        .map_err(err("listing foreign keys"))?
    {
        let (child, parent): (i64, i64) = (r.get(1), r.get(2));
        let (Some(cn), Some(pn)) = (names.get(&child), names.get(&parent)) else {
            continue;
        };
        if in_scope_or_root(child, &tables) || in_scope_or_root(parent, &tables) {
            foreign_keys.push(ForeignKey {
                name: r.get(0),
                table: cn.clone(),
                references: pn.clone(),
                definition: r.get(3),
            });
        }
    }

    let sequences = load_sequences(client, role, scope, &tables, &oid_param).await?;

    let mut tables: Vec<Table> = tables.into_values().collect();
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Catalog {
        server,
        tables,
        foreign_keys,
        sequences,
    })
}

/// Sequences in scope: owned by (or identity of) an in-scope table, used by a default of an
/// in-scope column, or - when no table filter is given - any standalone sequence of an
/// in-scope schema. Values are read later by [`read_sequence_values`].
async fn load_sequences(
    client: &Client,
    role: Role,
    scope: &Scope,
    tables: &BTreeMap<i64, Table>,
    table_oids: &[u32],
) -> Result<Vec<Sequence>> {
    let rows = client
        .query(
            "SELECT s.oid::int8, n.nspname::text, s.relname::text,
                    own.refobjid::int8, own_n.nspname::text, own_c.relname::text,
                    EXISTS (SELECT 1 FROM pg_depend dd JOIN pg_attrdef ad ON dd.classid = 'pg_attrdef'::regclass
                                   AND dd.objid = ad.oid
                             WHERE dd.refclassid = 'pg_class'::regclass AND dd.refobjid = s.oid
                               AND ad.adrelid = ANY($1::oid[])),
                    has_sequence_privilege(s.oid, 'UPDATE')
               FROM pg_class s
               JOIN pg_namespace n ON n.oid = s.relnamespace
               LEFT JOIN pg_depend own ON own.classid = 'pg_class'::regclass AND own.objid = s.oid
                    AND own.refclassid = 'pg_class'::regclass AND own.deptype IN ('a', 'i')
               LEFT JOIN pg_class own_c ON own_c.oid = own.refobjid
               LEFT JOIN pg_namespace own_n ON own_n.oid = own_c.relnamespace
              WHERE s.relkind = 'S'
                AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                 WHERE d.classid = 'pg_class'::regclass AND d.objid = s.oid
                                   AND d.deptype = 'e')
              ORDER BY n.nspname, s.relname",
            &[&table_oids],
        )
        .await
        .map_err(|e| Error::pg(role, "listing sequences", e))?;
    let mut out = Vec::new();
    for r in rows {
        let name = QualName::new(r.get::<_, String>(1), r.get::<_, String>(2));
        let owner_oid: Option<i64> = r.get(3);
        let owned_by = match (r.get::<_, Option<String>>(4), r.get::<_, Option<String>>(5)) {
            (Some(s), Some(n)) => Some(QualName::new(s, n)),
            _ => None,
        };
        let used_by_default: bool = r.get(6);
        let owner_in_scope = owner_oid.is_some_and(|o| tables.contains_key(&o));
        let keep = owner_in_scope
            || used_by_default
            || (owned_by.is_none()
                && !scope.has_table_filter()
                && scope.schema_in_scope(&name.schema));
        if keep {
            out.push(Sequence {
                name,
                owned_by,
                last_value: 0,
                is_called: false,
                can_set: r.get(7),
            });
        }
    }
    Ok(out)
}

/// Reads `last_value` and `is_called` of each sequence.
pub async fn read_sequence_values(
    client: &Client,
    role: Role,
    seqs: &mut [Sequence],
) -> Result<()> {
    for s in seqs.iter_mut() {
        let row = client
            .query_one(
                &format!("SELECT last_value, is_called FROM {}", s.name.sql()),
                &[],
            )
            .await
            .map_err(|e| Error::pg(role, format!("reading sequence {}", s.name), e))?;
        s.last_value = row.get(0);
        s.is_called = row.get(1);
    }
    Ok(())
}

/// Tables with at most this many (estimated) rows get exact key quantiles; larger ones are
/// sampled with `TABLESAMPLE SYSTEM`.
pub const EXACT_SAMPLE_ROWS: i64 = 2_000_000;

/// Samples key values of a table, sorted, as text: exact quantiles when the table is small or
/// has never been analyzed, block sampling (TABLESAMPLE SYSTEM) when it is large. Returns about
/// `want` boundaries; the planner keeps chunks open-ended so nothing outside them is lost.
pub async fn sample_key_bounds(
    client: &Client,
    role: Role,
    table: &Table,
    key: &Key,
    want: usize,
) -> Result<Vec<Vec<String>>> {
    if want == 0 {
        return Ok(Vec::new());
    }
    // Text outputs get their own names: `ORDER BY "id"` would otherwise sort the text output
    // column (lexicographic: "10" < "9") instead of the key.
    let sel = key
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            format!(
                "{}::text AS dbsync_k{i}",
                crate::ident::quote_ident(&c.name)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let order = crate::plan::key_order_by(key, Some("dbsync_t"));
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
    let all = if est_rows <= EXACT_SAMPLE_ROWS {
        // Exact: every n-th key in key order, n from the real row count (same pass), so only
        // about `want` keys reach us even when the statistics are stale.
        let parts = want as i64 + 1;
        run(format!(
            "SELECT {sel} FROM (SELECT dbsync_t.*, row_number() OVER (ORDER BY {order}) AS dbsync_rn,
                                       count(*) OVER () AS dbsync_n
               FROM ONLY {src} AS dbsync_t) AS dbsync_t
             WHERE dbsync_rn % GREATEST(1, dbsync_n / {parts}) = 0 ORDER BY dbsync_rn LIMIT {want}",
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
    Ok(crate::plan::pick_quantiles(all, want))
}
