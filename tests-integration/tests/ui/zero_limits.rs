// A concurrency limit or a deadline of 0 would never run a call.

#[tokengate::task_token_guard(operation_type = "never", concurrency_limit = 0)]
fn never(n: u64) -> u64 {
    n
}

#[tokengate::task_token_guard(operation_type = "instant", deadline_ms = 0)]
fn instant(n: u64) -> u64 {
    n
}

fn main() {}
