use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use prognostics::cli::{self, Cli};
use prognostics::telemetry;

fn main() -> anyhow::Result<ExitCode> {
    settle_cpu_thread_count();
    let cli = Cli::parse();
    let settings = cli.settings()?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?
        .block_on(async {
            telemetry::init(&settings.log);
            cli::run(cli.command, settings).await
        })
}

/// Fixes candle's CPU thread count once (see `encoders::cpu_thread_count`): without it every
/// matrix product re-reads /proc/cpuinfo, a fifth of an assessment's CPU time under load.
#[allow(unsafe_code)]
fn settle_cpu_thread_count() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let threads = prognostics::encoders::cpu_thread_count();
        // SAFETY: the first thing main does, before the runtime or any other thread exists:
        // nothing can read the environment while it is written.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
    }
}
