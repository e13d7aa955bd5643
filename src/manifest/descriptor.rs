//! Descriptors and platforms, validated out of a manifest's JSON with the path of every
//! field named in errors (`layers[2].digest`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};

/// A content descriptor: what a manifest says about a blob or another manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the referenced content.
    pub media_type: String,
    /// The digest of the referenced content.
    pub digest: Digest,
    /// The size of the referenced content in bytes.
    pub size: u64,
    /// The artifact type, for descriptors of artifact manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// URLs the content may also be fetched from (Docker foreign layers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// The platform of an index's child manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// The platform an image runs on, as an index states it for each child.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`, `arm64`, …).
    pub architecture: String,
    /// Operating system (`linux`, `windows`, …).
    pub os: String,
    /// Operating system version (Windows builds).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// Required operating system features.
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    /// CPU variant (`v7`, `v8`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// CPU features (reserved by the spec).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
}

/// The error for a field that breaks the spec.
pub(crate) fn invalid(path: &str, why: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::ManifestInvalid,
        format!("manifest field {path}: {why}"),
    )
}

/// Reads JSON objects field by field, naming each field's full path in errors.
pub(crate) struct Fields<'a> {
    pub(crate) path: String,
    pub(crate) map: &'a Map<String, Value>,
    /// Whether descriptors get the format checks a push gets (media type grammar, URIs,
    /// embedded data). Manifests already stored are read without them: one accepted
    /// before the checks existed must stay readable.
    pub(crate) strict: bool,
}

impl<'a> Fields<'a> {
    pub(crate) fn of(path: &str, value: &'a Value) -> Result<Self> {
        match value {
            Value::Object(map) => Ok(Self {
                path: path.to_owned(),
                map,
                strict: true,
            }),
            _ => Err(invalid(path, "must be an object")),
        }
    }

    pub(crate) fn child(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name)
    }

    pub(crate) fn string(&self, name: &str) -> Result<Option<String>> {
        match self.map.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(&self.child(name), "must be a string")),
        }
    }

    pub(crate) fn required_string(&self, name: &str) -> Result<String> {
        self.string(name)?
            .ok_or_else(|| invalid(&self.child(name), "is required"))
    }

    pub(crate) fn strings(&self, name: &str) -> Result<Vec<String>> {
        match self.map.get(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(invalid(
                        &format!("{}[{i}]", self.child(name)),
                        "must be a string",
                    )),
                })
                .collect(),
            Some(_) => Err(invalid(&self.child(name), "must be an array of strings")),
        }
    }

    pub(crate) fn annotations(&self) -> Result<BTreeMap<String, String>> {
        match self.map.get("annotations") {
            None => Ok(BTreeMap::new()),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    _ => Err(invalid(
                        &format!("{}[{k:?}]", self.child("annotations")),
                        "must be a string",
                    )),
                })
                .collect(),
            Some(_) => Err(invalid(
                &self.child("annotations"),
                "must be an object of strings",
            )),
        }
    }

    pub(crate) fn descriptor(&self, name: &str) -> Result<Option<Descriptor>> {
        self.map
            .get(name)
            .map(|v| descriptor(&self.child(name), v, self.strict))
            .transpose()
    }

    pub(crate) fn descriptors(&self, name: &str) -> Result<Option<Vec<Descriptor>>> {
        match self.map.get(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| descriptor(&format!("{}[{i}]", self.child(name)), v, self.strict))
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(_) => Err(invalid(
                &self.child(name),
                "must be an array of descriptors",
            )),
        }
    }
}

/// Validates one descriptor.
pub(crate) fn descriptor(path: &str, value: &Value, strict: bool) -> Result<Descriptor> {
    let fields = Fields::of(path, value)?;
    let media_type = fields.required_string("mediaType")?;
    let digest_text = fields.required_string("digest")?;
    let digest = digest_text
        .parse::<Digest>()
        .map_err(|e| invalid(&fields.child("digest"), e.message()))?;
    let size = match fields.get("size") {
        None => return Err(invalid(&fields.child("size"), "is required")),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_i64()) {
            (Some(size), _) if size <= i64::MAX as u64 => size,
            (_, Some(negative)) if negative < 0 => {
                return Err(invalid(
                    &fields.child("size"),
                    format!("must not be negative, found {negative}"),
                ));
            }
            _ => {
                return Err(invalid(
                    &fields.child("size"),
                    format!("must be an integer of at most 2^63-1, found {n}"),
                ));
            }
        },
        Some(_) => return Err(invalid(&fields.child("size"), "must be a number")),
    };
    let platform = match fields.get("platform") {
        None => None,
        Some(v) => Some(platform(&fields.child("platform"), v)?),
    };
    let artifact_type = fields.string("artifactType")?;
    let urls = fields.strings("urls")?;
    if strict {
        check_format(
            &fields,
            &media_type,
            artifact_type.as_deref(),
            &urls,
            &digest,
            size,
        )?;
    }
    Ok(Descriptor {
        media_type,
        digest,
        size,
        artifact_type,
        annotations: fields.annotations()?,
        urls,
        platform,
    })
}

