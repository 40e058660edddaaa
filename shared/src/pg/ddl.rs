//! Catalog reads and writes of the schema bootstrap (`--create-schema`): the definitions of
//! the tables in scope, their partitioned parents, types, sequences and the functions they
//! call, printed by the source's own functions (names come out schema-qualified, since the
//! sessions' `search_path` is `pg_catalog`); which of them the target has; and running the
//! statements on the target in one transaction.

use crate::error::{Error, Result, Role};
use crate::model::catalog::{Sequence, Table};
use crate::model::ddl::{Existing, ExtensionDdl, ObjectDdl, SchemaSource, TableDdl, TypeDdl};
use crate::model::ident::quote_ident;
use tokio_postgres::Client;

/// The OIDs of the tables in scope and of their partitioned ancestors.
const RELS: &str = "WITH input AS (SELECT unnest($1::text[]) AS s, unnest($2::text[]) AS n),
     leaves AS (SELECT c.oid FROM input
                  JOIN pg_namespace ns ON ns.nspname = input.s
                  JOIN pg_class c ON c.relnamespace = ns.oid AND c.relname = input.n),
     rels AS (SELECT oid FROM leaves
              UNION SELECT a.relid FROM leaves, LATERAL pg_partition_ancestors(leaves.oid) AS a(relid))";

/// Reads what creating the tables in scope (and their sequences) would take.
///
/// `version_num` is the source's `server_version_num`: the catalogs differ between majors
/// (multiranges from 14; NOT NULL and NOT ENFORCED constraints in `pg_constraint` from 18),
/// and each is read as its major has it.
pub async fn read_source(
    client: &Client,
    version_num: i32,
    tables: &[Table],
    sequences: &[Sequence],
) -> Result<SchemaSource> {
    let schemas: Vec<&str> = tables.iter().map(|t| t.name.schema.as_str()).collect();
    let names: Vec<&str> = tables.iter().map(|t| t.name.name.as_str()).collect();
    let mut out = SchemaSource {
        tables: read_tables(client, version_num, &schemas, &names).await?,
        ..Default::default()
    };
    read_table_extras(client, &schemas, &names, &mut out.tables).await?;
    let (types, extensions) = read_types(client, version_num, &schemas, &names).await?;
    out.types = types;
    out.extensions = extensions;
    out.functions = read_functions(client, &schemas, &names).await?;
    let seq_names: Vec<String> = sequences.iter().map(|s| s.name.sql()).collect();
    out.sequences = read_sequences(client, &seq_names).await?;
    out.schemas = out
        .tables
        .iter()
        .map(|t| t.schema.clone())
        .chain(
            out.types
                .iter()
                .filter(|t| t.extension.is_none())
                .map(|t| t.schema.clone()),
        )
        .chain(sequences.iter().map(|s| s.name.schema.clone()))
        .chain(out.extensions.iter().map(|e| e.schema.clone()))
        .map(|s| format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(&s)))
        .collect();
    Ok(out)
}

fn err(what: &str) -> impl Fn(tokio_postgres::Error) -> Error + '_ {
    move |e| {
        Error::pg(
            Role::Source,
            format!("reading the schema to create ({what})"),
            e,
        )
    }
}

/// PostgreSQL 18 keeps each NOT NULL as a named constraint: it is created with its name.
/// Before 18 a NOT NULL has no name (and older targets accept the clause and ignore it).
const NOT_NULL_18: &str = "coalesce((SELECT format(' CONSTRAINT %I NOT NULL', n.conname) FROM pg_constraint n
                      WHERE n.conrelid = c.oid AND n.contype = 'n' AND n.conkey = ARRAY[a.attnum]), ' NOT NULL')";
/// What of a table only 18 can hold: its virtual generated columns and NOT ENFORCED constraints.
const NEEDS_18: &str = "ARRAY(SELECT format('virtual generated column %I', a.attname) FROM pg_attribute a
                        WHERE a.attrelid = c.oid AND a.attgenerated = 'v' AND NOT a.attisdropped ORDER BY a.attnum)
                  || ARRAY(SELECT format('NOT ENFORCED constraint %I', k.conname) FROM pg_constraint k
                            WHERE k.conrelid = c.oid AND NOT k.conenforced ORDER BY k.conname)";

