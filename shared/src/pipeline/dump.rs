//! `dbsync dump`: an export written out as one SQL script that `psql -v ON_ERROR_STOP=1 -f`
//! restores into a database with the schema. Streamed part by part (memory stays flat), each
//! part checked against the manifest's rows and sha256 as it passes. From the source, an
//! export into a scratch directory comes first (same snapshot, scope and rules), removed after.

use crate::error::{Error, Result};
use crate::model::catalog::Table;
use crate::model::manifest::{Manifest, PartEntry};
use crate::model::part::{ByteSource, Tally};
use crate::parts::gz::GzPartSource;
use crate::parts::{check_export, read_manifest, LocalStore, PartStore};
use crate::pg::conn::ConnSpec;
use crate::pg::script;
use crate::pipeline::progress::Progress;
use crate::pipeline::ExportOptions;
use crate::plan::order::fk_order;
use serde::Serialize;
use std::io::Write;
use std::sync::Arc;

/// Where a script goes, and its name for errors.
pub struct DumpOut<'a> {
    /// The writer (a file, a gzip encoder, stdout).
    pub writer: &'a mut dyn Write,
    /// Its name in errors.
    pub name: String,
}

impl DumpOut<'_> {
    fn put(&mut self, text: &[u8]) -> Result<()> {
        self.writer.write_all(text).map_err(|e| Error::Io {
            path: self.name.clone(),
            message: format!("cannot write the dump: {e}"),
            retryable: false,
            source: Some(Box::new(e)),
        })
    }
}

/// What a dump wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DumpReport {
    /// Tables.
    pub tables: usize,
    /// Rows.
    pub rows: u64,
    /// Bytes of COPY data.
    pub bytes: u64,
    /// Sequences set.
    pub sequences: usize,
}

/// One piece of a dump script, in order: SQL text, or one part's COPY data (table and part
/// positions in the manifest). The local dump streams the parts through; the serverless one
/// copies them, still compressed, into one S3 object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Script text.
    Text(String),
    /// The COPY text of `m.tables[table].parts[part]`.
    Part {
        /// Position of the table in the manifest.
        table: usize,
        /// Position of the part in the table.
        part: usize,
    },
}

/// The script of the export `m`, as pieces: header, pinned settings, one transaction that
/// empties the tables and loads them in foreign-key order (cyclic keys dropped around the
/// data), sequences at their exact values, ANALYZE. `source` names the endpoint in the
/// header (no secrets).
pub fn script_pieces(m: &Manifest, source: Option<&str>) -> Vec<Piece> {
    let mut order: Vec<usize> = (0..m.tables.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&m.tables[a], &m.tables[b]);
        (a.level, &a.table.name).cmp(&(b.level, &b.table.name))
    });
    let tables: Vec<&Table> = order.iter().map(|&i| &m.tables[i].table).collect();
    let cyclic = fk_order(&m.table_list(), &m.foreign_keys).cyclic;
    let mut pieces = Vec::new();
    let mut text = header(m, source);
    text.push_str(&script::settings(&m.settings));
    text.push_str(script::BEGIN);
    text.push_str(&script::truncate_all(&tables));
    cyclic
        .iter()
        .for_each(|fk| text.push_str(&script::drop_foreign_key(fk)));
    for &i in &order {
        let t = &m.tables[i];
        text.push_str(&script::triggers(&t.table, false));
        let rows: u64 = t.parts.iter().map(|p| p.stats.rows).sum();
        if t.table.copy_columns().next().is_none() {
            if rows > 0 {
                text.push_str(&script::insert_empty_rows(&t.table, rows));
            }
        } else {
            text.push_str(&script::copy_from_stdin(&t.table));
            for part in 0..t.parts.len() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
                pieces.push(Piece::Part { table: i, part });
            }
            text.push_str(script::END_OF_DATA);
        }
        text.push_str(&script::triggers(&t.table, true));
    }
    cyclic
        .iter()
        .for_each(|fk| text.push_str(&script::add_foreign_key(fk)));
    m.sequences
        .iter()
        .for_each(|s| text.push_str(&script::set_sequence(s)));
    text.push_str(&script::analyze(&tables));
    text.push_str(script::COMMIT);
    pieces.push(Piece::Text(text));
    pieces.retain(|p| !matches!(p, Piece::Text(t) if t.is_empty()));
    pieces
}

