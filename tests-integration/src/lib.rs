//! tokengate's tests that need heavy dev-dependencies; they live in `tests/`. This crate has
//! nothing else.
