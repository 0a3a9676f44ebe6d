// With `retries`, every argument is cloned for each attempt, so it must be `Clone`.

struct Job {
    id: u64,
}

#[tokengate::task_token_guard(operation_type = "run_job", retries = 2)]
fn run_job(name: String, job: Job) -> u64 {
    name.len() as u64 + job.id
}

fn main() {}
