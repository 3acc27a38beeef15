//! Embeds every `sql/NNNN_name.sql` file in the binary, in order, so a new migration is one new
//! file: nothing to register by hand (a migration once sat unregistered for a whole commit).

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("sql/ is readable") {
        let path = entry.expect("a sql/ entry").path();
        let file = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let Some(stem) = file.strip_suffix(".sql") else {
            continue;
        };
        let (number, name) = stem
            .split_once('_')
            .unwrap_or_else(|| panic!("sql/{file}: migrations are named NNNN_name.sql"));
        let version: i64 = number
            .parse()
            .unwrap_or_else(|_| panic!("sql/{file}: {number} is not a number"));
        found.push((version, name.to_string(), path.display().to_string()));
    }
    found.sort();
    for (i, (version, _, path)) in found.iter().enumerate() {
        // Numbers run 1, 2, 3… with no gap or repeat: a gap usually means a lost file.
        assert_eq!(
            *version,
            i as i64 + 1,
            "{path}: expected migration {}",
            i + 1
        );
    }
    let mut out = String::from("&[\n");
    for (version, name, path) in &found {
        writeln!(out, "    ({version}, {name:?}, include_str!({path:?})),").expect("write");
    }
    out.push(']');
    let target = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("migrations.rs");
    std::fs::write(target, out).expect("write migrations.rs");
}
