//! The core's layering, enforced: every `crate::` path in `shared/src` is read and checked
//! against the layer picture in docs/DESIGN.md (model ← plan; model ← pg, parts; pipeline →
//! plan, pg, parts; cloud → all; error and aws are base modules any layer may use), no two
//! modules import each other in a circle, SQL text and database calls stay in `pg/`,
//! files and functions stay small enough to read, and no function takes a tuple. Comments
//! and doc links do not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What each layer may import, besides itself.
const ALLOWED: &[(&str, &[&str])] = &[
    ("error", &[]),
    ("aws", &["error"]),
    ("model", &["error"]),
    ("plan", &["error", "model"]),
    ("pg", &["error", "model"]),
    ("parts", &["error", "aws", "model"]),
    ("pipeline", &["error", "model", "plan", "pg", "parts"]),
    (
        "cloud",
        &["error", "aws", "model", "plan", "pg", "parts", "pipeline"],
    ),
    (
        "lib",
        &[
            "error", "aws", "model", "plan", "pg", "parts", "pipeline", "cloud",
        ],
    ),
];

/// One source file of the core.
struct Source {
    /// Module path: `["pipeline", "sync"]`; `[]` for lib.rs.
    module: Vec<String>,
    /// Path relative to `shared/src`, for messages.
    path: String,
    /// Code lines without comments, up to the unit tests (`#[cfg(test)]`).
    code: Vec<String>,
    /// Every line, for sizes.
    lines: usize,
}

impl Source {
    fn layer(&self) -> &str {
        self.module.first().map(String::as_str).unwrap_or("lib")
    }
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The line without its `//` comment (a `//` inside a string literal is kept).
fn strip_comment(line: &str) -> String {
    let mut in_str = false;
    let mut prev = ' ';
    let chars: Vec<char> = line.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == '"' && prev != '\\' {
            in_str = !in_str;
        }
        if !in_str && c == '/' && chars.get(i + 1) == Some(&'/') {
            return chars[..i].iter().collect();
        }
        prev = c;
    }
    line.to_string()
}

fn sources() -> Vec<Source> {
    let root = src_dir();
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(&root).expect("under src");
            let mut module: Vec<String> = rel
                .with_extension("")
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            if module.last().is_some_and(|m| m == "mod" || m == "lib") {
                module.pop();
            }
            let text = std::fs::read_to_string(&p).expect("read");
            let code = text
                .lines()
                .take_while(|l| l.trim() != "#[cfg(test)]")
                .map(strip_comment)
                .collect();
            Source {
                module,
                path: rel.display().to_string(),
                code,
                lines: text.lines().count(),
            }
        })
        .collect()
}

/// Every module path a file names: `crate::a::b`, `super::x` resolved against it, and each
/// path of a brace group (`use crate::pg::{ledger, shadow::drop_all}`, over several lines too).
fn references(s: &Source) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    // `super` is the parent module, for a mod.rs as for any other file.
    let mut parent = s.module.clone();
    parent.pop();
    let code = s.code.join("\n");
    for (start, base) in [("crate::", Vec::new()), ("super::", parent)] {
        let mut rest = code.as_str();
        while let Some(i) = rest.find(start) {
            let before = rest[..i].chars().last();
            rest = &rest[i + start.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            path_at(base.clone(), rest, &mut out);
        }
    }
    out
}

/// Reads the path that starts `text` below `base` into `out`; a `{...}` group adds each of
/// its items below the path read so far (`self` is the path itself).
fn path_at(mut path: Vec<String>, text: &str, out: &mut BTreeSet<Vec<String>>) {
    let mut tail = text.trim_start();
    while let Some(seg) = tail
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
        .next()
        .filter(|seg| !seg.is_empty())
    {
        tail = &tail[seg.len()..];
        if seg != "self" {
            path.push(seg.to_string());
        }
        match tail.strip_prefix("::") {
            Some(t) => tail = t.trim_start(),
            None => break,
        }
    }
    let Some(group) = tail.strip_prefix('{') else {
        out.insert(path);
        return;
    };
    let (mut depth, mut item) = (0, String::new());
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                path_at(path.clone(), &std::mem::take(&mut item), out);
                continue;
            }
            _ => {}
        }
        item.push(c);
    }
    if item.trim().is_empty() {
        out.insert(path);
    } else {
        path_at(path, &item, out);
    }
}