/// What a dump of `m` holds.
pub fn dump_report(m: &Manifest) -> DumpReport {
    let parts = || m.tables.iter().flat_map(|t| &t.parts);
    DumpReport {
        tables: m.tables.len(),
        rows: parts().map(|p| p.stats.rows).sum(),
        bytes: parts().map(|p| p.stats.bytes).sum(),
        sequences: m.sequences.len(),
    }
}

/// Dumps the export in `store`; `source` names the endpoint in the header (no secrets).
pub async fn dump_export(
    store: &dyn PartStore,
    source: Option<&str>,
    out: &mut DumpOut<'_>,
) -> Result<DumpReport> {
    let m = read_manifest(store).await?;
    check_export(store, &m).await?;
    for piece in script_pieces(&m, source) {
        match piece {
            Piece::Text(t) => out.put(t.as_bytes())?,
            Piece::Part { table, part } => {
                let t = &m.tables[table];
                stream_part(store, &t.table, &t.parts[part], out).await?;
            }
        }
    }
    Ok(dump_report(&m))
}

/// One part's COPY text into the script, checked against the manifest's rows and sha256.
async fn stream_part(
    store: &dyn PartStore,
    table: &Table,
    part: &PartEntry,
    out: &mut DumpOut<'_>,
) -> Result<()> {
    let mut src = GzPartSource::open(store, &part.key).await?;
    let mut tally = Tally::default();
    while let Some(b) = src.next_bytes().await? {
        tally.feed(&b);
        out.put(&b)?;
    }
    let got = tally.finish();
    if got != part.stats {
        return Err(Error::PartCorrupt {
            table: table.name.to_string(),
            part: part.key.clone(),
            detail: format!(
                "{} rows, sha256 {} where the manifest says {} rows, sha256 {}",
                got.rows, got.sha256, part.stats.rows, part.stats.sha256
            ),
        });
    }
    Ok(())
}

/// Comment lines never hold a raw newline (an identifier may).
fn comment(text: &str) -> String {
    format!("-- {}\n", text.replace('\r', "\\r").replace('\n', "\\n"))
}

/// The script's header: tool, source (endpoint without secrets), snapshot, time, tables.
fn header(m: &Manifest, source: Option<&str>) -> String {
    let rows = |t: &crate::model::manifest::ManifestTable| -> u64 {
        t.parts.iter().map(|p| p.stats.rows).sum()
    };
    let mut h = comment(&format!(
        "dbsync SQL dump, dbsync {}",
        env!("CARGO_PKG_VERSION")
    ));
    h.push_str(&comment(&format!(
        "source: PostgreSQL {}, database {}{}",
        m.source.version,
        m.source.database,
        source.map(|s| format!(" ({s})")).unwrap_or_default()
    )));
    h.push_str(&comment(&format!(
        "snapshot {} ({}), exported {}, job {}",
        m.snapshot, m.consistency, m.created_at, m.job_id
    )));
    h.push_str(&comment(&format!(
        "{} tables, {} rows, {} sequences; restore into a database with the schema: psql -v ON_ERROR_STOP=1 -f FILE",
        m.tables.len(),
        m.tables.iter().map(rows).sum::<u64>(),
        m.sequences.len()
    )));
    for t in &m.tables {
        h.push_str(&comment(&format!("  {}: {} rows", t.table.name, rows(t))));
    }
    h
}

