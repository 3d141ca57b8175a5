//! `siuo-emulator`: the OpenAI-compatible emulator as a process, for
//! benchmarks and for trying configs without a real API. Loopback only.

use clap::{Parser, ValueEnum};
use siuo_emulator::{EmulatorConfig, Latency, serve};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Shape {
    Fixed,
    /// Log-normal with the given mean and p99 about 10× the median
    HeavyTailed,
}

#[derive(Debug, Parser)]
#[command(
    name = "siuo-emulator",
    about = "OpenAI-compatible API emulator on 127.0.0.1, for tests and benchmarks"
)]
struct Arguments {
    /// Port on 127.0.0.1 (0 picks a free one)
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Mean latency of every answer, in milliseconds
    #[arg(long, default_value_t = 0.0)]
    latency_ms: f64,
    #[arg(long, value_enum, default_value_t = Shape::Fixed)]
    latency_shape: Shape,
    /// Environment variable whose value requests must present as Bearer key
    #[arg(long)]
    api_key_env: Option<String>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::io::Result<()> {
    let arguments = Arguments::parse();
    let latency = match (arguments.latency_ms, arguments.latency_shape) {
        (ms, _) if ms <= 0.0 => Latency::None,
        (ms, Shape::Fixed) => Latency::Fixed { ms },
        (ms, Shape::HeavyTailed) => Latency::heavy_tailed_with_mean(ms),
    };
    let api_key = match &arguments.api_key_env {
        Some(name) => Some(std::env::var(name).map_err(|_| {
            std::io::Error::other(format!("environment variable {name} is not set"))
        })?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", arguments.port)).await?;
    println!(
        "siuo-emulator listening on http://{}/v1",
        listener.local_addr()?
    );
    serve(
        listener,
        EmulatorConfig {
            latency,
            api_key,
            seed: arguments.seed,
        },
    )
    .await
}
