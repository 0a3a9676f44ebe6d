// `Self` cannot be named in the signature: the body moves out of the impl block.

struct Point(u64);

impl Point {
    #[tokengate::task_token_guard(operation_type = "make_point")]
    fn make(x: u64) -> Self {
        Point(x)
    }
}

fn main() {}
