//! SPDX 2.3 JSON, as wharf writes it.
//!
//! ```json
//! {"spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
//!  "name": "team/app@sha256:…", "documentNamespace": "https://wharf.invalid/spdx/<uuid>",
//!  "creationInfo": {"created": "2024-05-01T12:00:00Z", "creators": ["Tool: wharf-0.1.0"]},
//!  "packages": [
//!    {"SPDXID": "SPDXRef-Image", "name": "team/app", "versionInfo": "sha256:…",
//!     "downloadLocation": "NOASSERTION", "filesAnalyzed": false,
//!     "primaryPackagePurpose": "CONTAINER", "annotations": [wharf:image:… facts]},
//!    {"SPDXID": "SPDXRef-OperatingSystem", "name": "debian", "versionInfo": "12", …,
//!     "description": "Debian GNU/Linux 12 (bookworm)", "primaryPackagePurpose": "OPERATING_SYSTEM"},
//!    {"SPDXID": "SPDXRef-Package-dpkg-libc6-2.36-9-deb12u4", "name": "libc6",
//!     "versionInfo": "2.36-9+deb12u4", "downloadLocation": "NOASSERTION", "filesAnalyzed": false,
//!     "licenseConcluded": "NOASSERTION", "licenseDeclared": "NOASSERTION", "licenseComments": "…",
//!     "primaryPackagePurpose": "LIBRARY",
//!     "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
//!                       "referenceLocator": "pkg:deb/debian/libc6@…"}],
//!     "annotations": [{"annotationDate": "…", "annotationType": "OTHER",
//!                      "annotator": "Tool: wharf-0.1.0", "comment": "wharf:package:kind=dpkg"}, …]}],
//!  "relationships": [
//!    {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": "SPDXRef-Image"},
//!    {"spdxElementId": "SPDXRef-Image", "relationshipType": "CONTAINS", "relatedSpdxElement": "SPDXRef-…"}, …]}
//! ```
//!
//! - `SPDXID`s match `SPDXRef-[A-Za-z0-9.-]+` and are unique in the document. A
//!   package's is `SPDXRef-Package-<kind>-<name>-<version>` with every other character
//!   as `-` (cut to [`MAX_ID_DETAIL`] characters after the prefix), and `-2`, `-3`, … added
//!   when that is taken.
//! - `documentNamespace` must be a unique URI without `#`: a UUID under the reserved
//!   domain `wharf.invalid` (there is no site to resolve it against).
//! - `created` is UTC to the second, with a `Z`; a tool creator is `Tool: <name>-<version>`.
//! - `downloadLocation` is required; wharf does not know where a package came from, so
//!   it is `NOASSERTION`. `filesAnalyzed` is `false`: no package lists its files.
//! - Licences: `licenseConcluded` and `licenseDeclared` must be SPDX expressions or
//!   `NOASSERTION`. Package systems write licences their own way (`GPLv2+`, a
//!   `debian/copyright` short name), often close to an SPDX id but not one, and asserting
//!   a wrong expression is worse than none: both are `NOASSERTION`, and the licence as
//!   declared is the package's `licenseComments`.
//! - The OS is a package with purpose `OPERATING_SYSTEM` (the JSON schema's spelling of
//!   the specification's `OPERATING-SYSTEM`; `name` = `ID`, `versionInfo` =
//!   `VERSION_ID`, `description` = `PRETTY_NAME`), packages have purpose `LIBRARY`, and
//!   the image, purpose `CONTAINER`, is what the document `DESCRIBES` and what
//!   `CONTAINS` the others.
//! - wharf's facts ([`facts`](super::facts)) are annotations of type `OTHER` by the tool,
//!   one per fact, whose comment is `name=value`.

use serde::{Deserialize, Serialize};

use super::facts::{self, Fact, OsFields, PackageFields};
use super::{LocatedPackage, SbomContents, SbomError, SbomFormat, SbomSubject, UniqueIds};

/// The most characters of a package's kind, name and version kept in its `SPDXID`.
pub(super) const MAX_ID_DETAIL: usize = 100;