async fn read_tables(
    client: &Client,
    version_num: i32,
    schemas: &[&str],
    names: &[&str],
) -> Result<Vec<TableDdl>> {
    let pg18 = version_num >= 180000;
    let not_null = if pg18 { NOT_NULL_18 } else { "' NOT NULL'" };
    let needs_18 = if pg18 { NEEDS_18 } else { "ARRAY[]::text[]" };
    let sql = format!(
        "{RELS}
         SELECT c.oid::regclass::text, (SELECT nspname::text FROM pg_namespace WHERE oid = c.relnamespace),
                (SELECT count(*) FROM pg_partition_ancestors(c.oid))::int4
                  + (SELECT count(*) FROM pg_inherits i WHERE i.inhrelid = c.oid AND NOT c.relispartition)::int4,
                format('CREATE %sTABLE %s %s%s%s%s',
                  CASE c.relpersistence WHEN 'u' THEN 'UNLOGGED ' ELSE '' END,
                  c.oid::regclass,
                  CASE WHEN c.relispartition THEN
                    format('PARTITION OF %s %s', (SELECT i.inhparent::regclass FROM pg_inherits i WHERE i.inhrelid = c.oid),
                           pg_get_expr(c.relpartbound, c.oid))
                  ELSE '(' || coalesce((
                    SELECT string_agg(format('%I %s%s%s%s', a.attname, format_type(a.atttypid, a.atttypmod),
                             CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation THEN
                               (SELECT format(' COLLATE %I.%I', cn.nspname, co.collname) FROM pg_collation co
                                  JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation)
                             ELSE '' END,
                             CASE WHEN a.attgenerated = 's' THEN format(' GENERATED ALWAYS AS (%s) STORED', pg_get_expr(d.adbin, d.adrelid))
                                  WHEN a.attgenerated = 'v' THEN format(' GENERATED ALWAYS AS (%s) VIRTUAL', pg_get_expr(d.adbin, d.adrelid))
                                  WHEN a.attidentity <> '' THEN (
                                    SELECT format(' GENERATED %s AS IDENTITY (SEQUENCE NAME %s START WITH %s INCREMENT BY %s MINVALUE %s MAXVALUE %s CACHE %s%s)',
                                             CASE a.attidentity WHEN 'a' THEN 'ALWAYS' ELSE 'BY DEFAULT' END,
                                             s.seqrelid::regclass, s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache,
                                             CASE WHEN s.seqcycle THEN ' CYCLE' ELSE '' END)
                                      FROM pg_depend dep JOIN pg_sequence s ON s.seqrelid = dep.objid
                                     WHERE dep.classid = 'pg_class'::regclass AND dep.refobjid = c.oid
                                       AND dep.refobjsubid = a.attnum AND dep.deptype = 'i')
                                  WHEN d.adbin IS NOT NULL THEN ' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid)
                                  ELSE '' END,
                             CASE WHEN a.attnotnull THEN {not_null} ELSE '' END), ', ' ORDER BY a.attnum)
                      FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attislocal), '') || ')'
                  END,
                  coalesce((SELECT ' INHERITS (' || string_agg(i.inhparent::regclass::text, ', ' ORDER BY i.inhseqno) || ')'
                              FROM pg_inherits i WHERE i.inhrelid = c.oid AND NOT c.relispartition), ''),
                  CASE WHEN c.relkind = 'p' THEN ' PARTITION BY ' || pg_get_partkeydef(c.oid) ELSE '' END,
                  CASE WHEN c.reloptions IS NOT NULL THEN ' WITH (' || array_to_string(c.reloptions, ', ') || ')' ELSE '' END),
                {needs_18}
           FROM rels JOIN pg_class c ON c.oid = rels.oid
          ORDER BY 3, 1"
    );
    let rows = client
        .query(sql.as_str(), &[&schemas, &names])
        .await
        .map_err(err("tables"))?;
    Ok(rows
        .iter()
        .map(|r| TableDdl {
            name: r.get(0),
            schema: r.get::<_, String>(1),
            depth: r.get(2),
            create: r.get(3),
            needs_18: r.get(4),
            ..Default::default()
        })
        .collect())
}

