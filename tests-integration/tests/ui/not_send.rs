// Arguments and return values move between threads, so they must be `Send`.

use std::rc::Rc;

#[tokengate::task_token_guard(operation_type = "shared")]
fn shared(value: Rc<u64>) -> u64 {
    *value
}

#[tokengate::task_token_guard(operation_type = "make_shared")]
fn make_shared(value: u64) -> Rc<u64> {
    Rc::new(value)
}

fn main() {}
