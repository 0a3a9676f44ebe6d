//! # tokengate-macros
//!
//! The `#[task_token_guard]` attribute of [tokengate](https://docs.rs/tokengate), re-exported
//! there as `tokengate::task_token_guard` (with the default `macros` feature). It turns a plain
//! synchronous function into one that submits its body as a tokengate task and returns the
//! task's `TaskHandle` at once: the Rust form of the Python original's decorator.
//!
//! ## The Python decorator and its Rust form
//!
//! | Python (Py-TokenGate) | Rust (tokengate) |
//! | --- | --- |
//! | `@task_token_guard(operation_type='prime_check', tags={'weight': 'medium'})` | `#[tokengate::task_token_guard(operation_type = "prime_check", weight = "medium")]` |
//! | `def prime_operation(n):` | `fn prime_operation(n: u64) -> bool { .. }` |
//! | a call becomes a token that the `OperationsCoordinator` routes to a worker | the call returns a `TaskHandle<bool>` at once; `.join()` it for the result |
//!
//! ```python
//! @task_token_guard(operation_type='prime_check', tags={'weight': 'medium'})
//! def prime_operation(n):
//!     ...  # a plain synchronous body
//! ```
//!
//! ```ignore
//! // (This crate cannot run tokengate's examples; the same example runs as a doctest in
//! // tokengate's documentation of `task_token_guard`.)
//! #[tokengate::task_token_guard(operation_type = "prime_check", weight = "medium")]
//! fn prime_operation(n: u64) -> bool {
//!     n > 1 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
//! }
//!
//! let handle: tokengate::TaskHandle<bool> = prime_operation(1_000_003); // runs on tokengate::global()
//! assert_eq!(handle.join(), Ok(true));
//! ```
//!
//! ## Keys
//!
//! | key | value | default | what it does |
//! | --- | --- | --- | --- |
//! | `operation_type` | a string literal (required) | — | the operation's name: `Operation::new(name)`; calls of one name share their statistics and limits |
//! | `weight` | `"light"`, `"medium"` or `"heavy"`, in any case | `"medium"` | the lane the call waits in (light is taken first) and, with isolated routing, the workers that may run it |
//! | `sticky` | an expression over the arguments, of any `Hash` type | none | every call with an equal key runs on one worker, in call order, never two at once: `Operation::sticky(sticky_key(&expr))`, computed per call before the arguments move into the task |
//! | `retries` | an integer | `0` | a call that panics is run again up to this many times, and the handle gets the last attempt's outcome (`Runtime::submit_retrying`); every argument must then be `Clone`, since each attempt gets a clone |
//! | `deadline_ms` | an integer, at least 1 | none | a call not started within this many milliseconds resolves `TaskError::TimedOut` and never runs |
//! | `concurrency_limit` | an integer, at least 1, or a storage tier: `"slow"` (10), `"moderate"` (25), `"fast"` (50), `"insane"` (70) | none | at most this many calls of the operation run at once; the others wait without holding a worker |
//! | `runtime` | the path of a function returning `&tokengate::Runtime` | `tokengate::global` | the runtime the calls are submitted to |
//!
//! ## The expansion
//!
//! ```ignore
//! #[tokengate::task_token_guard(operation_type = "prime_check", weight = "heavy", sticky = n % 4)]
//! fn prime_operation(n: u64) -> bool { body }
//! ```
//!
//! becomes (the names starting with `__` are the expansion's own):
//!
//! ```ignore
//! fn prime_operation(n: u64) -> ::tokengate::TaskHandle<bool> {
//!     fn __tokengate_body(n: u64) -> bool { body }      // the original body, unchanged
//!     const __OP: ::tokengate::Operation =
//!         ::tokengate::Operation::new("prime_check").weight(::tokengate::Weight::Heavy);
//!     let __op = __OP.sticky(::tokengate::sticky_key(&(n % 4)));
//!     let __rt: &::tokengate::Runtime = ::tokengate::global();
//!     __rt.submit(&__op, move || __tokengate_body(n))
//! }
//! ```
//!
//! The function keeps its visibility, name, attributes (doc comments included) and
//! arguments; it returns `TaskHandle<T>` for a declared return type `T`, `TaskHandle<()>`
//! without one. With `retries`, it calls `submit_retrying` with a closure that clones every
//! argument for each attempt. The expansion also checks, at compile time, that each argument
//! and the return value are `Send + 'static` (and `Clone`, with `retries`), so that an error
//! points at the offending type rather than at the attribute.
//!
//! ## What the function may be
//!
//! - Synchronous, safe, not `const`, not `extern`, not variadic, and not a method taking
//!   `self` (an associated function without `self` is fine, if its signature names its types
//!   rather than `Self`).
//! - Its arguments and return value cross to a worker thread and are used after the call
//!   returns, so they must be `Send + 'static`: no borrowed arguments (`&T` without
//!   `'static`, `'_`, lifetime parameters). Take owned values (`String`, `Vec<T>`, `Arc<T>`).
//! - Argument patterns (`mut x: T`, `(a, b): (A, B)`) are kept in the body; a `sticky`
//!   expression can use the names they bind.
//! - Type and const generic parameters are kept as written; give type parameters the bounds
//!   the task needs (`T: Send + 'static`, and `Clone` with `retries`).
//! - The body moves into a nested function, so a recursive call calls the decorated function
//!   (and submits a new task).
//!
//! Each refusal is a compile error pointing at the offending token and saying what to write
//! instead; so are unknown or repeated keys, unknown weights and storage tiers, values of the
//! wrong kind, `concurrency_limit = 0` and a missing `operation_type`.

use proc_macro::TokenStream;
use syn::ItemFn;

mod args;
mod check;
mod expand;

/// Makes a synchronous function submit its body as a tokengate task and return the
/// `TaskHandle` at once. The `tokengate-macros` crate documentation shows the keys and the
/// expansion in full.
#[proc_macro_attribute]
pub fn task_token_guard(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = syn::parse::<args::Args>(attr);
    let item = syn::parse::<ItemFn>(item).map_err(|_| {
        syn::Error::new(
            proc_macro2::Span::call_site(),
            "#[task_token_guard] goes on a function, such as \
             `fn prime_operation(n: u64) -> bool { .. }`",
        )
    });
    let checked = item
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|item| check::signature(&item.sig));
    match (args, item, checked) {
        (Ok(args), Ok(item), Ok(())) => expand::expand(&args, &item).into(),
        (args, _, checked) => {
            let mut errors = args.err().into_iter().chain(checked.err());
            let mut first = errors.next().expect("one of the results is an error");
            first.extend(errors);
            first.into_compile_error().into()
        }
    }
}
