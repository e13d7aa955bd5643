//! The text package databases on real data: this machine's dpkg database against what
//! `dpkg-query` lists, the distroless `status.d/` form built from it, a hand-written
//! Alpine 3.19 database (`tests/vectors/scan/apk-installed`), Python metadata and npm
//! manifests copied from this machine (`tests/vectors/scan/{python,npm}`) and the live
//! trees against what Python's `importlib.metadata` and `npm ls` list, os-release files
//! of real distributions, and hostile variants of each. A test whose tool is missing
//! says so and passes, except under CI.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "scan_inventory/apk.rs"]
mod apk;
#[path = "scan_inventory/dpkg.rs"]
mod dpkg;
#[path = "scan_inventory/npm.rs"]
mod npm;
#[path = "scan_inventory/os_release.rs"]
mod os_release;
#[path = "scan_inventory/python.rs"]
mod python;

/// The checked-in fixtures.
fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/scan")
}

/// Whether `program` runs with `args`; if not, says which test skips, and fails under
/// CI, which must run them all.
fn have(program: &str, args: &[&str], test: &str) -> bool {
    let runs = Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|output| output.status.success());
    if !runs {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run {test}: install {program}"
        );
        eprintln!("{program} not found: skipping {test}");
    }
    runs
}

/// Runs `program` with `args` in `dir`, panicking with its output if it fails; its
/// stdout.
fn run(program: &str, args: &[&str], dir: &Path) -> String {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Every file under `root`, as `(path relative to root with '/' separators, bytes)`,
/// sorted by path.
fn files_under(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let relative = path.strip_prefix(root).unwrap();
                let name = relative.to_str().unwrap().replace('\\', "/");
                files.push((name, std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}
