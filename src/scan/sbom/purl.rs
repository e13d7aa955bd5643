//! Package URLs (purl, ECMA-427): one string that names a package across tools, here
//! the key every SBOM entry carries.
//!
//! # The format
//!
//! ```text
//! pkg:<type>/<namespace segments…>/<name>@<version>?<key>=<value>&…#<subpath segments…>
//! ```
//!
//! - `pkg` is the scheme; the type (`deb`, `npm`, …) is ASCII letters, digits, `.` and
//!   `-`, starting with a letter, never percent-encoded, and lower case when canonical.
//! - The namespace (optional) and the subpath (optional) are `/`-separated segments; the
//!   name is required; the version is optional.
//! - Each namespace segment, the name, the version, each qualifier value and each
//!   subpath segment is UTF-8, percent-encoded: every byte other than ASCII letters,
//!   digits, `.`, `-`, `_`, `~` and `:` becomes `%XX` (upper-case hex). So a `+` is
//!   `%2B`, an `@` inside a name or namespace is `%40`, a space is `%20`, and a colon
//!   (a Debian epoch) stays as it is.
//! - Qualifier keys are ASCII letters, digits, `.`, `-` and `_`, starting with a letter,
//!   each used once, and lower case when canonical; pairs are sorted by key, and a pair
//!   with an empty value is left out.
//! - Reading splits from the outside in: the last `#` starts the subpath, the last `?`
//!   the qualifiers, `pkg:` and the type come off the front, the last `/` starts the
//!   name, and a `@` in that last segment the version. Encoded separators never split.
//!   Reading is the same for every type: type-specific rules (a PyPI name's case, say)
//!   are for whoever builds the purl.
//!
//! # How wharf's packages are named
//!
//! | kind | purl |
//! |---|---|
//! | dpkg | `pkg:deb/<os id>/<name>@<version>?arch=…&distro=<os id>-<VERSION_ID>`; the version keeps its `epoch:` |
//! | apk | `pkg:apk/<os id>/<name>@<version>?arch=…&distro=…` |
//! | rpm | `pkg:rpm/<os id>/<name>@<version>-<release>?arch=…&distro=…&epoch=<epoch>`: the epoch is a qualifier, not part of the version |
//! | python | `pkg:pypi/<name>@<version>`, the name lower-cased with `_` as `-` |
//! | npm | `pkg:npm/%40<scope>/<name>@<version>`: the scope, with its `@`, is the namespace |
//! | go | `pkg:golang/<module path up to the last />/<last element>@<version>` |
//! | cargo | `pkg:cargo/<name>@<version>` |
//!
//! Debian and Alpine package names are lower-cased, as their purl types require.
//! Go module paths keep their case even though the purl type asks for lower case: the
//! module proxy and the Go vulnerability database tell `github.com/Masterminds/semver`
//! from a lower-cased path. With no `os-release`, OS packages have no namespace and no
//! `distro` (no vendor to name); without `VERSION_ID` the distro is `<id>-<codename>`.
//!
//! # Limits
//!
//! Reading takes time and memory linear in the input and allocates at most a few
//! times its length, so it needs no cap of its own: callers cap the text they read.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use crate::scan::package::{OsRelease, Package, PackageKind};

/// A parsed package URL: every component decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purl {
    /// The package type, lower case (`deb`, `npm`, `golang`, …).
    pub package_type: String,
    /// The namespace's segments (`["debian"]`, `["@angular"]`, `["github.com", "gorilla"]`),
    /// empty when there is none.
    pub namespace: Vec<String>,
    /// The package name.
    pub name: String,
    /// The version, when there is one.
    pub version: Option<String>,
    /// The qualifiers, by key; values are never empty.
    pub qualifiers: BTreeMap<String, String>,
    /// The subpath's segments, empty when there is none.
    pub subpath: Vec<String>,
}

/// Why a string is not a package URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurlError {
    /// It does not start with the scheme `pkg:`.
    NoScheme,
    /// The type is missing or holds a character a type may not.
    BadType {
        /// The type as written.
        found: String,
    },
    /// The name is missing.
    NoName,
    /// A `%` is not followed by two hex digits.
    BadEscape {
        /// The component it is in (`namespace`, `name`, `version`, `qualifier`, `subpath`).
        component: &'static str,
        /// The text from the `%` on (at most three characters).
        escape: String,
    },
    /// A component decodes to bytes that are not UTF-8.
    NotUtf8 {
        /// The component.
        component: &'static str,
    },
    /// A namespace or subpath segment decodes to text holding a `/`.
    SlashInSegment {
        /// The component.
        component: &'static str,
    },
    /// A qualifier has no `=`, or its key holds a character a key may not.
    BadQualifier {
        /// The qualifier as written.
        found: String,
    },
    /// A qualifier key appears twice.
    DuplicateQualifier {
        /// The key.
        key: String,
    },
}

