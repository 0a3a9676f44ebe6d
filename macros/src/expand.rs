//! The expansion: the function becomes one that submits its original body as a task.
//!
//! ```text
//! fn f(n: u64) -> ::tokengate::TaskHandle<bool> {
//!     fn __tokengate_body(n: u64) -> bool { body }
//!     /* checks: each argument and the return type are `Send + 'static` */
//!     const __OP: ::tokengate::Operation = ::tokengate::Operation::new("name") /* options */;
//!     let __op = __OP; // or __OP.sticky(::tokengate::sticky_key(&(key)))
//!     let __rt: &::tokengate::Runtime = ::tokengate::global(); // or runtime()
//!     __rt.submit(&__op, move || __tokengate_body(n)) // or submit_retrying, cloning
//! }
//! ```
//!
//! Items of the expansion are named `__tokengate_*`, `__Tokengate*` and `__OP`, so that they
//! do not shadow the user's items in the body; its locals (`__op`, `__rt`, `__argN`) are
//! hygienic (mixed-site spans), so that they cannot clash with the arguments.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{FnArg, GenericParam, Generics, Ident, ItemFn, Pat, PatIdent, PatType, ReturnType, Type};

use crate::args::{Args, Limit};

/// One argument of the function.
struct Arg<'a> {
    /// The original `pattern: Type`, kept for the body's function.
    original: &'a PatType,
    /// The name the generated function binds it to: the original name when the pattern is a
    /// plain (`x` or `mut x`) name, else a generated one.
    name: Ident,
}

impl Arg<'_> {
    fn ty(&self) -> &Type {
        &self.original.ty
    }

    /// The argument's name, located at its type (but resolved as the name is), so that an
    /// error about the argument's type points at the type alone.
    fn name_at_type(&self) -> Ident {
        let mut name = self.name.clone();
        name.set_span(self.ty().span().resolved_at(self.name.span()));
        name
    }
}

