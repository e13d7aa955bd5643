//! wharf's facts: what the SBOM formats have no field for, as `(name, value)` pairs with
//! names in a `wharf:` namespace. CycloneDX writes each as a property
//! `{"name": …, "value": …}`; SPDX as an annotation whose comment is `name=value` (no
//! name holds a `=`, so the first one splits).
//!
//! | name | on | value |
//! |---|---|---|
//! | `wharf:package:kind` | package | `dpkg`, `apk`, `rpm`, `python`, `npm`, `go` or `cargo` (required) |
//! | `wharf:package:path` | package | the file it was found in, relative to the image root (required) |
//! | `wharf:package:arch` | package | its architecture, when the format records one |
//! | `wharf:layer:digest` | package | the digest of the layer whose files hold it |
//! | `wharf:package:source` | package | its source package's name |
//! | `wharf:package:source-version` | package | the source package's version, when it differs |
//! | `wharf:os:codename` | OS | `VERSION_CODENAME` |
//! | `wharf:os:id-like` | OS | one `ID_LIKE` entry; repeated, in order |
//! | `wharf:image:platform` | image | such as `linux/amd64` |
//! | `wharf:image:layer` | image | one layer digest; repeated, base first |
//!
//! A package or OS element carries each single-valued fact at most once. Reading
//! ignores names it does not know (another tool's, or a later wharf's).

use super::purl::{self, Purl};
use super::{LocatedPackage, SbomError, SbomSubject};
use crate::scan::package::{OsRelease, Package, PackageKind, SourcePackage};

/// The package system that installed a package.
pub const PACKAGE_KIND: &str = "wharf:package:kind";
/// The file a package was found in.
pub const PACKAGE_PATH: &str = "wharf:package:path";
/// A package's architecture.
pub const PACKAGE_ARCH: &str = "wharf:package:arch";
/// The digest of the layer a package came from.
pub const LAYER_DIGEST: &str = "wharf:layer:digest";
/// A package's source package.
pub const PACKAGE_SOURCE: &str = "wharf:package:source";
/// The source package's version.
pub const PACKAGE_SOURCE_VERSION: &str = "wharf:package:source-version";
/// The OS release's codename.
pub const OS_CODENAME: &str = "wharf:os:codename";
/// One distribution the OS derives from.
pub const OS_ID_LIKE: &str = "wharf:os:id-like";
/// The image's platform.
pub const IMAGE_PLATFORM: &str = "wharf:image:platform";
/// One of the image's layers.
pub const IMAGE_LAYER: &str = "wharf:image:layer";

/// A fact as written: its name and value.
pub(super) type Fact = (&'static str, String);

/// The facts about a package, in the order of the table above.
pub(super) fn of_package(located: &LocatedPackage<'_>) -> Vec<Fact> {
    let package = located.package;
    let mut facts = vec![
        (PACKAGE_KIND, package.kind.as_str().to_owned()),
        (PACKAGE_PATH, package.path.clone()),
    ];
    let optional = [
        (PACKAGE_ARCH, package.arch.as_deref()),
        (LAYER_DIGEST, located.layer),
        (
            PACKAGE_SOURCE,
            package.source.as_ref().map(|s| s.name.as_str()),
        ),
        (
            PACKAGE_SOURCE_VERSION,
            package.source.as_ref().and_then(|s| s.version.as_deref()),
        ),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            facts.push((name, value.to_owned()));
        }
    }
    facts
}

/// The facts about the OS that its element's name, version and description do not hold.
pub(super) fn of_os(os: &OsRelease) -> Vec<Fact> {
    let codename = os.version_codename.iter().map(|c| (OS_CODENAME, c.clone()));
    let id_like = os.id_like.iter().map(|like| (OS_ID_LIKE, like.clone()));
    codename.chain(id_like).collect()
}

/// The facts about the image: its platform and its layers.
pub(super) fn of_image(subject: &SbomSubject<'_>) -> Vec<Fact> {
    let platform = subject.platform.map(|p| (IMAGE_PLATFORM, p.to_owned()));
    let layers = subject.layers.iter().map(|l| (IMAGE_LAYER, l.clone()));
    platform.into_iter().chain(layers).collect()
}

/// The purl of a package as the document writes it, when it has one.
pub(super) fn purl_text(located: &LocatedPackage<'_>, os: Option<&OsRelease>) -> Option<String> {
    Purl::of(located.package, os).map(|purl| purl.to_string())
}