impl fmt::Display for PurlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PurlError::NoScheme => f.write_str("does not start with pkg:"),
            PurlError::BadType { found } => write!(f, "type {found:?} is not a purl type"),
            PurlError::NoName => f.write_str("has no name"),
            PurlError::BadEscape { component, escape } => {
                write!(f, "{component}: {escape:?} is not a percent-encoded byte")
            }
            PurlError::NotUtf8 { component } => write!(f, "{component} is not UTF-8"),
            PurlError::SlashInSegment { component } => {
                write!(f, "a {component} segment holds an encoded /")
            }
            PurlError::BadQualifier { found } => write!(f, "qualifier {found:?} is malformed"),
            PurlError::DuplicateQualifier { key } => write!(f, "qualifier {key} appears twice"),
        }
    }
}

impl std::error::Error for PurlError {}

/// The purl type of packages of `kind`.
pub fn type_of(kind: PackageKind) -> &'static str {
    match kind {
        PackageKind::Dpkg => "deb",
        PackageKind::Apk => "apk",
        PackageKind::Rpm => "rpm",
        PackageKind::Python => "pypi",
        PackageKind::Npm => "npm",
        PackageKind::Go => "golang",
        PackageKind::Cargo => "cargo",
    }
}

impl Purl {
    /// The purl of `package`, installed on `os` (see the module docs for each kind), or
    /// `None` when the package's name leaves nothing to name it by (an empty name, an npm
    /// scope with nothing after it).
    pub fn of(package: &Package, os: Option<&OsRelease>) -> Option<Purl> {
        let mut namespace = String::new();
        let mut name = package.name.clone();
        let mut version = package.version.clone();
        let mut qualifiers = BTreeMap::new();
        if let Some(arch) = &package.arch {
            qualifiers.insert("arch".to_owned(), arch.clone());
        }
        match package.kind {
            PackageKind::Dpkg | PackageKind::Apk | PackageKind::Rpm => {
                if let Some(os) = os {
                    namespace = os.id.to_lowercase();
                    qualifiers.insert("distro".to_owned(), distro(os));
                }
                if package.kind != PackageKind::Rpm {
                    name = name.to_lowercase();
                } else if let Some((epoch, rest)) = package.version.split_once(':')
                    && !epoch.is_empty()
                    && epoch.bytes().all(|b| b.is_ascii_digit())
                {
                    qualifiers.insert("epoch".to_owned(), epoch.to_owned());
                    version = rest.to_owned();
                }
            }
            PackageKind::Python => name = name.to_lowercase().replace('_', "-"),
            PackageKind::Npm => {
                if let Some((scope, rest)) = package.name.split_once('/') {
                    namespace = scope.to_owned();
                    name = rest.to_owned();
                }
            }
            PackageKind::Go => {
                if let Some((path, last)) = package.name.rsplit_once('/') {
                    namespace = path.to_owned();
                    name = last.to_owned();
                }
            }
            PackageKind::Cargo => {}
        }
        if name.is_empty() {
            return None;
        }
        qualifiers.retain(|_, value| !value.is_empty());
        Some(Purl {
            package_type: type_of(package.kind).to_owned(),
            namespace: namespace
                .split('/')
                .filter(|segment| !segment.is_empty())
                .map(str::to_owned)
                .collect(),
            name,
            version: Some(version).filter(|version| !version.is_empty()),
            qualifiers,
            subpath: Vec::new(),
        })
    }

    /// Reads a purl (see the module docs for the rules).
    pub fn parse(text: &str) -> Result<Purl, PurlError> {
        let (body, subpath) = match text.rsplit_once('#') {
            Some((body, subpath)) => (body, Some(subpath)),
            None => (text, None),
        };
        let (body, qualifiers) = match body.rsplit_once('?') {
            Some((body, qualifiers)) => (body, Some(qualifiers)),
            None => (body, None),
        };
        let body = match body.split_once(':') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("pkg") => rest,
            _ => return Err(PurlError::NoScheme),
        };
        // `pkg://type/…` is read as `pkg:type/…`.
        let body = body.trim_start_matches('/');
        let (package_type, body) = body.split_once('/').unwrap_or((body, ""));
        if !is_type(package_type) {
            return Err(PurlError::BadType {
                found: package_type.to_owned(),
            });
        }
        let body = body.trim_matches('/');
        let (namespace, last) = body.rsplit_once('/').unwrap_or(("", body));
        // The version's `@` is in the last segment: a `/` in a version is encoded, while
        // an npm scope's `@` is often left bare (`pkg:npm/@babel/core`).
        let (name, version) = match last.rsplit_once('@') {
            Some((name, version)) => (name, Some(decode(version, "version")?)),
            None => (last, None),
        };
        let name = decode(name, "name")?;
        if name.is_empty() {
            return Err(PurlError::NoName);
        }
        Ok(Purl {
            package_type: package_type.to_ascii_lowercase(),
            namespace: segments(namespace, "namespace")?,
            name,
            version: version.filter(|version| !version.is_empty()),
            qualifiers: match qualifiers {
                Some(qualifiers) => parse_qualifiers(qualifiers)?,
                None => BTreeMap::new(),
            },
            subpath: match subpath {
                Some(subpath) => segments(subpath, "subpath")?
                    .into_iter()
                    .filter(|segment| segment != "." && segment != "..")
                    .collect(),
                None => Vec::new(),
            },
        })
    }
}

