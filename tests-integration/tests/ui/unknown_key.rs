// Unknown keys list the valid ones; the Python original's `tags` gets a hint.

#[tokengate::task_token_guard(operation_type = "prime_check", wieght = "heavy")]
fn misspelled(n: u64) -> bool {
    n > 1
}

#[tokengate::task_token_guard(operation_type = "prime_check", tags = { "weight": "medium" })]
fn python_tags(n: u64) -> bool {
    n > 1
}

fn main() {}
