// The task runs after the call returns: no borrowed arguments or return values.

#[tokengate::task_token_guard(operation_type = "a")]
fn with_lifetime<'a>(text: &'a str) -> usize {
    text.len()
}

#[tokengate::task_token_guard(operation_type = "b")]
fn elided(text: &str) -> usize {
    text.len()
}

#[tokengate::task_token_guard(operation_type = "c")]
fn anonymous(text: std::borrow::Cow<'_, str>) -> usize {
    text.len()
}

#[tokengate::task_token_guard(operation_type = "d")]
fn returns_a_borrow(text: String) -> &str {
    text.leak()
}

fn main() {}
