// `operation_type` is required.

#[tokengate::task_token_guard(weight = "light")]
fn unnamed(n: u64) -> u64 {
    n
}

#[tokengate::task_token_guard]
fn bare(n: u64) -> u64 {
    n
}

fn main() {}