/// Per table: its statements after `CREATE TABLE` (kind 0: keys and checks, 1: indexes,
/// 2: row security and policies, 3: triggers, 4: comments) and its foreign keys (kind 9).
async fn read_table_extras(
    client: &Client,
    schemas: &[&str],
    names: &[&str],
    tables: &mut [TableDdl],
) -> Result<()> {
    let sql = format!(
        "{RELS}
         SELECT con.conrelid::regclass::text, CASE WHEN con.contype = 'f' THEN 9 ELSE 0 END,
                format('ALTER TABLE %s ADD CONSTRAINT %I %s', con.conrelid::regclass, con.conname,
                       pg_get_constraintdef(con.oid)),
                CASE con.contype WHEN 'p' THEN 0 WHEN 'u' THEN 1 WHEN 'x' THEN 2 ELSE 3 END, con.conname::text
           FROM pg_constraint con JOIN rels ON rels.oid = con.conrelid
          WHERE con.contype IN ('p', 'u', 'x', 'c', 'f') AND con.conparentid = 0 AND con.coninhcount = 0
         UNION ALL
         SELECT i.indrelid::regclass::text, 1, replace(pg_get_indexdef(i.indexrelid), ' ON ONLY ', ' ON '), 0,
                i.indexrelid::regclass::text
           FROM pg_index i JOIN rels ON rels.oid = i.indrelid
          WHERE NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid
                               AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x'))
            AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)
         UNION ALL
         SELECT c.oid::regclass::text, 2, format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', c.oid::regclass), 0, ''
           FROM pg_class c JOIN rels ON rels.oid = c.oid WHERE c.relrowsecurity
         UNION ALL
         SELECT c.oid::regclass::text, 2, format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', c.oid::regclass), 1, ''
           FROM pg_class c JOIN rels ON rels.oid = c.oid WHERE c.relforcerowsecurity
         UNION ALL
         SELECT p.polrelid::regclass::text, 2,
                format('CREATE POLICY %I ON %s AS %s FOR %s TO %s%s%s', p.polname, p.polrelid::regclass,
                       CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
                       CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                                     WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
                       CASE WHEN p.polroles = '{{0}}' THEN 'PUBLIC'
                            ELSE (SELECT string_agg(quote_ident(rolname), ', ') FROM pg_roles WHERE oid = ANY(p.polroles)) END,
                       coalesce(' USING (' || pg_get_expr(p.polqual, p.polrelid) || ')', ''),
                       coalesce(' WITH CHECK (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')', '')),
                2, p.polname::text
           FROM pg_policy p JOIN rels ON rels.oid = p.polrelid
         UNION ALL
         SELECT t.tgrelid::regclass::text, 3, pg_get_triggerdef(t.oid), 0, t.tgname::text
           FROM pg_trigger t JOIN rels ON rels.oid = t.tgrelid
          WHERE NOT t.tgisinternal AND t.tgparentid = 0
         UNION ALL
         SELECT t.tgrelid::regclass::text, 3,
                format('ALTER TABLE %s %s TRIGGER %I', t.tgrelid::regclass,
                       CASE t.tgenabled WHEN 'D' THEN 'DISABLE' WHEN 'R' THEN 'ENABLE REPLICA' ELSE 'ENABLE ALWAYS' END,
                       t.tgname), 1, t.tgname::text
           FROM pg_trigger t JOIN rels ON rels.oid = t.tgrelid
          WHERE NOT t.tgisinternal AND t.tgparentid = 0 AND t.tgenabled <> 'O'
         UNION ALL
         SELECT d.objoid::regclass::text, 4,
                CASE WHEN d.objsubid = 0 THEN format('COMMENT ON TABLE %s IS %L', d.objoid::regclass, d.description)
                     ELSE format('COMMENT ON COLUMN %s.%I IS %L', d.objoid::regclass,
                                 (SELECT attname FROM pg_attribute WHERE attrelid = d.objoid AND attnum = d.objsubid),
                                 d.description) END, d.objsubid, ''
           FROM pg_description d JOIN rels ON rels.oid = d.objoid
          WHERE d.classoid = 'pg_class'::regclass
          ORDER BY 1, 2, 4, 5"
    );
    let rows = client
        .query(sql.as_str(), &[&schemas, &names])
        .await
        .map_err(err("keys, indexes, policies, triggers"))?;
    for r in rows {
        let (table, kind, stmt): (String, i32, String) = (r.get(0), r.get(1), r.get(2));
        if let Some(t) = tables.iter_mut().find(|t| t.name == table) {
            if kind == 9 {
                t.foreign_keys.push(stmt);
            } else {
                t.after.push(stmt);
            }
        }
    }
    Ok(())
}

