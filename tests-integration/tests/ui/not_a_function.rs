// The attribute goes on functions only.

#[tokengate::task_token_guard(operation_type = "prime_check")]
struct PrimeCheck;

fn main() {}
