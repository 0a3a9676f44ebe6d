// Each key may be given once.

#[tokengate::task_token_guard(operation_type = "prime_check", weight = "light", weight = "heavy")]
fn prime_operation(n: u64) -> bool {
    n > 1
}

fn main() {}
