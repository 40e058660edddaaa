//! `dbsync console`: the web page that drives dbsync, served on loopback with a token.

use crate::args::ProtectedArg;
use crate::console::jobs::Jobs;
use crate::console::{Backend, Console};
use crate::output::Output;
use anyhow::Context;
use dbsync_core::pg::conn::ConnSpec;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Where to listen: a loopback address and port (0 picks a free one).
    #[arg(long, env = "DBSYNC_CONSOLE_LISTEN", default_value = "127.0.0.1:7433")]
    pub listen: std::net::SocketAddr,
    /// The databases the page offers, each NAME=URL (repeat the flag, or separate them with
    /// ';' in the environment). URLs are read as `--source` reads them; the page shows only
    /// their endpoints.
    #[arg(long = "database", env = "DBSYNC_DATABASES", value_delimiter = ';')]
    pub databases: Vec<String>,
    /// Where job records are kept (they survive a restart of the console).
    #[arg(long, env = "DBSYNC_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(flatten)]
    pub protected: ProtectedArg,
    /// The token the page's address carries (default: a new random one at each start). Fix
    /// it to keep open pages working across a restart; treat it as a password.
    #[arg(long, env = "DBSYNC_CONSOLE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Drive the deployed service instead: its API's stage URL
    /// (https://ID.execute-api.REGION.amazonaws.com/v1). Each call is signed with your AWS
    /// credentials (the standard chain: AWS_PROFILE, environment, SSO, role); databases are
    /// the deployment's secrets and jobs run in AWS.
    #[arg(long, env = "DBSYNC_API_URL", conflicts_with_all = ["databases", "state_dir"])]
    pub api: Option<String>,
}

fn databases(list: &[String]) -> dbsync_core::Result<BTreeMap<String, ConnSpec>> {
    let mut out = BTreeMap::new();
    for entry in list.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        let Some((name, url)) = entry.split_once('=') else {
            return Err(dbsync_core::Error::config(
                "--database",
                "give each database as NAME=URL",
            ));
        };
        let spec = ConnSpec::parse(url, &format!("--database {name}"))?;
        out.insert(name.trim().to_string(), spec);
    }
    Ok(out)
}

pub async fn exec(a: Args, _out: Output) -> anyhow::Result<()> {
    if !a.listen.ip().is_loopback() {
        return Err(dbsync_core::Error::config(
            "--listen",
            format!(
                "{} is not a loopback address: the console serves this machine only",
                a.listen.ip()
            ),
        )
        .into());
    }
    let state = match a.state_dir {
        Some(d) => d,
        None => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
            .join(".local/state/dbsync/console"),
    };
    let backend = match &a.api {
        Some(url) => Backend::Cloud(Box::new(
            dbsync_core::cloud::remote::RemoteApi::new(url, &Default::default()).await?,
        )),
        None => Backend::Local(std::sync::Arc::new(
            Jobs::open(
                state.clone(),
                databases(&a.databases)?,
                a.protected.patterns.clone(),
            )
            .with_context(|| {
                format!("opening the console's state directory {}", state.display())
            })?,
        )),
    };
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("listening on {}", a.listen))?;
    let addr = listener.local_addr()?;
    let token = match a.token.filter(|t| !t.trim().is_empty()) {
        Some(t) if t.len() < 16 || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') => {
            return Err(dbsync_core::Error::config(
                "--token",
                "give at least 16 letters, digits or '-'",
            )
            .into())
        }
        Some(t) => t,
        None => uuid::Uuid::new_v4().simple().to_string(),
    };
    let origin = format!("http://{addr}");
    // The address with its token is the console's one key: printed once, on stdout.
    let mut stdout = std::io::stdout();
    writeln!(stdout, "dbsync console: {origin}/?token={token}")?;
    stdout.flush()?;
    let app = Console::new(backend, token, origin).router();
    axum::serve(listener, app)
        .await
        .context("serving the console")?;
    Ok(())
}
