//! The module information inside Go build info: the text `go version -m` prints.
//!
//! One record per line (`\n`), its fields separated by tabs, the first field naming the
//! kind of record:
//!
//! | kind | fields | meaning |
//! |---|---|---|
//! | `path` | package path | the main package (`example.com/app/cmd/app`) |
//! | `mod` | path, version, checksum | the main module; version `(devel)` when built from a working tree |
//! | `dep` | path, version, checksum | a module the binary was built with |
//! | `=>` | path, version, checksum | what replaced the module of the line just before |
//! | `build` | `key=value` | a build setting (`GOARCH=amd64`, `-trimpath=true`, `vcs.revision=…`) |
//!
//! The checksum is go.sum's `h1:` hash; it is empty or left out (with its tab) when there
//! is none, as for vendored modules and directory replacements. A replacement is either
//! another module (path and version) or a local directory: a path starting with `./`,
//! `../` or `/` (a Windows path with `.\`, `..\` or a drive letter), with version
//! `(devel)` or none. Build values that need it are quoted Go-style; they are kept as
//! written. Empty lines occur (Go 1.19 writes one after the dependencies) and are
//! skipped, as are records of other kinds, so that a newer toolchain's additions do not
//! fail the read.

use super::{BuildInfoError, MAX_MODULES, MAX_SETTINGS};

/// The version Go writes for a module built from a working tree rather than a release.
pub const DEVEL: &str = "(devel)";

/// What a Go binary records about its build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildInfo {
    /// The toolchain version (`go1.22.3`, `go1.22.3 X:boringcrypto`, `devel go1.23-…`).
    pub go_version: String,
    /// The main package's import path (`path`).
    pub main_package: Option<String>,
    /// The main module (`mod`).
    pub main_module: Option<Module>,
    /// The dependencies (`dep`), in the order recorded (sorted by path).
    pub dependencies: Vec<Module>,
    /// The build settings (`build`), in the order recorded.
    pub settings: Vec<BuildSetting>,
}

/// A module as recorded: path, version, checksum, and what replaced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// The module path (`golang.org/x/net`), or for a replacement possibly a directory.
    pub path: String,
    /// The version (`v0.24.0`, `v0.0.0-20240101000000-abcdef123456`, `(devel)`); may be
    /// empty for a directory replacement.
    pub version: String,
    /// The go.sum checksum (`h1:…`), when recorded.
    pub checksum: Option<String>,
    /// The module or directory that replaced this one (`=>`).
    pub replacement: Option<Box<Module>>,
}

/// One `build` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSetting {
    /// The key (`GOARCH`, `-ldflags`, `vcs.revision`).
    pub key: String,
    /// The value, quoted as the toolchain wrote it when it needed quoting.
    pub value: String,
}

impl Module {
    /// Whether this is a local directory (a replacement by a path on the build machine)
    /// rather than a module from a module proxy.
    pub fn is_directory(&self) -> bool {
        let path = self.path.as_str();
        let windows_drive = path.as_bytes().get(1..3) == Some(b":\\".as_slice());
        path.starts_with("./")
            || path.starts_with("../")
            || path.starts_with('/')
            || path.starts_with(".\\")
            || path.starts_with("..\\")
            || windows_drive
            || path == "."
            || path == ".."
    }

    /// The module whose code was compiled in: the replacement when it is another module
    /// (its own path and version), otherwise this module (also when the replacement is a
    /// local directory, whose code has no published version; the required version is
    /// the best name for it).
    pub fn built_from(&self) -> &Module {
        match &self.replacement {
            Some(replacement)
                if !replacement.is_directory()
                    && !replacement.version.is_empty()
                    && replacement.version != DEVEL =>
            {
                replacement
            }
            _ => self,
        }
    }
}

impl BuildInfo {
    /// The value of the build setting `key`, when recorded.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|setting| setting.key == key)
            .map(|setting| setting.value.as_str())
    }
}

/// Which module a `=>` line replaces.
#[derive(Clone, Copy)]
enum Replaceable {
    Main,
    Dependency(usize),
}

/// Reads the module information `text` (sentinels already removed) of a binary built by
/// toolchain `go_version`.
pub(super) fn parse(text: &str, go_version: String) -> Result<BuildInfo, BuildInfoError> {
    let mut info = BuildInfo {
        go_version,
        ..BuildInfo::default()
    };
    let mut replaceable = None;
    for (index, line) in text.split('\n').enumerate() {
        let error = |reason| BuildInfoError::Line {
            number: index + 1,
            reason,
        };
        if line.is_empty() {
            continue;
        }
        let (kind, rest) = line.split_once('\t').unwrap_or((line, ""));
        let before = replaceable.take();
        match kind {
            "path" => {
                if rest.is_empty() || rest.contains('\t') {
                    return Err(error("a path line holds one package path"));
                }
                info.main_package = Some(rest.to_owned());
            }
            "mod" => {
                let module =
                    module(rest, true).ok_or(error("a mod line holds a path and a version"))?;
                info.main_module = Some(module);
                replaceable = Some(Replaceable::Main);
            }
            "dep" => {
                let module =
                    module(rest, true).ok_or(error("a dep line holds a path and a version"))?;
                if info.dependencies.len() == MAX_MODULES {
                    return Err(BuildInfoError::TooManyModules);
                }
                replaceable = Some(Replaceable::Dependency(info.dependencies.len()));
                info.dependencies.push(module);
            }
            "=>" => {
                let replacement =
                    module(rest, false).ok_or(error("a replacement line holds a path"))?;
                let replaced = match before {
                    Some(Replaceable::Main) => info.main_module.as_mut(),
                    Some(Replaceable::Dependency(index)) => info.dependencies.get_mut(index),
                    None => None,
                }
                .ok_or(error("a replacement does not follow a mod or dep line"))?;
                replaced.replacement = Some(Box::new(replacement));
            }
            "build" => {
                let (key, value) = rest
                    .split_once('=')
                    .filter(|(key, _)| !key.is_empty())
                    .ok_or(error("a build line holds key=value"))?;
                if info.settings.len() == MAX_SETTINGS {
                    return Err(BuildInfoError::TooManySettings);
                }
                info.settings.push(BuildSetting {
                    key: key.to_owned(),
                    value: value.to_owned(),
                });
            }
            _ => {}
        }
    }
    Ok(info)
}

/// The fields of a `mod`, `dep` or `=>` line after its kind: a path, a version (which a
/// replacement may leave empty) and optionally a checksum.
fn module(fields: &str, needs_version: bool) -> Option<Module> {
    let mut fields = fields.split('\t');
    let path = fields.next().filter(|path| !path.is_empty())?;
    let version = fields.next().unwrap_or("");
    let checksum = fields.next().filter(|checksum| !checksum.is_empty());
    if fields.next().is_some() || (needs_version && version.is_empty()) {
        return None;
    }
    Some(Module {
        path: path.to_owned(),
        version: version.to_owned(),
        checksum: checksum.map(str::to_owned),
        replacement: None,
    })
}
