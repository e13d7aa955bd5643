//! CycloneDX 1.5 JSON, as wharf writes it.
//!
//! ```json
//! {"bomFormat": "CycloneDX", "specVersion": "1.5",
//!  "serialNumber": "urn:uuid:…", "version": 1,
//!  "metadata": {"timestamp": "2024-05-01T12:00:00Z",
//!               "tools": {"components": [{"type": "application", "name": "wharf", "version": "…"}]},
//!               "component": {"type": "container", "bom-ref": "sha256:…", "name": "team/app",
//!                             "version": "sha256:…", "properties": [wharf:image:… facts]}},
//!  "components": [
//!    {"type": "operating-system", "bom-ref": "os:debian", "name": "debian", "version": "12",
//!     "description": "Debian GNU/Linux 12 (bookworm)", "properties": [wharf:os:… facts]},
//!    {"type": "library", "bom-ref": "pkg:deb/debian/libc6@…", "name": "libc6",
//!     "version": "2.36-9+deb12u4", "purl": "pkg:deb/debian/libc6@…",
//!     "licenses": [{"license": {"name": "…"}}], "properties": [wharf:package:… facts]}]}
//! ```
//!
//! - `serialNumber` must be `urn:uuid:` and an RFC 4122 UUID; `version` counts revisions
//!   of the document with that serial number (always 1 here).
//! - Tools are listed the 1.5 way, as components under `metadata.tools.components` (the
//!   older bare array of tools is deprecated).
//! - The image is the `container` component of the metadata; the OS is an
//!   `operating-system` component (`name` = `ID`, `version` = `VERSION_ID`,
//!   `description` = `PRETTY_NAME`); every package is a `library`, OS packages too.
//! - `bom-ref` must be unique in the document: a package's is its purl, with `|2`, `|3`, …
//!   added for the second and later packages with the same purl (the same package
//!   found at two paths); a package with no purl gets `<kind>:<name>`.
//! - A licence is written as a name, never as an SPDX id or expression: package systems
//!   write licences their own way, and an `id` must be on the SPDX licence list.
//! - wharf's facts ([`facts`](super::facts)) are `properties`, which CycloneDX lets
//!   repeat a name.

use serde::{Deserialize, Serialize};

use super::facts::{self, Fact, OsFields, PackageFields};
use super::{LocatedPackage, SbomContents, SbomError, SbomFormat, SbomSubject, UniqueIds};

/// A CycloneDX document as read: the fields reading back needs. The rest (serial
/// number, metadata) is skipped unread.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Bom {
    #[serde(default)]
    bom_format: String,
    #[serde(default)]
    spec_version: String,
    #[serde(default, deserialize_with = "super::package_list")]
    components: Vec<Component>,
}

/// A CycloneDX document as written, its components made one at a time while they are
/// serialized.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct BomOut<C> {
    bom_format: &'static str,
    spec_version: &'static str,
    serial_number: String,
    version: u32,
    metadata: Metadata,
    components: C,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Metadata {
    #[serde(default)]
    timestamp: String,
    #[serde(default)]
    tools: Tools,
    #[serde(default)]
    component: Component,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Tools {
    #[serde(default, deserialize_with = "super::fact_list")]
    components: Vec<Component>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Component {
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "bom-ref", default, skip_serializing_if = "Option::is_none")]
    bom_ref: Option<String>,
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    purl: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::fact_list"
    )]
    licenses: Vec<LicenseChoice>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::fact_list"
    )]
    properties: Vec<Property>,
}

#[derive(Debug, Serialize, Deserialize)]
struct LicenseChoice {
    license: License,
}