/// The types the tables' columns use, found through arrays, domains, composites and ranges;
/// those of extensions stand for their extension.
async fn read_types(
    client: &Client,
    version_num: i32,
    schemas: &[&str],
    names: &[&str],
) -> Result<(Vec<TypeDdl>, Vec<ExtensionDdl>)> {
    let sql = types_sql(version_num);
    let rows = client
        .query(sql.as_str(), &[&schemas, &names])
        .await
        .map_err(err("types"))?;
    let mut types = Vec::new();
    let mut extensions: Vec<ExtensionDdl> = Vec::new();
    for r in rows {
        let t = type_of(&r);
        if let (Some(e), Some(s)) = (&t.extension, r.get::<_, Option<String>>(2)) {
            let ext = ExtensionDdl {
                create: format!(
                    "CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {}",
                    quote_ident(e),
                    quote_ident(&s)
                ),
                name: e.clone(),
                schema: s,
            };
            if !extensions.contains(&ext) {
                extensions.push(ext);
            }
        }
        types.push(t);
    }
    Ok((types, extensions))
}

/// [`read_types`]'s query, as the source's major (`version_num`) has its catalogs.
fn types_sql(version_num: i32) -> String {
    // A range type has a multirange type from 14 on; naming it keeps the source's name.
    let multirange = if version_num >= 140000 {
        "', MULTIRANGE_TYPE_NAME = ' || r.rngmultitypid::regtype"
    } else {
        "''"
    };
    format!(
        "{RELS},
         used AS (SELECT DISTINCT a.atttypid AS oid FROM pg_attribute a JOIN rels ON rels.oid = a.attrelid
                   WHERE a.attnum > 0 AND NOT a.attisdropped),
         deps AS (
           WITH RECURSIVE walk(oid) AS (
             SELECT oid FROM used
             UNION
             SELECT x.oid FROM walk w JOIN pg_type t ON t.oid = w.oid,
               LATERAL (SELECT t.typelem WHERE t.typelem <> 0
                        UNION ALL SELECT t.typbasetype WHERE t.typbasetype <> 0
                        UNION ALL SELECT a.atttypid FROM pg_attribute a
                                   WHERE a.attrelid = t.typrelid AND t.typrelid <> 0 AND a.attnum > 0 AND NOT a.attisdropped
                        UNION ALL SELECT r.rngsubtype FROM pg_range r WHERE r.rngtypid = t.oid) AS x(oid))
           SELECT oid FROM walk)
         SELECT t.oid::regtype::text, e.extname::text, en.nspname::text, t.typtype::text,
                n.nspname::text,
                CASE t.typtype
                  WHEN 'e' THEN ARRAY[format('CREATE TYPE %s AS ENUM (%s)', t.oid::regtype,
                       (SELECT string_agg(quote_literal(enumlabel), ', ' ORDER BY enumsortorder) FROM pg_enum WHERE enumtypid = t.oid))]
                  WHEN 'd' THEN ARRAY[format('CREATE DOMAIN %s AS %s%s%s', t.oid::regtype, format_type(t.typbasetype, t.typtypmod),
                       coalesce(' DEFAULT ' || t.typdefault, ''), CASE WHEN t.typnotnull THEN ' NOT NULL' ELSE '' END)]
                     || ARRAY(SELECT format('ALTER DOMAIN %s ADD CONSTRAINT %I %s', t.oid::regtype, k.conname, pg_get_constraintdef(k.oid))
                                FROM pg_constraint k WHERE k.contypid = t.oid AND k.contype = 'c' ORDER BY k.conname)
                  WHEN 'c' THEN ARRAY[format('CREATE TYPE %s AS (%s)', t.oid::regtype,
                       (SELECT string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)), ', ' ORDER BY a.attnum)
                          FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped))]
                  WHEN 'r' THEN ARRAY[(SELECT format('CREATE TYPE %s AS RANGE (SUBTYPE = %s, SUBTYPE_OPCLASS = %I.%I%s%s%s)',
                       t.oid::regtype, format_type(r.rngsubtype, NULL), ocn.nspname, oc.opcname,
                       CASE WHEN r.rngcanonical <> 0 THEN ', CANONICAL = ' || r.rngcanonical::regproc ELSE '' END,
                       CASE WHEN r.rngsubdiff <> 0 THEN ', SUBTYPE_DIFF = ' || r.rngsubdiff::regproc ELSE '' END,
                       {multirange})
                       FROM pg_range r JOIN pg_opclass oc ON oc.oid = r.rngsubopc JOIN pg_namespace ocn ON ocn.oid = oc.opcnamespace
                      WHERE r.rngtypid = t.oid)]
                  ELSE ARRAY[]::text[] END,
                (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) <> 'c')
           FROM deps JOIN pg_type t ON t.oid = deps.oid
           JOIN pg_namespace n ON n.oid = t.typnamespace
           LEFT JOIN pg_depend dx ON dx.classid = 'pg_type'::regclass AND dx.objid = t.oid AND dx.deptype = 'e'
           LEFT JOIN pg_extension e ON e.oid = dx.refobjid
           LEFT JOIN pg_namespace en ON en.oid = e.extnamespace
          WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
            AND NOT (t.typelem <> 0 AND t.typlen = -1 AND t.typtype = 'b' AND e.extname IS NULL)
            AND t.typtype <> 'm'
          ORDER BY t.oid"
    )
}

