//! Benchmarks of sgmap against the floors that bound it; see `benches/`.