/// Exports the source into `scratch` (removed after, also on failure), then dumps it.
pub async fn dump_source(
    source: &ConnSpec,
    opts: &ExportOptions,
    scratch: &std::path::Path,
    progress: Arc<dyn Progress>,
    out: &mut DumpOut<'_>,
) -> Result<DumpReport> {
    let store = Arc::new(LocalStore::new(scratch));
    let r = async {
        crate::pipeline::export(source, store.clone(), opts, progress).await?;
        dump_export(store.as_ref(), Some(&source.redacted()), out).await
    }
    .await;
    let _ = std::fs::remove_dir_all(scratch);
    r
}

/// A script file being written: plain or gzip (by a `.gz` name), under a temporary name
/// beside it until [`DumpFile::commit`] renames it, so a failed dump leaves no partial
/// file; or stdout (`-`).
pub struct DumpFile {
    sink: Sink,
    tmp: Option<std::path::PathBuf>,
    path: std::path::PathBuf,
}

enum Sink {
    Plain(Box<dyn Write + Send>),
    Gz(Box<flate2::write::GzEncoder<Box<dyn Write + Send>>>),
}

impl DumpFile {
    /// Opens `output` (a path, or `-` for stdout); an existing file is refused unless `force`.
    pub fn create(output: &str, force: bool) -> Result<DumpFile> {
        let path = std::path::PathBuf::from(output);
        let bad = |e: std::io::Error| Error::config("--output", format!("{output}: {e}"));
        if output != "-" && !force && path.exists() {
            return Err(Error::config(
                "--output",
                format!("{output} already exists; give a new file, or add --force to replace it"),
            ));
        }
        let (inner, tmp): (Box<dyn Write + Send>, _) = if output == "-" {
            (Box::new(std::io::stdout()), None)
        } else {
            let name = path.file_name().map(|n| n.to_string_lossy().to_string());
            let tmp = path.with_file_name(format!(
                ".{}.{}.part",
                name.unwrap_or_default(),
                uuid::Uuid::new_v4().simple()
            ));
            let f = std::fs::File::create(&tmp).map_err(bad)?;
            (Box::new(f), Some(tmp))
        };
        let buffered: Box<dyn Write + Send> =
            Box::new(std::io::BufWriter::with_capacity(1 << 20, inner));
        let sink = if output.ends_with(".gz") {
            Sink::Gz(Box::new(flate2::write::GzEncoder::new(
                buffered,
                flate2::Compression::new(1),
            )))
        } else {
            Sink::Plain(buffered)
        };
        Ok(DumpFile { sink, tmp, path })
    }

    /// Where to write.
    pub fn out(&mut self) -> DumpOut<'_> {
        let name = self.path.display().to_string();
        let writer: &mut dyn Write = match &mut self.sink {
            Sink::Plain(w) => w,
            Sink::Gz(g) => g.as_mut(),
        };
        DumpOut { writer, name }
    }

    /// Finishes the file and gives it its name.
    pub fn commit(self) -> Result<()> {
        let name = self.path.display().to_string();
        let io = |e: std::io::Error| Error::Io {
            path: name.clone(),
            message: format!("cannot write the dump: {e}"),
            retryable: false,
            source: Some(Box::new(e)),
        };
        match self.sink {
            Sink::Plain(mut w) => w.flush().map_err(io)?,
            Sink::Gz(g) => g.finish().and_then(|mut w| w.flush()).map_err(io)?,
        }
        if let Some(tmp) = &self.tmp {
            std::fs::rename(tmp, &self.path).map_err(io)?;
        }
        Ok(())
    }

    /// Removes what was written (a failed dump).
    pub fn abandon(self) {
        if let Some(tmp) = &self.tmp {
            let _ = std::fs::remove_file(tmp);
        }
    }

    /// The directory beside the output, for a scratch export.
    pub fn scratch_dir(&self) -> std::path::PathBuf {
        let dir = match (&self.tmp, self.path.parent()) {
            (Some(_), Some(p)) if !p.as_os_str().is_empty() => p.to_path_buf(),
            (Some(_), _) => std::path::PathBuf::from("."),
            (None, _) => std::env::temp_dir(),
        };
        dir.join(format!(".dbsync-dump-{}", uuid::Uuid::new_v4().simple()))
    }
}