/// A row of [`read_types`]'s query as a type to create, or to refuse.
fn type_of(r: &tokio_postgres::Row) -> TypeDdl {
    let extension: Option<String> = r.get(1);
    let kind: String = r.get(3);
    let table_rowtype: bool = r.get(6);
    let refused = match (&extension, kind.as_str()) {
        (Some(_), _) => None,
        (None, _) if table_rowtype => Some("the row type of a table".to_string()),
        (None, "b") => Some("a base type (written in C)".to_string()),
        (None, "e" | "d" | "c" | "r") => None,
        (None, k) => Some(format!("a type of kind '{k}'")),
    };
    TypeDdl {
        name: r.get(0),
        schema: r.get(4),
        extension,
        ddl: r.get(5),
        refused,
    }
}

/// User functions the tables' triggers, defaults, generated columns and checks call.
async fn read_functions(
    client: &Client,
    schemas: &[&str],
    names: &[&str],
) -> Result<Vec<ObjectDdl>> {
    let sql = format!(
        "{RELS},
         called AS (SELECT t.tgfoid AS oid FROM pg_trigger t JOIN rels ON rels.oid = t.tgrelid WHERE NOT t.tgisinternal
                    UNION SELECT d.refobjid FROM pg_depend d JOIN pg_attrdef ad ON d.classid = 'pg_attrdef'::regclass
                             AND d.objid = ad.oid JOIN rels ON rels.oid = ad.adrelid
                          WHERE d.refclassid = 'pg_proc'::regclass
                    UNION SELECT d.refobjid FROM pg_depend d JOIN pg_constraint k ON d.classid = 'pg_constraint'::regclass
                             AND d.objid = k.oid JOIN rels ON rels.oid = k.conrelid
                          WHERE d.refclassid = 'pg_proc'::regclass)
         SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid)
           FROM called JOIN pg_proc p ON p.oid = called.oid JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
            AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = 'pg_proc'::regclass
                               AND x.objid = p.oid AND x.deptype = 'e')
          ORDER BY p.oid"
    );
    let rows = client
        .query(sql.as_str(), &[&schemas, &names])
        .await
        .map_err(err("functions"))?;
    Ok(rows
        .iter()
        .map(|r| ObjectDdl {
            name: r.get(0),
            create: r.get(1),
            after: vec![],
        })
        .collect())
}

