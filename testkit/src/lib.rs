//! Test support shared by the gateway's tests, the Luau harness (and through it the e2e
//! runner) and the facade's tests and benches. The core never depends on it.
//!
//! - [`server::TestServer`]: one HTTP server on 127.0.0.1 standing in for Letta's block and
//!   message endpoints (Letta 0.16.8's paths, bodies and status codes, 409 on a concurrent
//!   write of one block) and for the project's batch endpoint, with faults injected on
//!   demand and every request recorded;
//! - [`repo_root`]: the repository's root, found from the working directory.

mod batch;
mod letta;
mod repo;
pub mod server;
mod wire;

pub use repo::repo_root;
