//! The attribute's arguments: `key = value` pairs, checked one by one.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{Expr, ExprLit, Ident, Lit, LitInt, LitStr, Path, Token};

/// Every key, in the order the error for an unknown key lists them.
const KEYS: &str =
    "operation_type, weight, sticky, retries, deadline_ms, concurrency_limit, runtime";

/// The checked arguments of one `#[task_token_guard(...)]`.
pub(crate) struct Args {
    /// The operation's name.
    pub(crate) operation_type: LitStr,
    /// The weight: the variant name of `tokengate::Weight`.
    pub(crate) weight: &'static str,
    /// The expression whose value is the sticky key, over the arguments.
    pub(crate) sticky: Option<Expr>,
    /// Extra runs of a panicking call; 0 for none.
    pub(crate) retries: u32,
    /// The start deadline in milliseconds.
    pub(crate) deadline_ms: Option<u64>,
    /// At most this many calls run at once.
    pub(crate) concurrency_limit: Option<Limit>,
    /// A function returning the `&Runtime` to submit to, instead of `tokengate::global`.
    pub(crate) runtime: Option<Path>,
}

/// A concurrency limit: a number of tasks or a storage tier's preset.
pub(crate) enum Limit {
    /// `concurrency_limit = 8`
    Tasks(u32),
    /// `concurrency_limit = "slow"`: the variant name of `tokengate::StorageTier`.
    Tier(&'static str),
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut operation_type = None;
        let mut weight = None;
        let mut sticky = None;
        let mut retries = None;
        let mut deadline_ms = None;
        let mut concurrency_limit = None;
        let mut runtime = None;
        let mut seen: Vec<Ident> = Vec::new();

        while !input.is_empty() {
            // `parse_any` so that a keyword (`type = ...`) gets the "unknown key" message.
            let key = input.call(Ident::parse_any)?;
            let name = key.to_string();
            if !KEYS.split(", ").any(|k| k == name) {
                return Err(unknown_key(&key));
            }
            if seen.contains(&key) {
                return Err(syn::Error::new_spanned(
                    &key,
                    format!("duplicate key `{name}`: give each key once"),
                ));
            }
            if !input.peek(Token![=]) {
                return Err(syn::Error::new_spanned(
                    &key,
                    format!("`{name}` needs a value: write {}", example(&name)),
                ));
            }
            input.parse::<Token![=]>()?;
            let value: Expr = input.parse()?;
            match name.as_str() {
                "operation_type" => {
                    let lit = string(&name, &value)?;
                    if lit.value().is_empty() {
                        return Err(syn::Error::new_spanned(
                            &lit,
                            "the operation_type must not be empty: write a name such as \
                             operation_type = \"prime_check\"",
                        ));
                    }
                    operation_type = Some(lit);
                }
                "weight" => weight = Some(parse_weight(&string(&name, &value)?)?),
                "sticky" => sticky = Some(value),
                "retries" => retries = Some(integer::<u32>(&name, &value)?.0),
                "deadline_ms" => {
                    let (ms, lit) = integer::<u64>(&name, &value)?;
                    if ms == 0 {
                        return Err(syn::Error::new_spanned(
                            lit,
                            "deadline_ms = 0 would time out every call that does not start at \
                             once: use 1 or more, or leave the key out",
                        ));
                    }
                    deadline_ms = Some(ms);
                }
                "concurrency_limit" => concurrency_limit = Some(parse_limit(&value)?),
                "runtime" => runtime = Some(runtime_path(&value)?),
                _ => unreachable!("every key in KEYS is matched"),
            }
            seen.push(key);
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }

        let Some(operation_type) = operation_type else {
            return Err(syn::Error::new(
                Span::call_site(),
                "missing `operation_type`: name the operation, as in \
                 #[task_token_guard(operation_type = \"prime_check\")]",
            ));
        };
        Ok(Args {
            operation_type,
            weight: weight.unwrap_or("Medium"),
            sticky,
            retries: retries.unwrap_or(0),
            deadline_ms,
            concurrency_limit,
            runtime,
        })
    }
}

fn unknown_key(key: &Ident) -> syn::Error {
    let hint = if key == "tags" {
        " (the Python original's `tags` entries are keys of their own here: weight = \"medium\")"
    } else {
        ""
    };
    syn::Error::new_spanned(
        key,
        format!("unknown key `{key}`{hint}; the keys are: {KEYS}"),
    )
}

