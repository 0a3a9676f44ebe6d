// An `async fn` cannot be a task: tokengate runs synchronous functions.

#[tokengate::task_token_guard(operation_type = "fetch")]
async fn fetch(url: String) -> usize {
    url.len()
}

fn main() {}
