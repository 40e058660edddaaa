//! `dbsync dump`: the source or an export as one psql-restorable SQL script.

use crate::args::{export_options, RulesArg, ScopeArgs, WorkArgs};
use crate::live;
use crate::output::{count, print_json, Output};
use dbsync_core::model::size::human_bytes;
use dbsync_core::parts::{open_store, S3Settings};
use dbsync_core::pg::conn::ConnSpec;
use dbsync_core::pipeline::ExportOptions;

#[derive(clap::Args)]
pub struct Args {
    /// Source URL (dump the live source, through an export in a scratch directory beside
    /// the output that is removed after).
    #[arg(long, env = "DBSYNC_SOURCE", conflicts_with = "from")]
    pub source: Option<String>,
    /// Or dump an export: a directory or s3://bucket/prefix holding manifest.json.
    #[arg(long, env = "DBSYNC_FROM")]
    pub from: Option<String>,
    /// The script: FILE.sql, FILE.sql.gz (gzip), or - for stdout. Written under a temporary
    /// name and renamed when complete, so a failed dump leaves no partial file.
    #[arg(short, long, env = "DBSYNC_OUTPUT")]
    pub output: String,
    /// Replace --output when the file exists.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub rules: RulesArg,
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub work: WorkArgs,
}

pub async fn exec(a: Args, out: Output) -> anyhow::Result<()> {
    use dbsync_core::pipeline::dump::{dump_export, dump_source, DumpFile};
    if a.source.is_none() == a.from.is_none() {
        return Err(dbsync_core::Error::config(
            "--source",
            "give --source URL (dump the live database) or --from EXPORT (dump an export)",
        )
        .into());
    }
    let mut file = DumpFile::create(&a.output, a.force)?;
    let result = match (&a.source, &a.from) {
        (Some(src), _) => {
            let (rules, source) = a.rules.load(ConnSpec::parse(src, "--source")?)?;
            let opts = ExportOptions {
                rules,
                ..export_options(&a.scope, &a.work)?
            };
            let scratch = file.scratch_dir();
            let progress = live::new(out.quiet || a.output == "-");
            dump_source(&source, &opts, &scratch, progress, &mut file.out()).await
        }
        (None, from) => {
            let from = from.as_deref().unwrap_or_default();
            match open_store(from, &S3Settings::default()).await {
                Ok(store) => dump_export(store.as_ref(), None, &mut file.out()).await,
                Err(e) => Err(e),
            }
        }
    };
    let report = match result {
        Ok(r) => {
            file.commit()?;
            r
        }
        Err(e) => {
            file.abandon();
            return Err(e.into());
        }
    };
    if out.json {
        print_json(&report)?;
    } else if a.output != "-" {
        say!(
            "dumped {} ({} rows, {}) and {} into {}",
            count(report.tables, "table"),
            report.rows,
            human_bytes(report.bytes),
            count(report.sequences, "sequence"),
            a.output
        );
    }
    Ok(())
}
