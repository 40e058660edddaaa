//! libpq's connection files, read as libpq reads them: the password file (`PGPASSFILE`, else
//! `~/.pgpass`) and the connection service file (`PGSERVICEFILE`, else `~/.pg_service.conf`,
//! then `PGSYSCONFDIR/pg_service.conf`), so a URL that works with psql works with dbsync.
//! Files are found through the same environment lookup as the PG* variables (tests pass
//! their own); a file that is missing is no error.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where a lookup of the environment comes from (the PG* variables, `HOME`).
type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The settings of service `name` (`host`, `port`, `dbname`, `user`, `password`, `sslmode`,
/// ...): from the user's service file, else the system's. An unknown service is an error
/// naming the files looked in, as libpq's is.
pub fn service(name: &str, env: Env<'_>) -> Result<BTreeMap<String, String>> {
    let home = env("HOME").map(PathBuf::from);
    let user_file = env("PGSERVICEFILE")
        .map(PathBuf::from)
        .or_else(|| home.map(|h| h.join(".pg_service.conf")));
    let sys_dir = env("PGSYSCONFDIR").unwrap_or_else(|| "/etc/postgresql-common".into());
    let files: Vec<PathBuf> = user_file
        .into_iter()
        .chain([PathBuf::from(sys_dir).join("pg_service.conf")])
        .collect();
    for f in &files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        if let Some(found) = service_in(&text, name) {
            return Ok(found);
        }
    }
    Err(Error::config(
        "service",
        format!(
            "definition of service {name:?} not found (looked in {})",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ))
}

/// Section `[name]` of a service file's text, if it has one.
fn service_in(text: &str, name: &str) -> Option<BTreeMap<String, String>> {
    let mut inside = false;
    let mut found = None::<BTreeMap<String, String>>;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = section.trim() == name;
            if inside && found.is_none() {
                found = Some(BTreeMap::new());
            }
            continue;
        }
        if let (true, Some((k, v)), Some(map)) = (inside, line.split_once('='), found.as_mut()) {
            map.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    found
}

/// The password the password file holds for `host:port/db` as `user`, if any. A file that
/// others may read is skipped with a warning, as libpq does.
pub fn password(host: &str, port: u16, db: &str, user: &str, env: Env<'_>) -> Option<String> {
    let path = env("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".pgpass")))?;
    let meta = std::fs::metadata(&path).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(file = %path.display(), "password file has group or world access; permissions should be u=rw (0600) or less: not read");
            return None;
        }
    }
    if !meta.is_file() {
        return None;
    }
    let text = std::fs::read_to_string(&path).ok()?;
    password_in(&text, [host, &port.to_string(), db, user])
}

/// The password of the first line of a password file's text that matches `want` (host, port,
/// database, user; `*` in a line matches anything; `\:` and `\\` are escapes).
fn password_in(text: &str, want: [&str; 4]) -> Option<String> {
    for line in text.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_fields(line);
        if fields.len() < 5 {
            continue;
        }
        let matches = fields.iter().zip(want).all(|(f, w)| f == "*" || f == w);
        if matches {
            return Some(fields[4..].join(":"));
        }
    }
    None
}

/// A password file line's fields: split on unescaped `:`, escapes removed.
fn split_fields(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(next), Some(cur)) = (chars.next(), out.last_mut()) {
                    cur.push(next);
                }
            }
            ':' if out.len() < 5 => out.push(String::new()),
            c => {
                if let Some(cur) = out.last_mut() {
                    cur.push(c);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_file_matches_wildcards_and_escapes_and_takes_the_first_match() {
        let text = "# comment\n\
                    db.example:5432:app:reader:first\n\
                    *:5432:*:admin:a\\:b\\\\c\n\
                    *:*:*:admin:later\n";
        assert_eq!(
            password_in(text, ["db.example", "5432", "app", "reader"]).as_deref(),
            Some("first")
        );
        assert_eq!(
            password_in(text, ["other", "5432", "x", "admin"]).as_deref(),
            Some("a:b\\c")
        );
        assert_eq!(
            password_in(text, ["other", "6543", "x", "admin"]).as_deref(),
            Some("later")
        );
        assert_eq!(password_in(text, ["other", "5432", "x", "nobody"]), None);
    }

    #[test]
    fn a_service_section_is_read_and_another_ignored() {
        let text = "[prod]\nhost=p\n\n[staging]\n# c\nhost = s.example\nport=6432\ndbname=app\n";
        let s = service_in(text, "staging").expect("found");
        assert_eq!(s["host"], "s.example");
        assert_eq!(s["port"], "6432");
        assert!(service_in(text, "dev").is_none());
    }
}
