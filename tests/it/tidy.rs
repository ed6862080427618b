//! The module layering of ARCHITECTURE.md ("Layer order"), checked over the source: a module
//! may use only modules below it, so there are no import circles. Reads `crate::` paths in
//! code (not comments), resolving the crate root's re-exports to their modules.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The crate root's re-exports, by the module that defines them.
const ROOT_EXPORTS: &[(&str, &str)] = &[
    ("Error", "error"),
    ("Result", "error"),
    ("Node", "node"),
    ("Ticket", "node"),
    ("Client", "client"),
    ("Config", "config"),
    ("Reply", "wait"),
    ("Server", "server"),
    ("for_each_unary", "service"),
];

/// Top-level modules, highest first, from ARCHITECTURE.md's "Layer order" line.
fn layers() -> Vec<String> {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md")).unwrap();
    let line = doc.lines().find(|l| l.starts_with("Layer order")).expect("ARCHITECTURE.md names the layer order");
    line.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The modules a line of code names through `crate::`.
fn used_modules(line: &str) -> Vec<String> {
    let mut used = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let items = &group[..group.find('}').unwrap_or(group.len())];
            for item in items.split(',').map(|i| i.trim().split("::").next().unwrap_or("")) {
                match ROOT_EXPORTS.iter().find(|(name, _)| *name == item) {
                    Some((_, module)) => used.push(module.to_string()),
                    None if !item.is_empty() => used.push(item.to_string()),
                    None => {}
                }
            }
            continue;
        }
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        match ROOT_EXPORTS.iter().find(|(export, _)| *export == name) {
            Some((_, module)) => used.push(module.to_string()),
            None => used.push(name),
        }
    }
    used
}

#[test]
fn no_module_uses_a_module_above_it() {
    let order = layers();
    let rank: HashMap<&str, usize> = order.iter().enumerate().map(|(i, m)| (m.as_str(), i)).collect();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut upward = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let module = rel.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
        if matches!(module.as_str(), "lib" | "main" | "bin") {
            continue;
        }
        let Some(&mine) = rank.get(module.as_str()) else {
            panic!("src/{module} is not in ARCHITECTURE.md's layer order");
        };
        for (n, line) in std::fs::read_to_string(&file).unwrap().lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for used in used_modules(line) {
                if used == module {
                    continue;
                }
                match rank.get(used.as_str()) {
                    Some(&theirs) if theirs > mine => {}
                    Some(_) => upward.push(format!("{}:{}: {module} uses {used}", rel.display(), n + 1)),
                    None => panic!("{}:{}: crate::{used} is not a module in the layer order", rel.display(), n + 1),
                }
            }
        }
    }
    assert!(upward.is_empty(), "imports against the layer order:\n{}", upward.join("\n"));
}

#[test]
fn the_checker_sees_every_form_of_use() {
    assert_eq!(used_modules("use crate::{Error, Node, Result};"), ["error", "node", "error"]);
    assert_eq!(used_modules("let x = crate::raft::node::Foo; crate::Config::new()"), ["raft", "config"]);
    assert_eq!(used_modules("use crate::{mvcc::Store, pb};"), ["mvcc", "pb"]);
}
