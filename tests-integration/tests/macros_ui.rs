//! The compile errors of `#[tokengate::task_token_guard]`: each message and where it points,
//! checked with trybuild against `tests/ui/*.stderr`.
//!
//! After a deliberate change of a message, regenerate the expected output with
//! `TRYBUILD=overwrite cargo test --test macros_ui` and review the diff.

#[test]
fn ui() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