const NOASSERTION: &str = "NOASSERTION";
const IMAGE_ID: &str = "SPDXRef-Image";
const OS_ID: &str = "SPDXRef-OperatingSystem";

/// An SPDX document as read: the fields reading back needs. The rest (creation info,
/// relationships, which only restate that the image contains every package) is skipped
/// unread.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Document {
    #[serde(default)]
    spdx_version: String,
    #[serde(default, deserialize_with = "super::package_list")]
    packages: Vec<Package>,
}

/// An SPDX document as written, its packages and relationships made one at a time while
/// they are serialized.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DocumentOut<P, R> {
    spdx_version: &'static str,
    data_license: &'static str,
    #[serde(rename = "SPDXID")]
    spdx_id: &'static str,
    name: String,
    document_namespace: String,
    creation_info: CreationInfo,
    packages: P,
    relationships: R,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CreationInfo {
    #[serde(default)]
    created: String,
    #[serde(default, deserialize_with = "super::fact_list")]
    creators: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Package {
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version_info: Option<String>,
    download_location: String,
    #[serde(default)]
    files_analyzed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    license_concluded: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    license_declared: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    license_comments: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    primary_package_purpose: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::fact_list"
    )]
    external_refs: Vec<ExternalRef>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::fact_list"
    )]
    annotations: Vec<Annotation>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExternalRef {
    reference_category: String,
    reference_type: String,
    reference_locator: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Annotation {
    annotation_date: String,
    annotation_type: String,
    annotator: String,
    comment: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Relationship {
    spdx_element_id: String,
    relationship_type: String,
    related_spdx_element: String,
}

/// The document for `packages`, which are sorted.
pub(super) fn document<'a>(
    subject: &'a SbomSubject<'a>,
    packages: &'a [LocatedPackage<'a>],
) -> DocumentOut<impl Serialize + 'a, impl Serialize + 'a> {
    let created = super::timestamp(subject);
    let tool = format!("Tool: wharf-{}", subject.tool_version);
    let annotations = Annotations {
        date: created.clone(),
        annotator: tool.clone(),
    };
    // Every element's id, image first: the relationships name them after the packages
    // are written, so they are claimed up front.
    let mut ids = UniqueIds::new("-");
    let image_id = ids.claim(IMAGE_ID.to_owned());
    let os_id = subject.os.map(|_| ids.claim(OS_ID.to_owned()));
    let package_ids: std::rc::Rc<[String]> = packages
        .iter()
        .map(|located| {
            let package = located.package;
            let detail = format!("{}-{}-{}", package.kind, package.name, package.version);
            ids.claim(format!("SPDXRef-Package-{}", id_safe(&detail)))
        })
        .collect();
    let image = Package {
        spdx_id: image_id,
        name: subject.repository.to_owned(),
        version_info: Some(subject.digest.to_owned()),
        primary_package_purpose: Some("CONTAINER".to_owned()),
        annotations: annotations.of(facts::of_image(subject)),
        ..Package::unasserted()
    };
    let os = subject.os.zip(os_id.clone()).map(|(os, spdx_id)| Package {
        spdx_id,
        name: os.id.clone(),
        version_info: os.version_id.clone(),
        description: os.pretty_name.clone(),
        primary_package_purpose: Some("OPERATING_SYSTEM".to_owned()),
        annotations: annotations.of(facts::of_os(os)),
        ..Package::unasserted()
    });
    let libraries = packages.iter().enumerate().map({
        let package_ids = package_ids.clone();
        move |(at, located)| {
            let package = located.package;
            Package {
                spdx_id: package_ids[at].clone(),
                name: package.name.clone(),
                version_info: Some(package.version.clone()),
                license_concluded: Some(NOASSERTION.to_owned()),
                license_declared: Some(NOASSERTION.to_owned()),
                license_comments: package.license.clone(),
                primary_package_purpose: Some("LIBRARY".to_owned()),
                external_refs: facts::purl_text(located, subject.os)
                    .map(|purl| ExternalRef {
                        reference_category: "PACKAGE-MANAGER".to_owned(),
                        reference_type: "purl".to_owned(),
                        reference_locator: purl,
                    })
                    .into_iter()
                    .collect(),
                annotations: annotations.of(facts::of_package(located)),
                ..Package::unasserted()
            }
        }
    });
    let relationships = move || {
        let relationship = |from: &str, kind: &str, to: &str| Relationship {
            spdx_element_id: from.to_owned(),
            relationship_type: kind.to_owned(),
            related_spdx_element: to.to_owned(),
        };
        let libraries = (0..package_ids.len()).map(move |at| package_ids[at].clone());
        let contained = os_id.into_iter().chain(libraries);
        std::iter::once(relationship("SPDXRef-DOCUMENT", "DESCRIBES", IMAGE_ID))
            .chain(contained.map(move |id| relationship(IMAGE_ID, "CONTAINS", &id)))
    };
    DocumentOut {
        spdx_version: "SPDX-2.3",
        data_license: "CC0-1.0",
        spdx_id: "SPDXRef-DOCUMENT",
        name: format!("{}@{}", subject.repository, subject.digest),
        document_namespace: format!(
            "https://wharf.invalid/spdx/{}",
            super::document_uuid(subject, SbomFormat::Spdx)
        ),
        creation_info: CreationInfo {
            created,
            creators: vec![tool],
        },
        packages: super::Streamed::new(move || std::iter::once(image).chain(os).chain(libraries)),
        relationships: super::Streamed::new(relationships),
    }
}