/// The sequences in scope other than identity sequences (created with their column), with
/// the `OWNED BY` a serial column's sequence has.
async fn read_sequences(client: &Client, names: &[String]) -> Result<Vec<ObjectDdl>> {
    let rows = client
        .query(
            "SELECT s.seqrelid::regclass::text,
                    format('CREATE SEQUENCE %s AS %s INCREMENT BY %s MINVALUE %s MAXVALUE %s START WITH %s CACHE %s%s',
                           s.seqrelid::regclass, format_type(s.seqtypid, NULL), s.seqincrement, s.seqmin,
                           s.seqmax, s.seqstart, s.seqcache, CASE WHEN s.seqcycle THEN ' CYCLE' ELSE '' END),
                    ARRAY(SELECT format('ALTER SEQUENCE %s OWNED BY %s.%I', s.seqrelid::regclass, d.refobjid::regclass, a.attname)
                            FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                           WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid
                             AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'a')
               FROM unnest($1::text[]) AS x(name) JOIN pg_sequence s ON s.seqrelid = to_regclass(x.name)
              WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                                   AND d.objid = s.seqrelid AND d.deptype = 'i')
              ORDER BY s.seqrelid",
            &[&names],
        )
        .await
        .map_err(err("sequences"))?;
    Ok(rows
        .iter()
        .map(|r| ObjectDdl {
            name: r.get(0),
            create: r.get(1),
            after: r.get(2),
        })
        .collect())
}

/// Which of `source`'s objects the target has.
pub async fn read_existing(client: &Client, source: &SchemaSource) -> Result<Existing> {
    let names = |it: &mut dyn Iterator<Item = &String>| it.cloned().collect::<Vec<String>>();
    let tables = names(&mut source.tables.iter().map(|t| &t.name));
    let types = names(&mut source.types.iter().map(|t| &t.name));
    let functions = names(&mut source.functions.iter().map(|f| &f.name));
    let sequences = names(&mut source.sequences.iter().map(|s| &s.name));
    let rows = client
        .query(
            "SELECT 't', x FROM unnest($1::text[]) x WHERE to_regclass(x) IS NOT NULL
             UNION ALL SELECT 'y', x FROM unnest($2::text[]) x WHERE to_regtype(x) IS NOT NULL
             UNION ALL SELECT 'f', x FROM unnest($3::text[]) x WHERE to_regprocedure(x) IS NOT NULL
             UNION ALL SELECT 's', x FROM unnest($4::text[]) x WHERE to_regclass(x) IS NOT NULL
             UNION ALL SELECT 'e', extname::text FROM pg_extension
             UNION ALL SELECT 'a', name::text FROM pg_available_extensions
             UNION ALL SELECT 'v', current_setting('server_version_num')",
            &[&tables, &types, &functions, &sequences],
        )
        .await
        .map_err(|e| Error::pg(Role::Target, "reading which tables and types exist", e))?;
    let mut out = Existing::default();
    for r in rows {
        let (kind, name): (&str, String) = (r.get(0), r.get(1));
        if kind == "v" {
            out.version_num = name.parse().unwrap_or_default();
            continue;
        }
        let set = match kind {
            "t" => &mut out.tables,
            "y" => &mut out.types,
            "f" => &mut out.functions,
            "s" => &mut out.sequences,
            "e" => &mut out.extensions,
            _ => &mut out.available_extensions,
        };
        set.insert(name);
    }
    Ok(out)
}

/// Runs the statements on the target in one transaction: all of them, or none. An error
/// names the statement that failed.
pub async fn apply(client: &mut Client, statements: &[String]) -> Result<()> {
    let tx = client
        .transaction()
        .await
        .map_err(|e| Error::pg(Role::Target, "starting the schema transaction", e))?;
    for s in statements {
        tx.batch_execute(s).await.map_err(|e| {
            let head: String = s.chars().take(120).collect();
            Error::pg(Role::Target, format!("creating the schema: {head}"), e)
        })?;
    }
    tx.commit()
        .await
        .map_err(|e| Error::pg(Role::Target, "committing the new schema", e))
}
