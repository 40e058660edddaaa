//! One chunk into one gzip part: straight through ([`export_chunk`]), or page by page in key
//! (or heap) order until a time budget runs out ([`export_segment`]), handing over where the
//! next invocation continues. COPY text flows from `pg` into `parts` a buffer at a time.

use crate::error::Result;
use crate::model::catalog::Table;
use crate::model::chunk::{ChunkRange, Resume};
use crate::model::part::PartStats;
use crate::parts::gz::GzPartSink;
use crate::parts::PartStore;
use crate::pg::copy_out::{self, CopyOutSource, KeySlice};
use crate::pipeline::progress::{Meter, Metered};
use std::time::Instant;
use tokio_postgres::Client;

/// Where a part goes and how it is compressed.
#[derive(Clone, Copy)]
pub struct PartTarget<'a> {
    /// The store.
    pub store: &'a dyn PartStore,
    /// Its key there.
    pub key: &'a str,
    /// gzip level.
    pub level: u32,
}

/// Exports one chunk into a gzip part; returns what it holds and its compressed size.
pub async fn export_chunk(
    client: &Client,
    table: &Table,
    range: &ChunkRange,
    context: String,
    part: PartTarget<'_>,
    meter: Meter<'_>,
) -> Result<(PartStats, u64)> {
    let mut src = CopyOutSource::start(client, table, range, context).await?;
    let mut src = Metered::new(&mut src, meter);
    let mut sink = GzPartSink::create(part.store, part.key, part.level).await?;
    sink.feed(&mut src).await?;
    sink.finish().await
}

/// How much one invocation may do before it hands over a continuation.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Stop starting new pages after this instant.
    pub deadline: Instant,
    /// Rows per page of a keyed table.
    pub page_rows: u64,
    /// Heap pages per page of a table without a key.
    pub page_blocks: u64,
}

/// The slice of a chunk one budgeted invocation exports.
pub struct SegmentSpec<'a> {
    /// The table.
    pub table: &'a Table,
    /// The chunk's rows.
    pub range: &'a ChunkRange,
    /// Where the previous invocation stopped (None: the chunk's start).
    pub resume: Option<&'a Resume>,
    /// How much this invocation may do.
    pub budget: Budget,
    /// What it is called in errors.
    pub context: String,
}

/// What one budgeted export of (part of) a chunk produced.
#[derive(Debug, Clone)]
pub struct Segment {
    /// What the part holds.
    pub stats: PartStats,
    /// Its size in the store.
    pub compressed_bytes: u64,
    /// Where the next invocation continues; None when the chunk is complete.
    pub resume: Option<Resume>,
}

/// Exports a chunk page by page in key order (heap order without a key) into one part,
/// starting at `spec.resume`, until the chunk is done or the budget's deadline has passed
/// after a page: then the part is closed and the continuation returned. The first page
/// always runs, so every invocation makes progress. Pages of one chunk must read one
/// snapshot.
pub async fn export_segment(
    client: &Client,
    spec: SegmentSpec<'_>,
    part: PartTarget<'_>,
) -> Result<Segment> {
    let mut sink = GzPartSink::create(part.store, part.key, part.level).await?;
    let resume = match &spec.table.key {
        Some(_) => key_pages(client, &spec, &mut sink).await?,
        None => heap_pages(client, &spec, &mut sink).await?,
    };
    let (stats, compressed_bytes) = sink.finish().await?;
    Ok(Segment {
        stats,
        compressed_bytes,
        resume,
    })
}

async fn key_pages(
    client: &Client,
    spec: &SegmentSpec<'_>,
    sink: &mut GzPartSink<'_>,
) -> Result<Option<Resume>> {
    let (table, range) = (spec.table, spec.range);
    let Some(key) = &table.key else {
        return Ok(None);
    };
    let mut after: Option<Vec<String>> = match spec.resume {
        Some(Resume::Key { after }) => Some(after.clone()),
        _ => None,
    };
    loop {
        let chunk = KeySlice { table, key, range };
        let end = copy_out::page_end(
            client,
            chunk,
            after.as_deref(),
            spec.budget.page_rows,
            &spec.context,
        )
        .await?;
        let page = copy_out::KeyPage {
            after: after.as_deref(),
            upto: end.as_deref(),
        };
        let mut src = CopyOutSource::key_page(client, chunk, page, &spec.context).await?;
        sink.feed(&mut src).await?;
        match end {
            None => return Ok(None),
            Some(e) if Instant::now() >= spec.budget.deadline => {
                return Ok(Some(Resume::Key { after: e }))
            }
            Some(e) => after = Some(e),
        }
    }
}

async fn heap_pages(
    client: &Client,
    spec: &SegmentSpec<'_>,
    sink: &mut GzPartSink<'_>,
) -> Result<Option<Resume>> {
    let (lower, upper) = match spec.range {
        ChunkRange::Ctid { lower, upper } => (lower.unwrap_or(0), *upper),
        _ => (0, None),
    };
    let mut from = match spec.resume {
        Some(Resume::Ctid { from_page }) => *from_page,
        _ => lower,
    };
    let end = match upper {
        Some(u) => u,
        None => copy_out::heap_pages(client, spec.table, &spec.context).await?,
    };
    loop {
        let to = from + spec.budget.page_blocks.max(1);
        // The last page of an open-ended chunk stays open, as the plan's ranges do.
        let last = to >= end;
        let until = if last { upper } else { Some(to) };
        let mut src =
            CopyOutSource::ctid_page(client, spec.table, from, until, &spec.context).await?;
        sink.feed(&mut src).await?;
        if last {
            return Ok(None);
        }
        from = to;
        if Instant::now() >= spec.budget.deadline {
            return Ok(Some(Resume::Ctid { from_page: from }));
        }
    }
}