/// What a package element holds in the format's own fields.
pub(super) struct PackageFields<'a> {
    /// Its id in the document, for errors.
    pub(super) element: &'a str,
    pub(super) name: &'a str,
    pub(super) version: &'a str,
    pub(super) license: Option<&'a str>,
    pub(super) purl: Option<&'a str>,
}

/// The package an element's fields and facts describe, with its layer.
pub(super) fn read_package<'a>(
    fields: PackageFields<'_>,
    facts: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(Package, Option<String>), SbomError> {
    let element = fields.element;
    let [
        mut kind,
        mut path,
        mut arch,
        mut layer,
        mut source,
        mut source_version,
    ] = [None; 6];
    for (name, value) in facts {
        let (fact, slot) = match name {
            PACKAGE_KIND => (PACKAGE_KIND, &mut kind),
            PACKAGE_PATH => (PACKAGE_PATH, &mut path),
            PACKAGE_ARCH => (PACKAGE_ARCH, &mut arch),
            LAYER_DIGEST => (LAYER_DIGEST, &mut layer),
            PACKAGE_SOURCE => (PACKAGE_SOURCE, &mut source),
            PACKAGE_SOURCE_VERSION => (PACKAGE_SOURCE_VERSION, &mut source_version),
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(duplicate(element, fact));
        }
    }
    let kind = kind.ok_or_else(|| missing(element, PACKAGE_KIND))?;
    let kind = PackageKind::named(kind).ok_or_else(|| SbomError::BadFact {
        element: element.to_owned(),
        fact: PACKAGE_KIND,
        value: kind.to_owned(),
    })?;
    let path = path.ok_or_else(|| missing(element, PACKAGE_PATH))?;
    let source = match (source, source_version) {
        (Some(name), version) => Some(SourcePackage {
            name: name.to_owned(),
            version: version.map(str::to_owned),
        }),
        (None, None) => None,
        (None, Some(version)) => {
            return Err(SbomError::BadFact {
                element: element.to_owned(),
                fact: PACKAGE_SOURCE_VERSION,
                value: version.to_owned(),
            });
        }
    };
    if let Some(text) = fields.purl {
        check_purl(element, text, kind)?;
    }
    let package = Package {
        kind,
        name: fields.name.to_owned(),
        version: fields.version.to_owned(),
        source,
        arch: arch.map(str::to_owned),
        license: fields.license.map(str::to_owned),
        path: path.to_owned(),
    };
    Ok((package, layer.map(str::to_owned)))
}

/// What the OS element holds in the format's own fields.
pub(super) struct OsFields<'a> {
    /// Its id in the document, for errors.
    pub(super) element: &'a str,
    /// `ID`.
    pub(super) name: &'a str,
    /// `VERSION_ID`.
    pub(super) version: Option<&'a str>,
    /// `PRETTY_NAME`.
    pub(super) description: Option<&'a str>,
}

/// The OS release an element's fields and facts describe.
pub(super) fn read_os<'a>(
    fields: OsFields<'_>,
    facts: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<OsRelease, SbomError> {
    let mut os = OsRelease {
        id: fields.name.to_owned(),
        version_id: fields.version.map(str::to_owned),
        pretty_name: fields.description.map(str::to_owned),
        ..OsRelease::default()
    };
    for (name, value) in facts {
        match name {
            OS_CODENAME if os.version_codename.is_some() => {
                return Err(duplicate(fields.element, OS_CODENAME));
            }
            OS_CODENAME => os.version_codename = Some(value.to_owned()),
            OS_ID_LIKE => os.id_like.push(value.to_owned()),
            _ => {}
        }
    }
    Ok(os)
}

/// Checks that a package's purl parses and names its package system.
fn check_purl(element: &str, text: &str, kind: PackageKind) -> Result<(), SbomError> {
    let parsed = Purl::parse(text).map_err(|error| SbomError::BadPurl {
        element: element.to_owned(),
        purl: text.to_owned(),
        error,
    })?;
    if parsed.package_type != purl::type_of(kind) {
        return Err(SbomError::PurlMismatch {
            element: element.to_owned(),
            purl: text.to_owned(),
            kind,
        });
    }
    Ok(())
}

fn missing(element: &str, fact: &'static str) -> SbomError {
    SbomError::MissingFact {
        element: element.to_owned(),
        fact,
    }
}

fn duplicate(element: &str, fact: &'static str) -> SbomError {
    SbomError::DuplicateFact {
        element: element.to_owned(),
        fact,
    }
}
