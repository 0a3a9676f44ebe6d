// `const`, `unsafe` and `extern` functions are refused.

#[tokengate::task_token_guard(operation_type = "a")]
const fn constant(n: u64) -> u64 {
    n
}

#[tokengate::task_token_guard(operation_type = "b")]
unsafe fn dangerous(n: u64) -> u64 {
    n
}

#[tokengate::task_token_guard(operation_type = "c")]
extern "C" fn foreign(n: u64) -> u64 {
    n
}

fn main() {}
