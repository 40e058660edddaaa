//! `dbsync dump`: an export written out as one SQL script that `psql -v ON_ERROR_STOP=1 -f`
//! restores into a database with the schema. Streamed part by part (memory stays flat), each
//! part checked against the manifest's rows and sha256 as it passes. From the source, an
//! export into a scratch directory comes first (same snapshot, scope and rules), removed after.

use crate::error::{Error, Result};
use crate::model::catalog::Table;
use crate::model::manifest::Manifest;
use crate::model::part::{ByteSource, Tally};
use crate::parts::gz::GzPartSource;
use crate::parts::{check_export, read_manifest, LocalStore, PartStore};
use crate::pg::conn::ConnSpec;
use crate::pg::script;
use crate::pipeline::progress::Progress;
use crate::pipeline::Options;
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

/// Dumps the export in `store`; `source` names the endpoint in the header (no secrets).
pub async fn dump_export(
    store: &dyn PartStore,
    source: Option<&str>,
    out: &mut DumpOut<'_>,
) -> Result<DumpReport> {
    let m = read_manifest(store).await?;
    check_export(store, &m).await?;
    let mut order: Vec<&crate::model::manifest::ManifestTable> = m.tables.iter().collect();
    order.sort_by(|a, b| (a.level, &a.table.name).cmp(&(b.level, &b.table.name)));
    let tables: Vec<&Table> = order.iter().map(|t| &t.table).collect();
    let cyclic = fk_order(&m.table_list(), &m.foreign_keys).cyclic;
    out.put(header(&m, source).as_bytes())?;
    out.put(script::settings(&m.settings).as_bytes())?;
    out.put(script::BEGIN.as_bytes())?;
    out.put(script::truncate_all(&tables).as_bytes())?;
    for fk in &cyclic {
        out.put(script::drop_foreign_key(fk).as_bytes())?;
    }
    let mut report = DumpReport {
        tables: tables.len(),
        sequences: m.sequences.len(),
        ..Default::default()
    };
    for t in &order {
        out.put(script::triggers(&t.table, false).as_bytes())?;
        let (rows, bytes) = dump_table(store, t, out).await?;
        report.rows += rows;
        report.bytes += bytes;
        out.put(script::triggers(&t.table, true).as_bytes())?;
    }
    for fk in &cyclic {
        out.put(script::add_foreign_key(fk).as_bytes())?;
    }
    for s in &m.sequences {
        out.put(script::set_sequence(s).as_bytes())?;
    }
    out.put(script::analyze(&tables).as_bytes())?;
    out.put(script::COMMIT.as_bytes())?;
    Ok(report)
}

/// One table's data: its parts in order inside one `COPY ... FROM stdin`, each checked.
async fn dump_table(
    store: &dyn PartStore,
    t: &crate::model::manifest::ManifestTable,
    out: &mut DumpOut<'_>,
) -> Result<(u64, u64)> {
    let rows: u64 = t.parts.iter().map(|p| p.stats.rows).sum();
    if t.table.copy_columns().next().is_none() {
        if rows > 0 {
            out.put(script::insert_empty_rows(&t.table, rows).as_bytes())?;
        }
        return Ok((rows, 0));
    }
    out.put(script::copy_from_stdin(&t.table).as_bytes())?;
    let mut bytes = 0;
    for part in &t.parts {
        let mut src = GzPartSource::open(store, &part.key).await?;
        let mut tally = Tally::default();
        while let Some(b) = src.next_bytes().await? {
            tally.feed(&b);
            out.put(&b)?;
        }
        let got = tally.finish();
        if got != part.stats {
            return Err(Error::PartCorrupt {
                table: t.table.name.to_string(),
                part: part.key.clone(),
                detail: format!(
                    "{} rows, sha256 {} where the manifest says {} rows, sha256 {}",
                    got.rows, got.sha256, part.stats.rows, part.stats.sha256
                ),
            });
        }
        bytes += got.bytes;
    }
    out.put(script::END_OF_DATA.as_bytes())?;
    Ok((rows, bytes))
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
    opts: &Options,
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
    /// Opens `output` (a path, or `-` for stdout).
    pub fn create(output: &str) -> Result<DumpFile> {
        let path = std::path::PathBuf::from(output);
        let bad = |e: std::io::Error| Error::config("--output", format!("{output}: {e}"));
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