#[test]
fn every_layer_imports_only_the_layers_below_it() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut wrong = Vec::new();
    for s in sources() {
        let layer = s.layer().to_string();
        let may = allowed
            .get(layer.as_str())
            .unwrap_or_else(|| panic!("{}: layer {layer} is not in the picture", s.path));
        for r in references(&s) {
            let Some(to) = r.first() else { continue };
            if to != &layer && !may.contains(&to.as_str()) {
                wrong.push(format!(
                    "{} ({layer}) imports crate::{}",
                    s.path,
                    r.join("::")
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "upward or sideways imports:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_modules_import_each_other_in_a_circle() {
    let all = sources();
    let modules: BTreeSet<Vec<String>> = all.iter().map(|s| s.module.clone()).collect();
    // An edge goes to the longest module prefix of the path named.
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for s in &all {
        for r in references(s) {
            let target = (0..=r.len())
                .rev()
                .map(|n| r[..n].to_vec())
                .find(|p| modules.contains(p));
            if let Some(t) = target {
                // A file naming its own submodules or itself is not a dependency.
                if t != s.module && !t.starts_with(&s.module) {
                    edges.entry(s.module.clone()).or_default().insert(t);
                }
            }
        }
    }
    // Depth-first search for a back edge.
    fn visit(
        m: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, u8>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<String>> {
        match state.get(m) {
            Some(2) => return None,
            Some(1) => {
                let from = stack.iter().position(|x| x == m).unwrap_or(0);
                let mut cycle: Vec<String> = stack[from..].iter().map(|x| x.join("::")).collect();
                cycle.push(m.join("::"));
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(m.clone(), 1);
        stack.push(m.clone());
        for n in edges.get(m).into_iter().flatten() {
            if let Some(c) = visit(n, edges, state, stack) {
                return Some(c);
            }
        }
        stack.pop();
        state.insert(m.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for m in &modules {
        if let Some(cycle) = visit(m, &edges, &mut state, &mut Vec::new()) {
            panic!("module cycle: {}", cycle.join(" -> "));
        }
    }
}

/// Whether a line holds a SQL statement in a string literal, or calls the database.
fn speaks_sql(line: &str) -> bool {
    const STATEMENTS: &[&str] = &[
        "SELECT ",
        "INSERT ",
        "UPDATE ",
        "DELETE ",
        "COPY ",
        "ALTER ",
        "CREATE ",
        "DROP ",
        "TRUNCATE ",
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "SET ",
        "ANALYZE ",
        "WITH ",
    ];
    const CALLS: &[&str] = &[
        ".query(",
        ".query_one(",
        ".query_opt(",
        ".execute(",
        ".batch_execute(",
        ".copy_in(",
        ".copy_out(",
        ".transaction(",
    ];
    let quoted = line.split('"').skip(1).step_by(2);
    quoted
        .into_iter()
        .any(|lit| STATEMENTS.iter().any(|k| lit.trim_start().starts_with(k)))
        || CALLS.iter().any(|c| line.contains(c))
}

/// Files outside `pg/` whose query-like text is not SQL, and why.
const NOT_SQL: &[(&str, &str)] = &[(
    "cloud/jobstore/dynamodb.rs",
    "DynamoDB's own Query call and update expressions (SET a = :a)",
)];

#[test]
fn sql_and_database_calls_live_only_under_pg() {
    let mut wrong = Vec::new();
    let exempt = |s: &&Source| NOT_SQL.iter().any(|(p, _)| *p == s.path);
    for s in sources()
        .iter()
        .filter(|s| s.layer() != "pg")
        .filter(|s| !exempt(s))
    {
        for (i, line) in s.code.iter().enumerate() {
            if speaks_sql(line) {
                wrong.push(format!("{}:{}: {}", s.path, i + 1, line.trim()));
            }
        }
    }
    assert!(wrong.is_empty(), "SQL outside pg/:\n{}", wrong.join("\n"));
}

/// Functions of the code (not the unit tests): name, first line, lines, arguments.
fn functions(s: &Source) -> Vec<(String, usize, usize, usize)> {
    let mut out = Vec::new();
    let code = &s.code;
    let mut i = 0;
    while i < code.len() {
        let line = &code[i];
        let t = line.trim_start();
        let indent = line.len() - t.len();
        let sig = [
            "fn ",
            "pub fn ",
            "pub(crate) fn ",
            "async fn ",
            "pub async fn ",
            "pub(crate) async fn ",
        ]
        .iter()
        .find_map(|p| t.strip_prefix(p));
        let Some(rest) = sig else {
            i += 1;
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        // The signature runs to the line that opens the body (or ends a declaration).
        let mut header = String::new();
        let mut j = i;
        while j < code.len() {
            header.push_str(&code[j]);
            let h = code[j].trim_end();
            if h.ends_with('{') || h.ends_with(';') {
                break;
            }
            j += 1;
        }
        if header.trim_end().ends_with(';') {
            i = j + 1;
            continue;
        }
        let args = argument_count(&header);
        let close = format!("{}}}", " ".repeat(indent));
        let end = (j..code.len())
            .find(|&k| code[k].trim_end() == close || code[k].starts_with(&format!("{close})")))
            .unwrap_or(j);
        out.push((name, i + 1, end - i + 1, args));
        i = j + 1;
    }
    out
}

/// The parameters of a signature (split at top-level commas), `self` left out.
fn parameters(header: &str) -> Vec<String> {
    let Some(open) = header.find('(') else {
        return Vec::new();
    };
    let mut depth = 0;
    let mut params = Vec::new();
    let mut cur = String::new();
    for c in header[open + 1..].chars() {
        match c {
            '(' | '<' | '[' | '{' => depth += 1,
            ')' if depth == 0 => break,
            ')' | '>' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                params.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    params.push(cur);
    params
        .iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty() && !p.ends_with("self") && p != "mut self")
        .collect()
}

fn argument_count(header: &str) -> usize {
    parameters(header).len()
}

/// Whether a parameter is a tuple (`(a, b): (A, B)` or `both: (A, B)`): named fields say
/// which is which where a tuple makes the reader count.
fn is_tuple(param: &str) -> bool {
    let ty = param.split_once(':').map_or("", |(_, t)| t.trim());
    param.starts_with('(') || (ty.starts_with('(') && ty != "()")
}

#[test]
fn arguments_are_named_never_a_tuple() {
    assert!(is_tuple("(src, tgt): (&Client, &Client)"));
    assert!(is_tuple("both: (&Client, &Client)"));
    assert!(!is_tuple("add: impl FnMut(&mut Table, &Row)"));
    assert!(!is_tuple("done: ()"));
    let mut wrong = Vec::new();
    for s in sources() {
        for (i, line) in s.code.iter().enumerate() {
            let t = line.trim_start();
            let is_fn = [
                "fn ",
                "pub fn ",
                "pub(crate) fn ",
                "pub(super) fn ",
                "async fn ",
                "pub async fn ",
                "pub(crate) async fn ",
                "pub(super) async fn ",
            ]
            .iter()
            .any(|p| t.starts_with(p));
            if !is_fn {
                continue;
            }
            let header: String = s.code[i..]
                .iter()
                .take_while(|l| !l.trim_end().ends_with('{') && !l.trim_end().ends_with(';'))
                .chain(s.code[i..].iter().find(|l| {
                    let l = l.trim_end();
                    l.ends_with('{') || l.ends_with(';')
                }))
                .map(String::as_str)
                .collect();
            for p in parameters(&header).iter().filter(|p| is_tuple(p)) {
                wrong.push(format!("{}:{}: {p}", s.path, i + 1));
            }
        }
    }
    assert!(wrong.is_empty(), "tuple arguments:\n{}", wrong.join("\n"));
}

#[test]
fn files_and_functions_stay_small_enough_to_read() {
    let mut wrong = Vec::new();
    for s in sources() {
        if s.lines > 600 {
            wrong.push(format!("{}: {} lines (limit 600)", s.path, s.lines));
        }
        for (name, line, len, args) in functions(&s) {
            if len > 80 {
                wrong.push(format!(
                    "{}:{line}: fn {name} is {len} lines (limit 80)",
                    s.path
                ));
            }
            if args > 6 {
                wrong.push(format!(
                    "{}:{line}: fn {name} takes {args} arguments (limit 6: use a spec struct)",
                    s.path
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "too big:\n{}", wrong.join("\n"));
}

#[test]
fn the_checks_see_what_they_are_meant_to_see() {
    let s = Source {
        module: vec!["pg".into(), "conn".into()],
        path: "pg/conn.rs".into(),
        code: vec![
            strip_comment("use crate::pipeline::Options; // crate::cloud in a comment"),
            strip_comment("use super::tls::SslMode;"),
        ],
        lines: 2,
    };
    let r = references(&s);
    assert!(
        r.contains(&vec!["pipeline".to_string(), "Options".to_string()])
            || r.contains(&vec!["pipeline".to_string()])
    );
    assert!(r
        .iter()
        .any(|p| p.starts_with(&["pg".to_string(), "tls".to_string()])));
    assert!(!r.iter().any(|p| p.first().is_some_and(|f| f == "cloud")));
    let braces = Source {
        module: vec!["pg".into(), "ledger".into()],
        path: "pg/ledger.rs".into(),
        code: vec![
            "use crate::pg::{ledger_owner, shadow::{self, drop_all},".into(),
            "    steps};".into(),
            "use crate::{model::ident::QualName, error};".into(),
        ],
        lines: 3,
    };
    let r = references(&braces);
    let has = |p: &[&str]| r.contains(&p.iter().map(|x| x.to_string()).collect::<Vec<_>>());
    for p in [
        &["pg", "ledger_owner"][..],
        &["pg", "shadow"],
        &["pg", "shadow", "drop_all"],
        &["pg", "steps"],
        &["model", "ident"],
        &["error"],
    ] {
        assert!(has(p), "{p:?} not read from the brace imports: {r:?}");
    }
    assert!(speaks_sql(r#"client.query("SELECT 1", &[])"#));
    assert!(speaks_sql(r#"let sql = "TRUNCATE ONLY t";"#));
    assert!(!speaks_sql(r#"let msg = "selecting the tables";"#));
    assert_eq!(
        argument_count("pub fn f(a: u8, b: Vec<(u8, u8)>, c: &dyn Fn(u8) -> u8) {"),
        3
    );
    assert_eq!(argument_count("fn g(&self, x: u8) {"), 1);
}
