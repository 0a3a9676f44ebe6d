//! The crate's modules import each other without a circle: a module that imports another is
//! layered above it, so either can be read, changed and tested knowing only what lies below.
//!
//! Read from the sources: every `super::…` and `crate::…` path (in `use` lists too) names the
//! module it reaches; a path into one's own ancestors (`super::Engine` from a file of
//! `engine/`) is the module's own parent, not a layer, and is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// Module path (`engine::worker`) → its file's text, for every `.rs` file under `src/`.
fn modules() -> BTreeMap<String, (String, bool)> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, (String, bool)>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root).unwrap().with_extension("");
                let mut parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                let is_dir_module = matches!(parts.last().map(String::as_str), Some("mod" | "lib"));
                if is_dir_module {
                    parts.pop();
                }
                let text = fs::read_to_string(&path).unwrap();
                out.insert(parts.join("::"), (text, is_dir_module));
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    walk(&root, &root, &mut out);
    out
}

/// The paths a file names after `super::` or `crate::`, as module-path segments from the
/// crate root (`use super::{a, b::C}` gives both).
fn named_paths(module: &str, is_dir_module: bool, text: &str) -> Vec<Vec<String>> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut parent: Vec<String> = module
        .split("::")
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    if !is_dir_module {
        parent.pop();
    }
    let mut found = Vec::new();
    for (kind, base) in [("super::", &parent), ("crate::", &Vec::new())] {
        let mut base = base.clone();
        if kind == "super::" && is_dir_module {
            base.pop();
        }
        for (at, _) in text.match_indices(kind) {
            if text[..at].chars().next_back().is_some_and(ident) {
                continue; // `xsuper::` is not `super::`
            }
            let rest = &text[at + kind.len()..];
            let path: String = rest.chars().take_while(|&c| ident(c) || c == ':').collect();
            let mut segments: Vec<String> = base.clone();
            segments.extend(path.split("::").filter(|s| !s.is_empty()).map(String::from));
            if rest[path.len()..].starts_with('{') {
                let list = &rest[path.len() + 1..rest.find('}').unwrap_or(rest.len())];
                for item in list.split(',') {
                    let first: String = item.trim().chars().take_while(|&c| ident(c)).collect();
                    let mut s = segments.clone();
                    s.push(first);
                    found.push(s);
                }
            } else {
                found.push(segments);
            }
        }
    }
    found
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let modules = modules();
    let mut imports: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (module, (text, is_dir)) in &modules {
        let edges = imports.entry(module).or_default();
        for path in named_paths(module, *is_dir, text) {
            // The longest prefix of the path that is a module.
            let target = (1..=path.len())
                .rev()
                .map(|k| path[..k].join("::"))
                .find_map(|m| modules.get_key_value(&m).map(|(k, _)| k.as_str()));
            if let Some(target) = target {
                let ancestor = module.starts_with(&format!("{target}::")) || target.is_empty();
                if target != module && !ancestor {
                    edges.insert(target);
                }
            }
        }
    }
    assert!(
        imports
            .get("engine::worker")
            .is_some_and(|e| e.contains("engine::stack_job")),
        "the scan must see `use super::stack_job::…` in engine/worker.rs: {:?}",
        imports.get("engine::worker")
    );
    // Depth-first search for a circle: a module reached again while still on the path.
    fn visit<'a>(
        m: &'a str,
        imports: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if let Some(at) = path.iter().position(|&p| p == m) {
            panic!("import circle: {} -> {m}", path[at..].join(" -> "));
        }
        if !done.insert(m) {
            return;
        }
        path.push(m);
        for &next in imports.get(m).into_iter().flatten() {
            visit(next, imports, path, done);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for &m in imports.keys() {
        visit(m, &imports, &mut Vec::new(), &mut done);
    }
}
