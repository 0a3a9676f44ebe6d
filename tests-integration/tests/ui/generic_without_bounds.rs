// Type parameters are kept as written: they need the bounds the task needs.

#[tokengate::task_token_guard(operation_type = "describe")]
fn describe<T: std::fmt::Debug>(value: T) -> String {
    format!("{value:?}")
}

#[tokengate::task_token_guard(operation_type = "describe_send")]
fn describe_send<T: std::fmt::Debug + Send>(value: T) -> String {
    format!("{value:?}")
}

fn main() {}
