// A variadic function cannot be a task.

#[tokengate::task_token_guard(operation_type = "sum")]
fn sum(first: u64, rest: ...) -> u64 {
    first
}

fn main() {}