#[derive(Debug, Serialize, Deserialize)]
struct License {
    name: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Property {
    name: String,
    value: String,
}

/// The document for `packages`, which are sorted.
pub(super) fn document<'a>(
    subject: &'a SbomSubject<'a>,
    packages: &'a [LocatedPackage<'a>],
) -> BomOut<impl Serialize + 'a> {
    let mut refs = UniqueIds::new("|");
    let image = Component {
        kind: "container".to_owned(),
        bom_ref: Some(refs.claim(subject.digest.to_owned())),
        name: subject.repository.to_owned(),
        version: Some(subject.digest.to_owned()),
        properties: properties(facts::of_image(subject)),
        ..Component::default()
    };
    let tool = Component {
        kind: "application".to_owned(),
        name: "wharf".to_owned(),
        version: Some(subject.tool_version.to_owned()),
        ..Component::default()
    };
    let os = subject.os.map(|os| Component {
        kind: "operating-system".to_owned(),
        bom_ref: Some(refs.claim(format!("os:{}", os.id))),
        name: os.id.clone(),
        version: os.version_id.clone(),
        description: os.pretty_name.clone(),
        properties: properties(facts::of_os(os)),
        ..Component::default()
    });
    let packages = packages.iter().map(move |located| {
        let package = located.package;
        let purl = facts::purl_text(located, subject.os);
        let base = match &purl {
            Some(purl) => purl.clone(),
            None => format!("{}:{}", package.kind, package.name),
        };
        Component {
            kind: "library".to_owned(),
            bom_ref: Some(refs.claim(base)),
            name: package.name.clone(),
            version: Some(package.version.clone()),
            purl,
            licenses: package
                .license
                .iter()
                .map(|name| LicenseChoice {
                    license: License { name: name.clone() },
                })
                .collect(),
            properties: properties(facts::of_package(located)),
            ..Component::default()
        }
    });
    BomOut {
        bom_format: "CycloneDX",
        spec_version: "1.5",
        serial_number: format!(
            "urn:uuid:{}",
            super::document_uuid(subject, SbomFormat::CycloneDx)
        ),
        version: 1,
        metadata: Metadata {
            timestamp: super::timestamp(subject),
            tools: Tools {
                components: vec![tool],
            },
            component: image,
        },
        components: super::Streamed::new(move || os.into_iter().chain(packages)),
    }
}

/// The OS and the packages of a document this module wrote.
pub(super) fn read(bom: Bom) -> Result<SbomContents, SbomError> {
    for (field, found, expected) in [
        ("bomFormat", &bom.bom_format, "CycloneDX"),
        ("specVersion", &bom.spec_version, "1.5"),
    ] {
        if found != expected {
            return Err(SbomError::WrongFormat {
                field,
                found: found.clone(),
            });
        }
    }
    let mut contents = SbomContents::default();
    for component in &bom.components {
        let element = component.bom_ref.as_deref().unwrap_or(&component.name);
        let facts = component
            .properties
            .iter()
            .map(|p| (p.name.as_str(), p.value.as_str()));
        match component.kind.as_str() {
            "operating-system" if contents.os.is_some() => {
                return Err(SbomError::TwoOperatingSystems {
                    element: element.to_owned(),
                });
            }
            "operating-system" => {
                let fields = OsFields {
                    element,
                    name: &component.name,
                    version: component.version.as_deref(),
                    description: component.description.as_deref(),
                };
                contents.os = Some(facts::read_os(fields, facts)?);
            }
            "library" => {
                let fields = PackageFields {
                    element,
                    name: &component.name,
                    version: component.version.as_deref().unwrap_or_default(),
                    license: component.licenses.first().map(|l| l.license.name.as_str()),
                    purl: component.purl.as_deref(),
                };
                contents.packages.push(facts::read_package(fields, facts)?);
            }
            // Other component types (applications, files, …) are not packages wharf wrote.
            _ => {}
        }
    }
    Ok(contents)
}

fn properties(facts: Vec<Fact>) -> Vec<Property> {
    facts
        .into_iter()
        .map(|(name, value)| Property {
            name: name.to_owned(),
            value,
        })
        .collect()
}
