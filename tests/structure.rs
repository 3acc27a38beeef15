//! The module graph rules of the README's "Layout" section, read from the source the way a
//! reviewer would: every `crate::…` path in `src/`, comments left out. A change that makes
//! `app` import a transport, or `http` import the application, fails here before review.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules every layer may use: they import nothing above them.
const LEAVES: &[&str] = &[
    "clock", "config", "error", "input", "limiter", "logging", "metrics", "random",
];
/// The transports and the operator routes: `app` must not know them.
const TRANSPORTS: &[&str] = &["http", "ws", "ops"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to: `src/auth/otp.rs` → `auth`, `src/app.rs` → `app`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("a component");
    let name = first.as_os_str().to_string_lossy();
    name.trim_end_matches(".rs").to_string()
}

/// The code of a file without `//` comments (doc comments name modules in prose).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Top-level modules named by `crate::x` and `crate::{x, y::z}` in `text`.
fn imports(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            // Names at depth 0 of the brace group are top-level modules.
            let mut depth = 0;
            let mut word = String::new();
            let mut at_start = true;
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => at_start = true,
                    c if depth == 0 && at_start && (c.is_alphanumeric() || c == '_') => {
                        word.push(c)
                    }
                    _ => {
                        if !word.is_empty() {
                            found.insert(std::mem::take(&mut word));
                        }
                        if depth == 0 && !c.is_whitespace() {
                            at_start = false;
                        }
                    }
                }
            }
            if !word.is_empty() {
                found.insert(word);
            }
        } else {
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
        rest = after;
    }
    found
}

struct Tree {
    src: PathBuf,
    files: Vec<(PathBuf, String)>,
}

fn tree() -> Tree {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    paths.sort();
    let files = paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read a source file");
            (p, text)
        })
        .collect();
    Tree { src, files }
}

/// `from → {to}` over top-level modules, self-references left out.
fn graph(t: &Tree) -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeSet<String> = t.files.iter().map(|(p, _)| module_of(&t.src, p)).collect();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, text) in &t.files {
        let from = module_of(&t.src, path);
        if from == "lib" || from == "main" {
            continue; // the crate root wires everything together
        }
        let entry = g.entry(from.clone()).or_default();
        for to in imports(&code(text)) {
            if to != from && modules.contains(&to) {
                entry.insert(to);
            }
        }
    }
    g
}

fn reaches(g: &BTreeMap<String, BTreeSet<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_string()];
    while let Some(m) = todo.pop() {
        for next in g.get(&m).into_iter().flatten() {
            if seen.insert(next.clone()) {
                todo.push(next.clone());
            }
        }
    }
    seen
}

#[test]
fn the_import_parser_reads_paths_and_groups() {
    let found =
        imports("use crate::{auth::tokens::{Keys, verify}, db::Db};\nlet x = crate::clock::now();");
    let want: BTreeSet<String> = ["auth", "clock", "db"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(found, want);
}

#[test]
fn app_imports_no_transport() {
    let g = graph(&tree());
    let app = g.get("app").cloned().unwrap_or_default();
    let bad: Vec<_> = app
        .iter()
        .filter(|m| TRANSPORTS.contains(&m.as_str()))
        .collect();
    assert!(bad.is_empty(), "app imports {bad:?}; the graph: {g:#?}");
}

#[test]
fn http_imports_only_leaves() {
    let g = graph(&tree());
    let http = g.get("http").cloned().unwrap_or_default();
    let bad: Vec<_> = http
        .iter()
        .filter(|m| !LEAVES.contains(&m.as_str()))
        .collect();
    assert!(bad.is_empty(), "http imports {bad:?}");
}

#[test]
fn no_cycle_runs_through_http() {
    let g = graph(&tree());
    assert!(
        !reaches(&g, "http").contains("http"),
        "a cycle runs through http: {g:#?}"
    );
}

#[test]
fn leaves_import_only_leaves() {
    let g = graph(&tree());
    for leaf in LEAVES {
        let out = g.get(*leaf).cloned().unwrap_or_default();
        let bad: Vec<_> = out
            .iter()
            .filter(|m| !LEAVES.contains(&m.as_str()))
            .collect();
        assert!(bad.is_empty(), "leaf {leaf} imports {bad:?}");
    }
}

#[test]
fn most_items_are_crate_private() {
    let t = tree();
    let (mut restricted, mut all) = (0usize, 0usize);
    for (_, text) in &t.files {
        let c = code(text);
        let mut rest = c.as_str();
        while let Some(i) = rest.find("pub") {
            let before = c.len() - rest.len() + i;
            let prev = c[..before].chars().last();
            let after = &rest[i + 3..];
            rest = after;
            if prev.is_some_and(|p| p.is_alphanumeric() || p == '_') {
                continue;
            }
            if after.starts_with("(crate)") {
                restricted += 1;
                all += 1;
            } else if after.starts_with(' ') || after.starts_with('(') {
                all += 1;
            }
        }
    }
    assert!(
        restricted * 2 >= all,
        "pub(crate) is {restricted} of {all} visibility-marked items"
    );
}

#[test]
fn no_handler_file_is_over_400_lines() {
    let t = tree();
    for (path, text) in &t.files {
        let is_handler = text.contains("#[utoipa::path");
        let lines = text.lines().count();
        assert!(
            !is_handler || lines <= 400,
            "{} is a handler file of {lines} lines",
            path.display()
        );
    }
}
