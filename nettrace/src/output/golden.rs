//! Golden files for unit tests: the exact bytes a printer wrote, kept in
//! `nettrace/src/golden/<name>`, so that a change of layout, key order or
//! number format shows up as a diff. `NETTRACE_BLESS=1 cargo test` rewrites
//! them (then review the diff).

use std::path::PathBuf;

/// Fails unless `actual` is the golden file `name`'s content.
#[track_caller]
pub fn check(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/golden")
        .join(name);
    if std::env::var_os("NETTRACE_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (NETTRACE_BLESS=1 writes it)", path.display()));
    assert_eq!(actual, expected, "output differs from {}", path.display());
}
