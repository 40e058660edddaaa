//! Streaming a chunk out of the source: `COPY (SELECT ...) TO STDOUT` (text, or binary for a
//! sync's tables that allow it) as a [`ByteSource`], and the queries a budgeted export pages
//! with. Never holds more than a buffer of data in memory, whatever the table size.

use crate::error::{Error, Result, Role};
use crate::model::catalog::{Key, Table};
use crate::model::chunk::ChunkRange;
use crate::model::part::{ByteSource, CopyFormat};
use crate::pg::slice;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio_postgres::Client;

/// A keyed table's chunk: what its pages slice.
#[derive(Debug, Clone, Copy)]
pub struct KeySlice<'a> {
    /// The table.
    pub table: &'a Table,
    /// Its key.
    pub key: &'a Key,
    /// The chunk's range.
    pub range: &'a ChunkRange,
}

/// One page of a keyed chunk: keys after `after` up to and including `upto` (either end
/// open).
#[derive(Debug, Clone, Copy)]
pub struct KeyPage<'a> {
    /// The last key of the previous page.
    pub after: Option<&'a [String]>,
    /// The last key of this page.
    pub upto: Option<&'a [String]>,
}

/// COPY data straight from a source session.
pub struct CopyOutSource {
    stream: std::pin::Pin<Box<tokio_postgres::CopyOutStream>>,
    context: String,
    format: CopyFormat,
}

impl CopyOutSource {
    /// Starts `COPY ... TO STDOUT` for one chunk of `table`, in text.
    pub async fn start(
        client: &Client,
        table: &Table,
        range: &ChunkRange,
        context: String,
    ) -> Result<Self> {
        Self::start_as(client, table, range, CopyFormat::Text, context).await
    }

    /// Starts `COPY ... TO STDOUT` for one chunk of `table` in `format`.
    pub async fn start_as(
        client: &Client,
        table: &Table,
        range: &ChunkRange,
        format: CopyFormat,
        context: String,
    ) -> Result<Self> {
        let sql = slice::copy_out_sql_as(table, range, format);
        let mut src = Self::start_sql(client, &sql, context).await?;
        src.format = format;
        Ok(src)
    }

    /// Starts the COPY of one page of a keyed table's chunk: keys in `(after, upto]`.
    pub async fn key_page(
        client: &Client,
        chunk: KeySlice<'_>,
        page: KeyPage<'_>,
        context: &str,
    ) -> Result<Self> {
        let KeySlice { table, key, range } = chunk;
        let sql = slice::key_page_copy_sql(table, key, range, page.after, page.upto);
        Self::start_sql(client, &sql, context.to_string()).await
    }

    /// Starts the COPY of heap pages `[from, to)` of a table (`to` None: to the end).
    pub async fn ctid_page(
        client: &Client,
        table: &Table,
        from: u64,
        to: Option<u64>,
        context: &str,
    ) -> Result<Self> {
        let sql = slice::ctid_page_copy_sql(table, from, to);
        Self::start_sql(client, &sql, context.to_string()).await
    }

    /// Starts a given `COPY ... TO STDOUT` statement.
    async fn start_sql(client: &Client, sql: &str, context: String) -> Result<Self> {
        let stream = client
            .copy_out(sql)
            .await
            .map_err(|e| Error::pg(Role::Source, context.clone(), e))?;
        Ok(CopyOutSource {
            stream: Box::pin(stream),
            context,
            format: CopyFormat::Text,
        })
    }
}

#[async_trait::async_trait]
impl ByteSource for CopyOutSource {
    async fn next_bytes(&mut self) -> Result<Option<Bytes>> {
        match self.stream.next().await {
            None => Ok(None),
            Some(Ok(b)) => Ok(Some(b)),
            Some(Err(e)) => Err(Error::pg(Role::Source, self.context.clone(), e)),
        }
    }

    fn format(&self) -> CopyFormat {
        self.format
    }
}

/// The last key of the next page of `page_rows` rows of a keyed table's chunk, after
/// `after`; None when the rest of the chunk fits in one page.
pub async fn page_end(
    client: &Client,
    chunk: KeySlice<'_>,
    after: Option<&[String]>,
    page_rows: u64,
    context: &str,
) -> Result<Option<Vec<String>>> {
    let KeySlice { table, key, range } = chunk;
    let sql = slice::page_end_sql(table, key, range, after, page_rows);
    let row = client
        .query_opt(sql.as_str(), &[])
        .await
        .map_err(|e| Error::pg(Role::Source, context, e))?;
    Ok(row.map(|r| {
        (0..key.columns.len())
            .map(|i| r.get::<_, String>(i))
            .collect()
    }))
}

/// A table's heap pages now; pages added later hold only rows the snapshot cannot see.
pub async fn heap_pages(client: &Client, table: &Table, context: &str) -> Result<u64> {
    let blocks: i64 = client
        .query_one(
            "SELECT (pg_relation_size($1::text::regclass) / current_setting('block_size')::int8)::int8",
            &[&table.name.sql()],
        )
        .await
        .map_err(|e| Error::pg(Role::Source, context, e))?
        .get(0);
    Ok(blocks.max(0) as u64)
}
