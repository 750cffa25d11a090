//! Long differential fuzzing run: `cargo bench -p wasm-to-luau --bench fuzz_long`
//! (FUZZ_ITERS, default 100000; FUZZ_SEED, default 1). Same checks as tests/fuzz.rs.
#[path = "../tests/fuzz.rs"]
mod fuzz;

fn main() {
    if std::env::var("FUZZ_ITERS").is_err() {
        std::env::set_var("FUZZ_ITERS", "100000");
    }
    fuzz::run();
}
