//! Facteur's benchmarks (run with the commands in docs/benchmarks.md, never from `cargo test`).
