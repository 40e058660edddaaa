//! The write-dump step of a `"mode": "dump"` job: the export's parts and the script around
//! them composed into one gzip SQL file in S3 (`dump.sql.gz` in the job's folder), without
//! decompressing a part or holding the dump: gzip members concatenate into one valid gzip
//! stream, so each script text is compressed on its own and each part is copied as it is,
//! server-side where S3 allows. Carries on over invocations until the file is complete.

use crate::cloud::jobstore::{JobChange, JobStore, Phase};
use crate::error::Result;
use crate::parts::compose::Source;
use crate::parts::{check_export, read_manifest, S3Store};
use crate::pipeline::dump::{script_pieces, Piece};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::time::Instant;

/// The dump's key in the job's folder.
pub const DUMP_KEY: &str = "dump.sql.gz";
/// Where an unfinished composition keeps its state.
const DUMP_STATE_KEY: &str = "dump/state.json";

/// The write-dump function's input (and output, with `done`): the loop feeds it back while
/// the file is not complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteDumpEvent {
    /// The job (the dump lands in its folder).
    pub job_id: String,
    /// The job whose export is dumped, when not this one (a dump `from` an export).
    #[serde(default)]
    pub data_job_id: Option<String>,
    /// The file is complete (set by the step).
    #[serde(default)]
    pub done: bool,
}

/// One gzip member of `text`.
fn gzip(text: &str) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(text.as_bytes());
    enc.finish().unwrap_or_default()
}

/// Writes (or carries on writing) the dump of the export in `data` into `dest`'s
/// [`DUMP_KEY`] until `deadline`; `done` in the answer once it is complete. The parts' sizes
/// are checked against the manifest first (their rows and hashes were checked as they were
/// written).
pub async fn write_dump(
    dest: &S3Store,
    data: &S3Store,
    jobs: &dyn JobStore,
    event: &WriteDumpEvent,
    deadline: Instant,
) -> Result<WriteDumpEvent> {
    let m = read_manifest(data).await?;
    check_export(data, &m).await?;
    jobs.update(
        &event.job_id,
        JobChange {
            phase: Some(Phase::Assembling),
            tables_total: Some(m.tables.len() as u64),
            ..Default::default()
        },
    )
    .await?;
    let sources: Vec<Source> = script_pieces(&m, None)
        .into_iter()
        .map(|p| match p {
            Piece::Text(t) => Source::Bytes(gzip(&t)),
            Piece::Part { table, part } => {
                let part = &m.tables[table].parts[part];
                Source::Object {
                    key: data.object_key(&part.key),
                    size: part.compressed_bytes,
                }
            }
        })
        .collect();
    let done = dest
        .compose(DUMP_KEY, &sources, DUMP_STATE_KEY, deadline)
        .await?;
    Ok(WriteDumpEvent {
        done,
        ..event.clone()
    })
}
