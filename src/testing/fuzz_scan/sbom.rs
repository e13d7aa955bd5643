//! Fuzz bodies for SBOMs: the purl parser, and reading documents back.

use chrono::DateTime;

use crate::scan::sbom::purl::Purl;
use crate::scan::sbom::{self, LocatedPackage, MAX_PACKAGES, SbomFormat, SbomSubject};

/// Purl parsing: an accepted purl has a name, its canonical text uses only the permitted
/// characters, and that text reads back as the same purl.
pub fn parse_purl(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(purl) = Purl::parse(text) else {
        return;
    };
    assert!(!purl.name.is_empty());
    assert!(purl.qualifiers.values().all(|value| !value.is_empty()));
    let canonical = purl.to_string();
    assert!(
        canonical
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_~%:/@?=&#".contains(&b)),
        "{canonical}"
    );
    assert_eq!(Purl::parse(&canonical), Ok(purl), "{canonical}");
}

/// SBOM reading (the first byte picks the format): what a document yields is within the
/// caps, and written again in either format it reads back the same, sorted.
pub fn read_sbom(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let format = if pick % 2 == 0 {
        SbomFormat::CycloneDx
    } else {
        SbomFormat::Spdx
    };
    let Ok(contents) = sbom::read(format, body) else {
        return;
    };
    assert!(contents.packages.len() <= MAX_PACKAGES);
    let packages: Vec<LocatedPackage<'_>> = contents
        .packages
        .iter()
        .map(|(package, layer)| LocatedPackage {
            package,
            layer: layer.as_deref(),
        })
        .collect();
    let subject = SbomSubject {
        repository: "fuzz/image",
        digest: "sha256:0000000000000000000000000000000000000000000000000000000000000000",
        platform: Some("linux/amd64"),
        os: contents.os.as_ref(),
        layers: &[],
        created: DateTime::UNIX_EPOCH,
        tool_version: "0.0.0",
    };
    let mut sorted = contents.packages.clone();
    sorted.sort();
    for format in [SbomFormat::CycloneDx, SbomFormat::Spdx] {
        let written = sbom::write(format, &subject, &packages);
        let again = sbom::read(format, &written).unwrap();
        assert_eq!(again.os, contents.os);
        assert_eq!(again.packages, sorted);
    }
}
