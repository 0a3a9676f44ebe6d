// A method taking `self` cannot be a task: the task must own its inputs.

struct Counter(u64);

impl Counter {
    #[tokengate::task_token_guard(operation_type = "count")]
    fn count(&self) -> u64 {
        self.0
    }
}

fn main() {}
