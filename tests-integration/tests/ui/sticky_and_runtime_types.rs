// A sticky key must be `Hash`; `runtime` must name a function returning `&Runtime`.

struct Account {
    id: u64,
}

#[tokengate::task_token_guard(operation_type = "deposit", sticky = account)]
fn deposit(account: std::sync::Arc<Account>, cents: u64) -> u64 {
    account.id + cents
}

fn not_a_runtime() -> u32 {
    7
}

#[tokengate::task_token_guard(operation_type = "elsewhere", runtime = not_a_runtime)]
fn elsewhere(n: u64) -> u64 {
    n
}

fn main() {}