/// Makes wharf's facts into annotations by the tool at the document's creation time.
struct Annotations {
    date: String,
    annotator: String,
}

impl Annotations {
    fn of(&self, facts: Vec<Fact>) -> Vec<Annotation> {
        facts
            .into_iter()
            .map(|(name, value)| Annotation {
                annotation_date: self.date.clone(),
                annotation_type: "OTHER".to_owned(),
                annotator: self.annotator.clone(),
                comment: format!("{name}={value}"),
            })
            .collect()
    }
}

/// The OS and the packages of a document this module wrote.
pub(super) fn read(document: Document) -> Result<SbomContents, SbomError> {
    if document.spdx_version != "SPDX-2.3" {
        return Err(SbomError::WrongFormat {
            field: "spdxVersion",
            found: document.spdx_version,
        });
    }
    let mut contents = SbomContents::default();
    for package in &document.packages {
        let element = package.spdx_id.as_str();
        let facts = package
            .annotations
            .iter()
            .filter_map(|a| a.comment.split_once('='));
        match package.primary_package_purpose.as_deref() {
            Some("OPERATING_SYSTEM") if contents.os.is_some() => {
                return Err(SbomError::TwoOperatingSystems {
                    element: element.to_owned(),
                });
            }
            Some("OPERATING_SYSTEM") => {
                let fields = OsFields {
                    element,
                    name: &package.name,
                    version: package.version_info.as_deref(),
                    description: package.description.as_deref(),
                };
                contents.os = Some(facts::read_os(fields, facts)?);
            }
            Some("LIBRARY") => {
                let purl = package
                    .external_refs
                    .iter()
                    .find(|r| r.reference_type == "purl")
                    .map(|r| r.reference_locator.as_str());
                let fields = PackageFields {
                    element,
                    name: &package.name,
                    version: package.version_info.as_deref().unwrap_or_default(),
                    license: package.license_comments.as_deref(),
                    purl,
                };
                contents.packages.push(facts::read_package(fields, facts)?);
            }
            // The image, and packages of other purposes, which wharf does not write.
            _ => {}
        }
    }
    Ok(contents)
}

impl Package {
    /// A package with nothing asserted: no download location, no files analyzed.
    fn unasserted() -> Self {
        Package {
            download_location: NOASSERTION.to_owned(),
            files_analyzed: false,
            ..Package::default()
        }
    }
}

/// `text` cut to [`MAX_ID_DETAIL`] characters, each one outside `[A-Za-z0-9.-]` as `-`.
fn id_safe(text: &str) -> String {
    text.chars()
        .take(MAX_ID_DETAIL)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}