/// The function `item`, tagged with `args`, as a function that submits its body.
pub(crate) fn expand(args: &Args, item: &ItemFn) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = item;
    let name = &sig.ident;
    let generics = &sig.generics;
    let where_clause = &sig.generics.where_clause;
    let fn_args: Vec<Arg<'_>> = sig
        .inputs
        .iter()
        .enumerate()
        .map(|(i, input)| match input {
            FnArg::Typed(original) => Arg {
                original,
                name: binding(&original.pat)
                    .unwrap_or_else(|| format_ident!("__arg{}", i, span = Span::mixed_site())),
            },
            FnArg::Receiver(_) => unreachable!("receivers are refused by check::signature"),
        })
        .collect();
    let output = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };

    // The body's own function: the original signature and body, unchanged. Lint attributes
    // go with the body too, so that an `#[allow(..)]` still covers it.
    let body_inputs = fn_args.iter().map(|a| a.original);
    let lint_attrs = attrs.iter().filter(|a| {
        ["allow", "warn", "deny", "forbid", "expect"]
            .iter()
            .any(|lint| a.path().is_ident(lint))
    });
    let body_output = &sig.output;

    // The generated function takes each argument by its name (a pattern's bindings live in
    // the body's function).
    let outer_inputs = fn_args.iter().map(|a| {
        let (name, ty) = (&a.name, a.ty());
        quote!(#name: #ty)
    });

    let checks = checks(&fn_args, &sig.output);
    let op_name = &args.operation_type;
    let options = options(args);
    let op = Ident::new("__op", Span::mixed_site());
    let op_value = operation(args, &fn_args);
    let rt = Ident::new("__rt", Span::mixed_site());
    let runtime = match &args.runtime {
        Some(path) => quote_spanned!(path.span()=> #path()),
        None => quote!(::tokengate::global()),
    };
    let submit = submit(args, &fn_args, generics, &op, &rt);

    quote! {
        #(#attrs)*
        #vis fn #name #generics (#(#outer_inputs),*) -> ::tokengate::TaskHandle<#output>
        #where_clause
        {
            #(#lint_attrs)*
            fn __tokengate_body #generics (#(#body_inputs),*) #body_output #where_clause #block

            #checks
            const __OP: ::tokengate::Operation = ::tokengate::Operation::new(#op_name) #options;
            let #op = #op_value;
            let #rt: &::tokengate::Runtime = #runtime;
            #submit
        }
    }
}

/// The builder calls that set the operation's options after `Operation::new(name)`.
fn options(args: &Args) -> TokenStream {
    let weight = Ident::new(args.weight, Span::call_site());
    let mut options = quote!(.weight(::tokengate::Weight::#weight));
    if args.retries > 0 {
        let retries = args.retries;
        options.extend(quote!(.retries(#retries)));
    }
    if let Some(ms) = args.deadline_ms {
        options.extend(quote!(.deadline(::core::time::Duration::from_millis(#ms))));
    }
    match &args.concurrency_limit {
        Some(Limit::Tasks(n)) => options.extend(quote!(.concurrency_limit(#n))),
        Some(Limit::Tier(tier)) => {
            let tier = Ident::new(tier, Span::call_site());
            options.extend(quote!(.storage_tier(::tokengate::StorageTier::#tier)));
        }
        None => {}
    }
    options
}

/// The operation of one call: `__OP`, or `__OP` with the call's sticky key. The key is
/// computed before the arguments move into the task; arguments given as patterns are bound
/// again, by reference, so that the expression can use the names the patterns bind.
fn operation(args: &Args, fn_args: &[Arg<'_>]) -> TokenStream {
    let Some(key) = &args.sticky else {
        return quote!(__OP);
    };
    let rebinds = fn_args
        .iter()
        .filter(|a| binding(&a.original.pat).is_none())
        .map(|a| {
            let mut pat = (*a.original.pat).clone();
            ByReference.visit_pat_mut(&mut pat);
            let name = &a.name;
            quote! {
                #[allow(unused_variables)]
                let #pat = &#name;
            }
        });
    // Located at the expression, so that a key that is not `Hash` is reported there.
    let key = quote_spanned!(key.span()=> ::tokengate::sticky_key(&(#key)));
    quote! {{
        #(#rebinds)*
        __OP.sticky(#key)
    }}
}

/// The submission: `submit`, or with `retries`, `submit_retrying` with a closure that clones
/// the arguments for each attempt.
fn submit(
    args: &Args,
    fn_args: &[Arg<'_>],
    generics: &Generics,
    op: &Ident,
    rt: &Ident,
) -> TokenStream {
    let params: Vec<&Ident> = generics
        .params
        .iter()
        .filter_map(|p| match p {
            GenericParam::Type(t) => Some(&t.ident),
            GenericParam::Const(c) => Some(&c.ident),
            GenericParam::Lifetime(_) => None,
        })
        .collect();
    // Explicit, for a type parameter that only the return type mentions.
    let body = if params.is_empty() {
        quote!(__tokengate_body)
    } else {
        quote!(__tokengate_body::<#(#params),*>)
    };
    if args.retries == 0 {
        let names = fn_args.iter().map(|a| &a.name);
        return quote!(#rt.submit(&#op, move || #body(#(#names),*)));
    }
    // The `Clone` requirement is checked where each argument's clone is made, located at the
    // argument, with a message that names `retries`.
    let clones = fn_args.iter().map(|a| {
        let name = &a.name;
        quote_spanned!(a.ty().span()=> __tokengate_retry_argument(&#name))
    });
    quote! {{
        #[diagnostic::on_unimplemented(
            message = "`{Self}` is not `Clone`, but a function with `retries` clones each \
                       argument for every attempt",
            label = "this argument must be `Clone`",
            note = "derive or implement `Clone` for the argument's type, pass it in an `Arc`, \
                    or remove `retries`"
        )]
        trait __TokengateRetryArgument: ::core::clone::Clone {}
        impl<T: ::core::clone::Clone> __TokengateRetryArgument for T {}
        fn __tokengate_retry_argument<T: __TokengateRetryArgument>(value: &T) -> T {
            ::core::clone::Clone::clone(value)
        }
        #rt.submit_retrying(&#op, move || #body(#(#clones),*))
    }}
}

/// Compile-time checks that each argument and the return value can cross to and from a worker
/// thread (`Send + 'static`), located at their types: without them the error would point at
/// the expansion's closure, that is, at the attribute.
fn checks(fn_args: &[Arg<'_>], output: &ReturnType) -> TokenStream {
    let mut checks = TokenStream::new();
    if !fn_args.is_empty() {
        let each = fn_args.iter().map(|a| {
            let name = a.name_at_type();
            quote_spanned!(a.ty().span()=> __tokengate_task_argument(&#name);)
        });
        checks.extend(quote! {
            #[diagnostic::on_unimplemented(
                message = "`{Self}` cannot be the argument of a task: it is not `Send`, and \
                           the arguments move to a worker thread",
                label = "this argument must be `Send`",
                note = "use a `Send` type instead (such as `Arc` for `Rc`, `Mutex` for \
                        `RefCell`), or give the type parameter a `Send` bound"
            )]
            trait __TokengateTaskArgument: ::core::marker::Send + 'static {}
            impl<T: ::core::marker::Send + 'static> __TokengateTaskArgument for T {}
            fn __tokengate_task_argument<T: __TokengateTaskArgument>(_: &T) {}
            #(#each)*
        });
    }
    // An opaque return type (`impl Trait`) cannot be named here; the runtime's own bound
    // reports it.
    if let ReturnType::Type(_, ty) = output {
        if !mentions_impl(ty) {
            let check = quote_spanned!(ty.span()=> __tokengate_task_output::<#ty>(););
            checks.extend(quote! {
                #[diagnostic::on_unimplemented(
                    message = "`{Self}` cannot be the return value of a task: it is not \
                               `Send`, and it moves back from a worker thread",
                    label = "the return type must be `Send`",
                    note = "use a `Send` type instead (such as `Arc` for `Rc`, `Mutex` for \
                            `RefCell`), or give the type parameter a `Send` bound"
                )]
                trait __TokengateTaskOutput: ::core::marker::Send + 'static {}
                impl<T: ::core::marker::Send + 'static> __TokengateTaskOutput for T {}
                fn __tokengate_task_output<T: __TokengateTaskOutput>() {}
                #check
            });
        }
    }
    checks
}

/// Whether `ty` contains an `impl Trait`.
fn mentions_impl(ty: &Type) -> bool {
    fn walk(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|t| match t {
            TokenTree::Ident(i) => i == "impl",
            TokenTree::Group(g) => walk(g.stream()),
            _ => false,
        })
    }
    walk(ty.to_token_stream())
}

/// The name a plain `name` or `mut name` pattern binds, if the pattern is one.
fn binding(pat: &Pat) -> Option<Ident> {
    match pat {
        Pat::Ident(PatIdent {
            by_ref: None,
            subpat: None,
            ident,
            ..
        }) => Some(ident.clone()),
        _ => None,
    }
}

/// Turns a pattern's `mut x` and `ref x` bindings into plain ones, so that the pattern can be
/// matched against a reference (each name then binds a reference into the argument).
struct ByReference;

impl VisitMut for ByReference {
    fn visit_pat_ident_mut(&mut self, p: &mut PatIdent) {
        p.by_ref = None;
        p.mutability = None;
        visit_mut::visit_pat_ident_mut(self, p);
    }
}
