//! What the public API does under loom, as `tokengate::loom`'s docs (and `docs/loom.md`) say:
//! what cannot be modelled panics in words, never hangs or behaves differently in silence; a
//! handle awaited with loom's `block_on` resolves.
#![cfg(loom)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use tokengate::{Operation, Runtime};
use tokengate_loom_tests::check;

/// The message of a panic payload.
fn message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
#[should_panic(expected = "tokengate under loom: tokengate::global()")]
fn global_panics_in_words() {
    let _ = tokengate::global();
}

#[tokengate::task_token_guard(operation_type = "decorated")]
fn decorated(n: u32) -> u32 {
    n + 1
}

#[test]
#[should_panic(expected = "a #[task_token_guard] function without `runtime = ...`")]
fn a_decorated_function_on_the_global_runtime_panics_in_words() {
    drop(decorated(1));
}

#[test]
fn pinning_is_a_build_error_in_words() {
    let err = Runtime::builder().workers(1).build().unwrap_err();
    assert!(
        err.to_string().contains("under loom there are no cores"),
        "{err}"
    );
}

#[test]
fn a_deadline_panics_in_words_at_submission() {
    const TIMED: Operation = Operation::new("timed").deadline(Duration::from_secs(1));
    check(2, || {
        let rt = tokengate::loom::model_runtime(1).build().unwrap();
        let refused = catch_unwind(AssertUnwindSafe(|| rt.submit(&TIMED, || ())));
        let message = message(refused.expect_err("a deadline under loom panics"));
        assert!(
            message.contains("Operation::deadline cannot be modelled"),
            "{message}"
        );
        drop(rt);
    });
}

#[test]
fn wait_timeout_polls_and_joins_but_refuses_a_clock() {
    check(2, || {
        let rt = tokengate::loom::model_runtime(1).build().unwrap();
        let h = rt.spawn(|| 5);
        let _ = h.wait_timeout(Duration::ZERO); // a poll: either answer
        let refused = catch_unwind(AssertUnwindSafe(|| {
            h.wait_timeout(Duration::from_millis(1))
        }));
        let message = message(refused.expect_err("a timed wait under loom panics"));
        assert!(message.contains("wait_timeout"), "{message}");
        assert!(h.wait_timeout(Duration::MAX), "Duration::MAX waits as join");
        assert_eq!(h.join(), Ok(5));
        drop(rt);
    });
}

#[test]
fn a_handle_awaited_with_loom_block_on_resolves() {
    check(2, || {
        let rt = tokengate::loom::model_runtime(1).build().unwrap();
        let h = rt.spawn(|| 6 * 7);
        assert_eq!(loom::future::block_on(h), Ok(42));
        drop(rt);
    });
}
