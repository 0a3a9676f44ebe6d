//! What the attribute refuses in a function, each with a message that says what to write.

use syn::visit::{self, Visit};
use syn::{
    FnArg, GenericParam, Lifetime, ParenthesizedGenericArguments, ReturnType, Signature,
    TraitBound, Type, TypeBareFn, TypePath, TypeReference,
};

/// Every reason `sig` cannot become a task, combined into one error (so all are shown at once).
pub(crate) fn signature(sig: &Signature) -> syn::Result<()> {
    let mut errors = Vec::new();
    if let Some(token) = &sig.constness {
        errors.push(syn::Error::new_spanned(
            token,
            "a `const fn` cannot be a task: the attribute makes a function that submits work at \
             run time; remove `const`",
        ));
    }
    if let Some(token) = &sig.asyncness {
        errors.push(syn::Error::new_spanned(
            token,
            "an `async fn` cannot be a task: tokengate runs synchronous functions on its \
             worker threads; remove `async` and make the body synchronous (async code can \
             `.await` the TaskHandle the function returns)",
        ));
    }
    if let Some(token) = &sig.unsafety {
        errors.push(syn::Error::new_spanned(
            token,
            "an `unsafe fn` cannot be a task: its body would run later on a worker thread, \
             where the caller's safety promises no longer hold; make the function safe and put \
             an `unsafe` block inside it",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            "an `extern` function cannot be a task: the attribute makes it return a \
             tokengate::TaskHandle, which has no foreign ABI; remove the `extern` ABI",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            "a variadic function cannot be a task: take the values as a Vec or a slice-owning \
             type instead of `...`",
        ));
    }
    for param in &sig.generics.params {
        if let GenericParam::Lifetime(l) = param {
            errors.push(syn::Error::new_spanned(
                &l.lifetime,
                format!(
                    "lifetime parameters such as `{}` are not allowed: the body runs later on a \
                     worker thread, so the arguments must be 'static; take owned values \
                     (String, Vec<T>, Arc<T>) instead of borrows",
                    l.lifetime
                ),
            ));
        }
    }
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => errors.push(syn::Error::new_spanned(
                receiver,
                "a method taking `self` cannot be a task: write a free function (or an \
                 associated function) that takes the value as an ordinary argument, \
                 such as `fn f(this: Counter)`",
            )),
            FnArg::Typed(arg) => owned(&arg.ty, "argument", &mut errors),
        }
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        owned(ty, "return", &mut errors);
    }
    let mut errors = errors.into_iter();
    match errors.next() {
        None => Ok(()),
        Some(mut first) => {
            first.extend(errors);
            Err(first)
        }
    }
}

/// Refuses borrows and `Self` in an argument or return type.
fn owned(ty: &Type, what: &'static str, errors: &mut Vec<syn::Error>) {
    let mut check = Owned {
        what,
        bound: Vec::new(),
        errors,
    };
    check.visit_type(ty);
}

/// A type visitor that reports non-'static references and lifetimes, and `Self`. Lifetimes that
/// belong to a function-pointer or `Fn(..)` signature or a `for<'a>` bound are not borrows of
/// the caller's data, so they are skipped.
struct Owned<'e> {
    what: &'static str,
    /// The lifetimes bound by the enclosing `for<...>`s.
    bound: Vec<Lifetime>,
    errors: &'e mut Vec<syn::Error>,
}

impl Owned<'_> {
    fn borrow_message(&self, found: &str) -> String {
        match self.what {
            "argument" => format!(
                "{found} in an argument is not allowed: the body runs later on a worker thread, \
                 so every argument must be 'static; take an owned value (String, Vec<T>, \
                 Arc<T>) or a &'static reference"
            ),
            _ => format!(
                "{found} in the return type is not allowed: the value is sent back from a \
                 worker thread, so it must be 'static; return an owned value"
            ),
        }
    }
}

impl<'ast> Visit<'ast> for Owned<'_> {
    fn visit_type_reference(&mut self, r: &'ast TypeReference) {
        if r.lifetime.is_none() {
            let message = self.borrow_message("a reference without 'static");
            self.errors.push(syn::Error::new_spanned(r, message));
        }
        visit::visit_type_reference(self, r);
    }

    fn visit_lifetime(&mut self, l: &'ast Lifetime) {
        if l.ident != "static" && !self.bound.contains(l) {
            let message = self.borrow_message(&format!("the lifetime `{l}`"));
            self.errors.push(syn::Error::new_spanned(l, message));
        }
    }

    fn visit_type_path(&mut self, p: &'ast TypePath) {
        if p.qself.is_none() && p.path.segments.first().is_some_and(|s| s.ident == "Self") {
            self.errors.push(syn::Error::new_spanned(
                p,
                "`Self` cannot be named in the signature: the body moves into a function of its \
                 own, outside any impl block; name the type itself",
            ));
            return;
        }
        visit::visit_type_path(self, p);
    }

    fn visit_trait_bound(&mut self, b: &'ast TraitBound) {
        let bound = b
            .lifetimes
            .iter()
            .flat_map(|l| &l.lifetimes)
            .filter_map(|p| match p {
                GenericParam::Lifetime(l) => Some(l.lifetime.clone()),
                _ => None,
            });
        let outer = self.bound.len();
        self.bound.extend(bound);
        visit::visit_path(self, &b.path);
        self.bound.truncate(outer);
    }

    fn visit_type_bare_fn(&mut self, _: &'ast TypeBareFn) {
        // `fn(&str) -> usize` is 'static: its lifetimes are the pointer's own.
    }

    fn visit_parenthesized_generic_arguments(&mut self, _: &'ast ParenthesizedGenericArguments) {
        // `Fn(&str) -> usize` in a bound: the lifetimes are the signature's own.
    }
}
