//! The data rules' SQL: a table's row condition as the source's export applies it, and the
//! catalog reads rows meet on their way into the target, beyond a table's own columns: the
//! enum types the columns use (with their labels, compared side to side) and the CHECK
//! constraints PostgreSQL does not hold as valid, of tables, their partitioned parents and
//! the domains the columns use (set aside during a load).

use crate::error::{Error, Result, Role};
use crate::model::catalog::{EnumType, NotValidCheck};
use crate::model::ident::{quote_ident, QualName};
use crate::model::rules::{ParentRow, RowCondition};
use tokio_postgres::Client;

/// `parts` of the row condition of `table` as SQL (one `AND` of them; None for none): a
/// filter in parentheses, a parent exported as `(key IS NULL OR EXISTS (SELECT 1 FROM parent
/// WHERE keys match AND the parent's own condition))`. Columns of the row are qualified by
/// `table`, a filter's unqualified names resolve to the table it was written for.
pub fn condition_sql(parts: &[RowCondition], table: &QualName) -> Option<String> {
    let outer = table.sql();
    let sql: Vec<String> = parts
        .iter()
        .map(|p| match p {
            RowCondition::Filter(f) => format!("({f})"),
            RowCondition::ParentExported(r) => parent_exported_sql(r, &outer),
        })
        .collect();
    (!sql.is_empty()).then(|| sql.join(" AND "))
}

fn parent_exported_sql(r: &ParentRow, outer: &str) -> String {
    let parent = r.parent.sql();
    let from = match r.through_root {
        true => parent.clone(),
        false => format!("ONLY {parent}"),
    };
    let mut conds: Vec<String> = r
        .columns
        .iter()
        .zip(&r.referenced_columns)
        .map(|(c, p)| format!("{parent}.{} = {outer}.{}", quote_ident(p), quote_ident(c)))
        .collect();
    conds.extend(condition_sql(&r.condition, &r.parent));
    let nulls: Vec<String> = r
        .columns
        .iter()
        .map(|c| format!("{outer}.{} IS NULL", quote_ident(c)))
        .collect();
    format!(
        "({} OR EXISTS (SELECT 1 FROM {from} WHERE {}))",
        nulls.join(" OR "),
        conds.join(" AND ")
    )
}

/// CHECK constraints PostgreSQL does not hold as valid (`NOT VALID`) that a COPY into the
/// tables `oids` would apply: declared on a table or on one of its partitioned ancestors
/// (their copies on partitions go with them), or on a domain a column uses directly or as
/// the element of an array.
pub async fn not_valid_checks(
    client: &Client,
    role: Role,
    oids: &[u32],
) -> Result<Vec<NotValidCheck>> {
    let rows = client
        .query(
            "WITH rels AS (SELECT a.relid::oid AS relid FROM unnest($1::oid[]) AS r(oid),
                                LATERAL pg_partition_ancestors(r.oid) AS a(relid)
                           UNION SELECT unnest($1::oid[])),
                  coltypes AS (SELECT t.oid, t.typelem
                                 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                                WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0
                                  AND NOT a.attisdropped),
                  domains AS (SELECT oid FROM coltypes UNION SELECT typelem FROM coltypes)
             SELECT n.nspname::text, c.relname::text, false, con.conname::text,
                    pg_get_constraintdef(con.oid)
               FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE con.contype = 'c' AND NOT con.convalidated AND con.conislocal
                AND con.conrelid IN (SELECT relid FROM rels)
             UNION ALL
             SELECT n.nspname::text, t.typname::text, true, con.conname::text,
                    pg_get_constraintdef(con.oid)
               FROM pg_constraint con JOIN pg_type t ON t.oid = con.contypid
               JOIN pg_namespace n ON n.oid = t.typnamespace
              WHERE con.contype = 'c' AND NOT con.convalidated
                AND t.typtype = 'd' AND t.oid IN (SELECT oid FROM domains)
              ORDER BY 1, 2, 4",
            &[&oids],
        )
        .await
        .map_err(|e| Error::pg(role, "listing NOT VALID check constraints", e))?;
    Ok(rows
        .iter()
        .map(|r| NotValidCheck {
            on: QualName::new(r.get::<_, String>(0), r.get::<_, String>(1)),
            domain: r.get(2),
            name: r.get(3),
            definition: r.get(4),
        })
        .collect())
}

/// The enum types the columns of `oids` use: directly, as array elements, or under a
/// domain (over the enum or an array of it).
pub async fn enums(client: &Client, role: Role, oids: &[u32]) -> Result<Vec<EnumType>> {
    let rows = client
        .query(
            "WITH RECURSIVE used(oid) AS (
                 SELECT a.atttypid FROM pg_attribute a
                  WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
                 UNION
                 SELECT x FROM used u JOIN pg_type t ON t.oid = u.oid,
                        LATERAL (VALUES (t.typelem), (t.typbasetype)) AS v(x)
                  WHERE x <> 0)
             SELECT n.nspname::text, t.typname::text,
                    array_agg(e.enumlabel::text ORDER BY e.enumsortorder)
               FROM used JOIN pg_type t ON t.oid = used.oid AND t.typtype = 'e'
               JOIN pg_namespace n ON n.oid = t.typnamespace
               JOIN pg_enum e ON e.enumtypid = t.oid
              GROUP BY 1, 2 ORDER BY 1, 2",
            &[&oids],
        )
        .await
        .map_err(|e| Error::pg(role, "listing enum types", e))?;
    Ok(rows
        .iter()
        .map(|r| EnumType {
            name: QualName::new(r.get::<_, String>(0), r.get::<_, String>(1)),
            labels: r.get(2),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    use ParentRow as P;

    #[test]
    fn a_row_condition_is_the_filter_and_an_exists_per_filtered_parent_nested() {
        let eu = || vec![RowCondition::Filter("region = 'eu'".into())];
        let people = QualName::new("app", "people");
        assert_eq!(
            condition_sql(&eu(), &people).as_deref(),
            Some("(region = 'eu')")
        );
        let orders = P::for_tests("people", "person_email", "email", eu());
        assert_eq!(
            condition_sql(std::slice::from_ref(&orders), &QualName::new("app", "orders")).as_deref(),
            Some("(\"app\".\"orders\".\"person_email\" IS NULL OR EXISTS (SELECT 1 FROM ONLY \"app\".\"people\" WHERE \"app\".\"people\".\"email\" = \"app\".\"orders\".\"person_email\" AND (region = 'eu')))")
        );
        let lines = condition_sql(
            &[P::for_tests("orders", "order_id", "id", vec![orders])],
            &QualName::new("app", "lines"),
        )
        .expect("a condition");
        assert!(lines.starts_with("(\"app\".\"lines\".\"order_id\" IS NULL OR EXISTS (SELECT 1 FROM ONLY \"app\".\"orders\" WHERE \"app\".\"orders\".\"id\" = \"app\".\"lines\".\"order_id\" AND (\"app\".\"orders\".\"person_email\" IS NULL OR EXISTS"), "{lines}");
        assert_eq!(condition_sql(&[], &people), None);
    }

    #[test]
    fn a_partitioned_parent_is_read_through_its_root() {
        let RowCondition::ParentExported(mut r) = P::for_tests("people", "p", "id", vec![]) else {
            unreachable!("a parent");
        };
        r.through_root = true;
        let sql = condition_sql(
            &[RowCondition::ParentExported(r)],
            &QualName::new("app", "x"),
        )
        .expect("a condition");
        assert!(
            sql.contains("EXISTS (SELECT 1 FROM \"app\".\"people\" WHERE"),
            "{sql}"
        );
    }
}
