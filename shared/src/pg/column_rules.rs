//! The column rules' SQL: the expression the source's export computes a ruled column with,
//! from what `plan::column_rules` decided for the column's type. The keyed hash is an HMAC
//! over the column's text form, from the two padded keys the source session holds as
//! settings (so the key itself never appears in SQL, plans or manifests).

use crate::model::ident::{quote_ident, quote_literal};
use crate::model::rules::{Computed, ComputedColumn, IPAD_SETTING, OPAD_SETTING};

const FIRST_NAMES: [&str; 32] = [
    "Ada", "Alan", "Alice", "Amir", "Ana", "Ben", "Chen", "Clara", "Dev", "Elena", "Emil",
    "Fatima", "Grace", "Hana", "Ivan", "Jonas", "Kai", "Lena", "Luis", "Maya", "Nia", "Omar",
    "Priya", "Quinn", "Rosa", "Sam", "Sofia", "Tariq", "Uma", "Victor", "Yuki", "Zoe",
];
const LAST_NAMES: [&str; 32] = [
    "Adams", "Berg", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Hansen", "Ito", "Jensen",
    "Kim", "Larsen", "Moreau", "Nakamura", "Okafor", "Patel", "Quist", "Rossi", "Silva", "Tanaka",
    "Ueda", "Varga", "Weber", "Xu", "Yilmaz", "Zhang", "Novak", "Lopez", "Meyer", "Khan", "Sato",
    "Olsen",
];

/// The expression that computes `c`'s value, cast to the column's type.
pub fn column_sql(c: &ComputedColumn) -> String {
    let col = quote_ident(&c.column);
    let h = mac_hex(&col);
    let expr = match &c.value {
        Computed::Null => "NULL".to_string(),
        Computed::Value(v) => quote_literal(v),
        Computed::Truncate(n) => format!("left({col}, {n})"),
        Computed::Email => format!("'user_' || left({h}, 16) || '@example.com'"),
        Computed::Phone => format!(
            "'+1 555 ' || lpad(((('x' || left({h}, 8))::bit(32)::int8) % 10000000)::text, 7, '0')"
        ),
        Computed::Name => {
            let m = mac(&col);
            format!(
                "{} || ' ' || {}",
                pick(&FIRST_NAMES, format!("get_byte({m}, 0) % 32")),
                pick(&LAST_NAMES, format!("get_byte({m}, 1) % 32"))
            )
        }
        Computed::HashText => h,
        Computed::HashUuid => format!("left({h}, 32)"),
        Computed::HashInt { bits } => hash_bits(&h, *bits),
    };
    format!("({expr})::{}", c.type_name)
}

/// The HMAC of a column's text form as bytea, computed by the source from the pads its
/// session holds.
fn mac(column: &str) -> String {
    format!(
        "sha256(decode(current_setting('{OPAD_SETTING}'), 'hex') || \
         sha256(decode(current_setting('{IPAD_SETTING}'), 'hex') || \
         convert_to({column}::text, 'UTF8')))"
    )
}

fn mac_hex(column: &str) -> String {
    format!("encode({}, 'hex')", mac(column))
}

fn pick(list: &[&str], index: String) -> String {
    let items: Vec<String> = list.iter().map(|s| quote_literal(s)).collect();
    format!("(ARRAY[{}])[1 + {index}]", items.join(", "))
}

/// The first `n` bits of the hex hash `h` as an integer with the sign bit cleared (a hash
/// is never negative, whatever its first bit).
fn hash_bits(h: &str, n: u32) -> String {
    let hex = n / 4;
    let mask = (1u64 << (n - 1)) - 1;
    let int = if n == 64 { "int8" } else { "int4" };
    format!("(('x' || left({h}, {hex}))::bit({n})::{int} & {mask})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_of_integers_keep_the_sign_bit_clear() {
        assert_eq!(
            hash_bits("H", 64),
            "(('x' || left(H, 16))::bit(64)::int8 & 9223372036854775807)"
        );
        assert_eq!(
            hash_bits("H", 16),
            "(('x' || left(H, 4))::bit(16)::int4 & 32767)"
        );
    }

    #[test]
    fn an_email_is_the_keyed_hash_of_the_column_from_the_session_pads() {
        let sql = column_sql(&ComputedColumn {
            rule: "email".into(),
            column: "person_email".into(),
            type_name: "text".into(),
            value: Computed::Email,
        });
        assert!(
            sql.starts_with(
                "('user_' || left(encode(sha256(decode(current_setting('dbsync.rules_opad')"
            ),
            "{sql}"
        );
        assert!(
            sql.ends_with("convert_to(\"person_email\"::text, 'UTF8'))), 'hex'), 16) || '@example.com')::text"),
            "{sql}"
        );
    }

    #[test]
    fn a_value_is_cast_to_the_column_type_and_quoted_as_a_literal() {
        let c = ComputedColumn {
            rule: "value".into(),
            column: "Odd Name".into(),
            type_name: "character varying(8)".into(),
            value: Computed::Value("it's".into()),
        };
        assert_eq!(column_sql(&c), "('it''s')::character varying(8)");
        let t = ComputedColumn {
            value: Computed::Truncate(3),
            ..c
        };
        assert_eq!(
            column_sql(&t),
            "(left(\"Odd Name\", 3))::character varying(8)"
        );
    }
}
