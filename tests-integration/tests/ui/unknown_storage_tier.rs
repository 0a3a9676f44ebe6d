// A storage tier other than slow, moderate, fast or insane.

#[tokengate::task_token_guard(operation_type = "save", concurrency_limit = "turbo")]
fn save(record: String) -> usize {
    record.len()
}

fn main() {}
