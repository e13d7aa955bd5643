//! Bodies of the fuzz targets in `fuzz/`, shared with the stable test that replays their
//! corpus, so CI exercises every input the fuzzer kept.

use crate::digest::{Algorithm, Digest, Digester};
use crate::reference::{Reference, RepoName, Tag};

/// Digest parsing: accepted text is canonical and round-trips; rejected text is
/// `DigestInvalid`; a digester fed the bytes in two pieces equals one shot.
pub fn parse_digest(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        match text.parse::<Digest>() {
            Ok(d) => {
                assert_eq!(d.as_str(), text);
                assert_eq!(d.hex().len(), d.algorithm().hex_len());
                assert!(!text.contains('/') && !text.contains(".."));
                assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
            }
            Err(e) => assert_eq!(e.kind(), crate::ErrorKind::DigestInvalid),
        }
    }
    let cut = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let mut digester = Digester::new(Algorithm::Sha256);
    digester.update(&data[..cut]);
    let mut resumed = Digester::resume(&digester.state()).unwrap();
    resumed.update(&data[cut..]);
    assert_eq!(resumed.finish(), Digest::of(Algorithm::Sha256, data));
}

/// Name, tag and reference parsing: accepted values round-trip and are safe as storage
/// path segments; rejected ones carry the matching error kind.
pub fn parse_names(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match text.parse::<RepoName>() {
        Ok(name) => {
            assert_eq!(name.as_str(), text);
            assert!(!text.starts_with('/') && !text.ends_with('/'));
            assert!(
                text.split('/')
                    .all(|c| !c.is_empty() && c != "." && c != "..")
            );
            assert!(
                text.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-/".contains(&c))
            );
        }
        Err(e) => assert_eq!(e.kind(), crate::ErrorKind::NameInvalid),
    }
    match text.parse::<Tag>() {
        Ok(tag) => {
            assert_eq!(tag.as_str(), text);
            assert!(!text.contains('/') && !text.starts_with('.') && text.len() <= 128);
        }
        Err(e) => assert_eq!(e.kind(), crate::ErrorKind::TagInvalid),
    }
    if let Ok(reference) = text.parse::<Reference>() {
        assert_eq!(reference.to_string(), text);
    }
}

/// Manifest parsing: never panics; an accepted manifest keeps its exact bytes and
/// digest, and every descriptor it lists carries a canonical digest.
pub fn parse_manifest(data: &[u8]) {
    let (content_type, body) = match data.split_first() {
        // The first byte picks the declared content type, as a frontend would pass it.
        Some((&pick, rest)) => {
            let types = [
                None,
                Some(crate::OCI_IMAGE_MANIFEST),
                Some(crate::OCI_IMAGE_INDEX),
                Some(crate::DOCKER_MANIFEST_V2),
                Some(crate::DOCKER_MANIFEST_LIST),
                Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
            ];
            (types[usize::from(pick) % types.len()], rest)
        }
        None => (None, data),
    };
    let raw = bytes::Bytes::copy_from_slice(body);
    if let Ok(manifest) = crate::Manifest::parse(raw.clone(), content_type) {
        assert_eq!(manifest.raw(), &raw);
        assert_eq!(manifest.digest(), &Digest::of(Algorithm::Sha256, body));
        for d in manifest
            .blobs()
            .chain(manifest.children())
            .chain(manifest.subject())
        {
            assert_eq!(d.digest.to_string().parse::<Digest>().unwrap(), d.digest);
        }
    }
}

/// The at-rest decoder on arbitrary bytes, with and without a key: it never panics, and
/// whatever it accepts re-encodes (same key, salt and frame size, no compression)
/// to an object that decodes to the same bytes. Ranges are read frame by frame through
/// the layout, as a ranged read does, and must agree with the whole decode.
pub fn decode_object(data: &[u8]) {
    use crate::codec::{Compression, DataKey, FrameEncoder, Header, Layout, decode};
    let key = DataKey::from_bytes([0x5a; 32]);
    for key in [None, Some(&key)] {
        let Ok(content) = decode(data, key) else {
            continue;
        };
        let header = Header::decode(data).expect("a decoded object has a header");
        let footer_len = Layout::footer_len(data).expect("and a footer");
        let layout = Layout::parse(
            data,
            &data[data.len() - footer_len..],
            data.len() as u64,
            key,
        )
        .expect("and a layout");
        assert_eq!(layout.logical_size(), content.len() as u64);
        let mut framed = Vec::new();
        for index in 0..layout.frame_count() {
            let range = layout.frame_range(index);
            framed.extend(
                layout
                    .open(index, &data[range.start as usize..range.end as usize])
                    .expect("a frame of a decoded object opens"),
            );
        }
        assert_eq!(framed, content);
        let mut encoder = FrameEncoder::new(
            header.frame_size() as usize,
            Compression::Off,
            key.filter(|_| header.encrypted()),
            header.salt,
        )
        .expect("the header's frame size is valid");
        let mut again = encoder.header().to_vec();
        again.extend(encoder.push(&content));
        again.extend(encoder.finish());
        assert_eq!(decode(&again, key).expect("re-encoded"), content);
    }
}

/// IAM policy parsing and evaluation: never panics; an accepted document parses the
/// same again, and evaluating it for any caller and action gives one answer.
pub fn parse_policy(data: &[u8]) {
    use crate::access::{Action, Arn, Context, Identity, Policy, PolicyKind, Principal, Request};
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let kind = if pick % 2 == 0 {
        PolicyKind::Repository
    } else {
        PolicyKind::Identity
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return;
    };
    let Ok(policy) = Policy::parse(text, kind) else {
        return;
    };
    assert_eq!(Policy::parse(text, kind).unwrap(), policy);
    let mut context = Context::at(std::time::SystemTime::UNIX_EPOCH);
    context.source_ip(std::net::IpAddr::from([10, 0, 0, 1]));
    let resource = Arn::repository("us-east-1", "123456789012", "team/app");
    let identity = Identity::user("123456789012", "alice");
    let identity = match kind {
        PolicyKind::Identity => identity.with_policy(policy.clone()),
        PolicyKind::Repository | PolicyKind::Session => identity,
    };
    let repository = (kind == PolicyKind::Repository).then_some(&policy);
    for principal in [Principal::Anonymous, Principal::Identity(identity)] {
        for &action in Action::ALL {
            let request = Request {
                principal: &principal,
                action,
                resource: &resource,
                context: &context,
            };
            let first = crate::access::evaluate(&request, repository);
            assert_eq!(crate::access::evaluate(&request, repository), first);
        }
    }
}

pub use super::fuzz_scan::binaries::{parse_auditable, parse_elf_sections, parse_go_buildinfo};
pub use super::fuzz_scan::inventory::{
    parse_apk, parse_dpkg, parse_npm_package, parse_os_release, parse_python_metadata,
};
pub use super::fuzz_scan::layers::walk_layer;
pub use super::fuzz_scan::osv::{parse_cvss, parse_osv_record, read_osv_zip};
pub use super::fuzz_scan::rpm::{parse_rpm_header, read_rpm_bdb, read_sqlite};
pub use super::fuzz_scan::sbom::{parse_purl, read_sbom};
pub use super::fuzz_scan::versions::compare_versions;
