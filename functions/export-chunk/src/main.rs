//! export-chunk: one invocation exports one segment of one chunk, within the invocation's
//! time budget, and returns where the next invocation continues. Wiring only: settings and
//! clients are built once per cold start; `handler` does the translation.

mod handler;

use dbsync_core::lambda::{self, Clients, FunctionEnv};
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_logging();
    let env = FunctionEnv::from_env()?;
    let clients = Clients::new(env, &Default::default()).await;
    lambda_runtime::run(service_fn(
        |ev: LambdaEvent<dbsync_core::serverless::ExportChunkEvent>| {
            let deadline = lambda::deadline(ev.context.deadline, clients.env.margin);
            handler::handle(&clients, ev.payload, deadline)
        },
    ))
    .await
}