/// How a key is written, for the messages.
fn example(key: &str) -> &'static str {
    match key {
        "operation_type" => "operation_type = \"prime_check\"",
        "weight" => "weight = \"light\", \"medium\" or \"heavy\"",
        "sticky" => "sticky = <an expression over the arguments>, such as sticky = user_id",
        "retries" => "retries = 3",
        "deadline_ms" => "deadline_ms = 500",
        "concurrency_limit" => {
            "concurrency_limit = 8, or a storage tier: \"slow\", \"moderate\", \"fast\" or \"insane\""
        }
        "runtime" => "runtime = path::to::a_fn (a function returning &tokengate::Runtime)",
        _ => unreachable!("only called with a known key"),
    }
}

fn literal(value: &Expr) -> Option<&Lit> {
    match value {
        Expr::Lit(ExprLit { lit, attrs }) if attrs.is_empty() => Some(lit),
        _ => None,
    }
}

fn string(key: &str, value: &Expr) -> syn::Result<LitStr> {
    match literal(value) {
        Some(Lit::Str(s)) => Ok(s.clone()),
        _ => Err(syn::Error::new_spanned(
            value,
            format!("`{key}` takes a string literal: write {}", example(key)),
        )),
    }
}

fn integer<N>(key: &str, value: &Expr) -> syn::Result<(N, LitInt)>
where
    N: std::str::FromStr,
    N::Err: std::fmt::Display,
{
    match literal(value) {
        Some(Lit::Int(i)) => match i.base10_parse::<N>() {
            Ok(n) => Ok((n, i.clone())),
            Err(e) => Err(syn::Error::new_spanned(
                i,
                format!(
                    "`{key}` takes a whole number of type {}: {e}",
                    std::any::type_name::<N>()
                ),
            )),
        },
        _ => Err(syn::Error::new_spanned(
            value,
            format!("`{key}` takes an integer literal: write {}", example(key)),
        )),
    }
}

fn parse_weight(lit: &LitStr) -> syn::Result<&'static str> {
    match lit.value().to_ascii_lowercase().as_str() {
        "light" => Ok("Light"),
        "medium" => Ok("Medium"),
        "heavy" => Ok("Heavy"),
        _ => Err(syn::Error::new_spanned(
            lit,
            format!(
                "unknown weight {:?}: the weights are \"light\", \"medium\" and \"heavy\" \
                 (in any case)",
                lit.value()
            ),
        )),
    }
}

fn parse_limit(value: &Expr) -> syn::Result<Limit> {
    match literal(value) {
        Some(Lit::Str(s)) => match s.value().to_ascii_lowercase().as_str() {
            "slow" => Ok(Limit::Tier("Slow")),
            "moderate" => Ok(Limit::Tier("Moderate")),
            "fast" => Ok(Limit::Tier("Fast")),
            "insane" => Ok(Limit::Tier("Insane")),
            _ => Err(syn::Error::new_spanned(
                s,
                format!(
                    "unknown storage tier {:?}: the tiers are \"slow\" (10 at once), \
                     \"moderate\" (25), \"fast\" (50) and \"insane\" (70); or give a number, \
                     as in concurrency_limit = 8",
                    s.value()
                ),
            )),
        },
        Some(Lit::Int(_)) => {
            let (n, lit) = integer::<u32>("concurrency_limit", value)?;
            if n == 0 {
                return Err(syn::Error::new_spanned(
                    lit,
                    "concurrency_limit = 0 would never run a call: use 1 or more, or leave the \
                     key out",
                ));
            }
            Ok(Limit::Tasks(n))
        }
        _ => Err(syn::Error::new_spanned(
            value,
            format!(
                "`concurrency_limit` takes an integer or a string literal: write {}",
                example("concurrency_limit")
            ),
        )),
    }
}

fn runtime_path(value: &Expr) -> syn::Result<Path> {
    match value {
        Expr::Path(p) if p.qself.is_none() && p.attrs.is_empty() => Ok(p.path.clone()),
        _ => Err(syn::Error::new_spanned(
            value,
            format!(
                "`runtime` takes the path of a function, without a call: write {}",
                example("runtime")
            ),
        )),
    }
}