/// The format checks of a pushed descriptor: media types by RFC 6838, URIs by RFC 3986,
/// and embedded data that matches its size and digest.
fn check_format(
    fields: &Fields<'_>,
    media_type: &str,
    artifact_type: Option<&str>,
    urls: &[String],
    digest: &Digest,
    size: u64,
) -> Result<()> {
    check_media_type(&fields.child("mediaType"), media_type)?;
    if let Some(artifact_type) = artifact_type {
        check_media_type(&fields.child("artifactType"), artifact_type)?;
    }
    for (i, url) in urls.iter().enumerate() {
        if !is_uri(url) {
            return Err(invalid(
                &format!("{}[{i}]", fields.child("urls")),
                format!("{url:?} is not a URI (RFC 3986)"),
            ));
        }
    }
    if let Some(data) = fields.get("data") {
        check_data(&fields.child("data"), data, digest, size)?;
    }
    Ok(())
}

/// A media type as RFC 6838 names them: `type "/" subtype`, each a restricted-name
/// (a letter or digit, then up to 126 of letters, digits and `!#$&-^_.+`), no parameters.
pub(crate) fn check_media_type(path: &str, media_type: &str) -> Result<()> {
    fn restricted_name(name: &str) -> bool {
        let mut bytes = name.bytes();
        bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
            && name.len() <= 127
            && bytes.all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    }
    match media_type.split_once('/') {
        Some((kind, subtype)) if restricted_name(kind) && restricted_name(subtype) => Ok(()),
        _ => Err(invalid(
            path,
            format!("{media_type:?} is not a media type (RFC 6838: type/subtype)"),
        )),
    }
}

/// Whether `text` is a URI by RFC 3986: a scheme, a colon, and only characters a URI may
/// hold, with every `%` starting an escape of two hex digits.
fn is_uri(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once(':') else {
        return false;
    };
    let mut scheme_bytes = scheme.bytes();
    let scheme_ok = scheme_bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && scheme_bytes.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            i += 3;
            continue;
        }
        if !(b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=".contains(&b)) {
            return false;
        }
        i += 1;
    }
    scheme_ok
}

/// Embedded content: base64 with padding (RFC 4648), exactly `size` bytes that hash to
/// `digest`.
fn check_data(path: &str, data: &Value, digest: &Digest, size: u64) -> Result<()> {
    let Value::String(text) = data else {
        return Err(invalid(path, "must be a base64 string"));
    };
    let bytes = decode_base64(text).ok_or_else(|| {
        invalid(
            path,
            "is not base64 with padding (RFC 4648, standard alphabet)",
        )
    })?;
    if bytes.len() as u64 != size {
        return Err(invalid(
            path,
            format!("holds {} bytes, but size says {size}", bytes.len()),
        ));
    }
    let actual = Digest::of(digest.algorithm(), &bytes);
    if &actual != digest {
        return Err(invalid(
            path,
            format!("hashes to {actual}, but digest says {digest}"),
        ));
    }
    Ok(())
}

/// Strict base64 (RFC 4648 section 4): length a multiple of four, `=` only as the final
/// padding, and no bits set beyond the data (so every byte string has one encoding).
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    fn value(b: u8) -> Option<u32> {
        Some(match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (index, quad) in bytes.chunks(4).enumerate() {
        let last = index == bytes.len() / 4 - 1;
        let padding = quad.iter().rev().take_while(|&&b| b == b'=').count();
        if padding > 2 || (padding > 0 && !last) {
            return None;
        }
        let mut bits = 0u32;
        for &b in &quad[..4 - padding] {
            bits = bits << 6 | value(b)?;
        }
        bits <<= 6 * padding as u32;
        let decoded = [(bits >> 16) as u8, (bits >> 8) as u8, bits as u8];
        let keep = 3 - padding;
        if decoded[keep..].iter().any(|&b| b != 0) {
            return None;
        }
        out.extend_from_slice(&decoded[..keep]);
    }
    Some(out)
}

fn platform(path: &str, value: &Value) -> Result<Platform> {
    let fields = Fields::of(path, value)?;
    Ok(Platform {
        architecture: fields.required_string("architecture")?,
        os: fields.required_string("os")?,
        os_version: fields.string("os.version")?,
        os_features: fields.strings("os.features")?,
        variant: fields.string("variant")?,
        features: fields.strings("features")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_strict() {
        assert_eq!(decode_base64("").unwrap(), b"");
        assert_eq!(decode_base64("e30=").unwrap(), b"{}");
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGk/").unwrap(), [0x68, 0x69, 0x3f]);
        for bad in [
            "e30", "e3==", "e30=e30=", "e-0=", "aGVsbG9=", "====", "e30 ",
        ] {
            assert!(decode_base64(bad).is_none(), "{bad:?} accepted");
        }
    }

    #[test]
    fn media_types_follow_rfc_6838() {
        for good in [
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "a/b",
            "text/x-c#",
        ] {
            assert!(check_media_type("m", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "application",
            "/json",
            "application/",
            "a/b/c",
            "a/b; x=y",
            ".a/b",
            "a/b c",
        ] {
            assert!(check_media_type("m", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn uris_follow_rfc_3986() {
        for good in [
            "https://example.com/a?b=c#d",
            "urn:isbn:0451450523",
            "s3:/x%20y",
        ] {
            assert!(is_uri(good), "{good}");
        }
        for bad in [
            "",
            "no-scheme",
            "1http://x",
            "http://a b",
            "http://x/%zz",
            "http://x/%2",
        ] {
            assert!(!is_uri(bad), "{bad:?}");
        }
    }
}
