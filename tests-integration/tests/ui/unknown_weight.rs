// A weight other than light, medium or heavy.

#[tokengate::task_token_guard(operation_type = "prime_check", weight = "huge")]
fn prime_operation(n: u64) -> bool {
    n > 1
}

fn main() {}