/// The canonical text: every component encoded, qualifiers sorted, empty parts left out.
impl fmt::Display for Purl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pkg:{}/", self.package_type)?;
        for segment in &self.namespace {
            write!(f, "{}/", Encoded(segment))?;
        }
        write!(f, "{}", Encoded(&self.name))?;
        if let Some(version) = &self.version {
            write!(f, "@{}", Encoded(version))?;
        }
        let mut separator = '?';
        for (key, value) in &self.qualifiers {
            write!(f, "{separator}{key}={}", Encoded(value))?;
            separator = '&';
        }
        let mut separator = '#';
        for segment in &self.subpath {
            write!(f, "{separator}{}", Encoded(segment))?;
            separator = '/';
        }
        Ok(())
    }
}

/// The `distro` qualifier: `<id>-<VERSION_ID>`, else `<id>-<codename>`, else `<id>`.
fn distro(os: &OsRelease) -> String {
    let id = os.id.to_lowercase();
    match os.version_id.as_ref().or(os.version_codename.as_ref()) {
        Some(release) => format!("{id}-{release}"),
        None => id,
    }
}

/// Whether `text` is a valid purl type.
fn is_type(text: &str) -> bool {
    text.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-".contains(&b))
}

/// Whether `text` is a valid qualifier key, in any case.
fn is_key(text: &str) -> bool {
    text.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Reads `key=value&…`: keys are lower-cased (canonical keys are lower case; readers
/// accept any), and pairs with empty values dropped.
fn parse_qualifiers(text: &str) -> Result<BTreeMap<String, String>, PurlError> {
    let mut qualifiers = BTreeMap::new();
    for pair in text.split('&').filter(|pair| !pair.is_empty()) {
        let Some((key, value)) = pair.split_once('=').filter(|(key, _)| is_key(key)) else {
            return Err(PurlError::BadQualifier {
                found: pair.to_owned(),
            });
        };
        let key = key.to_ascii_lowercase();
        if qualifiers.contains_key(&key) {
            return Err(PurlError::DuplicateQualifier { key });
        }
        let value = decode(value, "qualifier")?;
        if !value.is_empty() {
            qualifiers.insert(key, value);
        }
    }
    Ok(qualifiers)
}

/// The decoded, non-empty `/`-separated segments of `text`.
fn segments(text: &str, component: &'static str) -> Result<Vec<String>, PurlError> {
    let mut decoded = Vec::new();
    for segment in text.split('/').filter(|segment| !segment.is_empty()) {
        let segment = decode(segment, component)?;
        if segment.contains('/') {
            return Err(PurlError::SlashInSegment { component });
        }
        decoded.push(segment);
    }
    Ok(decoded)
}

/// Whether a byte is written as itself: ASCII letters and digits, `.-_~`, and `:`.
fn is_plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b".-_~:".contains(&byte)
}

/// A component, percent-encoded when displayed.
struct Encoded<'a>(&'a str);

impl fmt::Display for Encoded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &byte in self.0.as_bytes() {
            if is_plain(byte) {
                f.write_char(char::from(byte))?;
            } else {
                write!(f, "%{byte:02X}")?;
            }
        }
        Ok(())
    }
}

/// Decodes `%XX` escapes in `text`, which must then be UTF-8.
fn decode(text: &str, component: &'static str) -> Result<String, PurlError> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&byte, after)) = rest.split_first() {
        rest = after;
        if byte != b'%' {
            bytes.push(byte);
            continue;
        }
        match after {
            [high, low, tail @ ..] if high.is_ascii_hexdigit() && low.is_ascii_hexdigit() => {
                bytes.push(hex_value(*high) << 4 | hex_value(*low));
                rest = tail;
            }
            _ => {
                let shown = after.get(..2).unwrap_or(after);
                let escape = format!("%{}", String::from_utf8_lossy(shown));
                return Err(PurlError::BadEscape { component, escape });
            }
        }
    }
    String::from_utf8(bytes).map_err(|_| PurlError::NotUtf8 { component })
}

/// The value of an ASCII hex digit (0 for any other byte, which callers rule out).
fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        b'A'..=b'F' => digit - b'A' + 10,
        _ => 0,
    }
}
