// Values of the wrong kind, and a key without a value.

#[tokengate::task_token_guard(operation_type = prime_check)]
fn unquoted_name(n: u64) -> u64 {
    n
}

#[tokengate::task_token_guard(operation_type = "a", weight = 3)]
fn numeric_weight(n: u64) -> u64 {
    n
}

#[tokengate::task_token_guard(operation_type = "b", retries = "3")]
fn quoted_retries(n: u64) -> u64 {
    n
}

#[tokengate::task_token_guard(operation_type = "c", deadline_ms = 1.5)]
fn float_deadline(n: u64) -> u64 {
    n
}

#[tokengate::task_token_guard(operation_type = "d", concurrency_limit = true)]
fn boolean_limit(n: u64) -> u64 {
    n
}

#[tokengate::task_token_guard(operation_type = "e", runtime = my_runtime())]
fn called_runtime(n: u64) -> u64 {
    n
}

#[tokengate::task_token_guard(operation_type = "f", retries = -1)]
fn negative_retries(n: u64) -> u64 {
    n
}

#[tokengate::task_token_guard(operation_type = "g", weight)]
fn weight_without_value(n: u64) -> u64 {
    n
}

fn main() {}
