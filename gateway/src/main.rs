//! `npc-sync-gateway --letta-url URL [--config FILE] [--OPTION VALUE ...]`; every option
//! also reads `NPC_SYNC_GATEWAY_<OPTION>` from the environment.

use npc_sync_gateway::config::{env_name, Config, OPTIONS};

#[tokio::main]
async fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("NPC_SYNC_GATEWAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("npc-sync-gateway: the batch endpoint server in front of Letta\n\noptions (--name value, or the environment variable):");
        for (name, default, what) in OPTIONS {
            println!(
                "  --{:<24} {:<40} {what}{}",
                name.replace('_', "-"),
                env_name(name),
                default
                    .map(|d| format!(" (default {d})"))
                    .unwrap_or_default()
            );
        }
        return;
    }
    let env = std::env::vars().collect();
    let config = match Config::load(&args, &env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("npc-sync-gateway: {e}");
            std::process::exit(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("npc-sync-gateway: cannot listen on {}: {e}", config.listen);
            std::process::exit(2);
        }
    };
    if let Err(e) = npc_sync_gateway::serve(config, listener, shutdown()).await {
        eprintln!("npc-sync-gateway: {e}");
        std::process::exit(1);
    }
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
