//! Choosing the child of an index for a platform, with the precedence `containerd` and
//! `docker pull` apply.
//!
//! Names are normalized first (`x86_64` is `amd64`, `aarch64` is `arm64`, `arm64` without a
//! variant is `arm64/v8`, `arm` without one is `arm/v7`). A child matches when its OS and
//! architecture equal the request's, its variant is the requested one or an older one the
//! CPU also runs (`arm/v7` runs `v6` and `v5`; `amd64/v3` runs `v2` and `v1`), its
//! `os.version` shares the requested build (`major.minor.build`, for Windows), and the
//! request offers every `os.features` entry the child needs. Among matches the closest
//! variant wins, then an exact `os.version`, then the earlier child in the index.

use super::descriptor::{Descriptor, Platform};
use crate::error::{Error, ErrorKind, Result};

impl Platform {
    /// Parses `os/architecture[/variant]`, as `docker pull --platform` takes it.
    ///
    /// ```
    /// let p = wharf::Platform::parse("linux/arm64/v8")?;
    /// assert_eq!((p.os.as_str(), p.architecture.as_str(), p.variant.as_deref()), ("linux", "arm64", Some("v8")));
    /// # Ok::<(), wharf::Error>(())
    /// ```
    pub fn parse(text: &str) -> Result<Self> {
        let parts: Vec<&str> = text.split('/').collect();
        let (os, architecture, variant) = match parts.as_slice() {
            [os, arch] => (*os, *arch, None),
            [os, arch, variant] => (*os, *arch, Some((*variant).to_owned())),
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!("platform {text:?} must be os/architecture[/variant]"),
                ));
            }
        };
        if os.is_empty() || architecture.is_empty() || variant.as_deref() == Some("") {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("platform {text:?} has an empty part"),
            ));
        }
        Ok(Self {
            architecture: architecture.to_owned(),
            os: os.to_owned(),
            os_version: None,
            os_features: Vec::new(),
            variant,
            features: Vec::new(),
        })
    }

    /// `os/architecture[/variant]`.
    pub fn to_text(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }
}

/// OS, architecture and variant in canonical form.
fn normalize(p: &Platform) -> (String, String, String) {
    let os = match p.os.to_ascii_lowercase().as_str() {
        "macos" => "darwin".to_owned(),
        other => other.to_owned(),
    };
    let variant = p.variant.clone().unwrap_or_default().to_ascii_lowercase();
    let architecture = p.architecture.to_ascii_lowercase();
    let (arch, variant) = match (architecture.as_str(), variant.as_str()) {
        ("x86_64" | "x86-64" | "amd64", v) => (
            "amd64",
            if v.is_empty() {
                "v1".to_owned()
            } else {
                v.to_owned()
            },
        ),
        ("aarch64" | "arm64", "" | "8" | "v8") => ("arm64", "v8".to_owned()),
        ("aarch64" | "arm64", v) => ("arm64", v.to_owned()),
        ("armhf", _) => ("arm", "v7".to_owned()),
        ("armel", _) => ("arm", "v6".to_owned()),
        ("arm", "") => ("arm", "v7".to_owned()),
        ("arm", v) if !v.starts_with('v') => ("arm", format!("v{v}")),
        ("i386" | "i686" | "x86", v) => ("386", v.to_owned()),
        (a, v) => (a, v.to_owned()),
    };
    (os, arch.to_owned(), variant)
}

/// How far below the wanted variant a child's variant is (0: the same), if the wanted CPU
/// runs it at all.
fn variant_distance(arch: &str, want: &str, have: &str) -> Option<u32> {
    if want == have {
        return Some(0);
    }
    let level = |v: &str| v.strip_prefix('v').and_then(|n| n.parse::<u32>().ok());
    match arch {
        "arm" | "amd64" => match (level(want), level(have)) {
            (Some(w), Some(h)) if h < w => Some(w - h),
            _ => None,
        },
        _ => None,
    }
}

/// `major.minor.build` of a Windows version string.
fn build_of(version: &str) -> &str {
    let mut dots = version.match_indices('.').map(|(i, _)| i);
    match dots.nth(2) {
        Some(end) => &version[..end],
        None => version,
    }
}

/// The child of `children` that best fits `want`, or `None`.
pub(crate) fn select<'a>(children: &'a [Descriptor], want: &Platform) -> Option<&'a Descriptor> {
    let (os, arch, variant) = normalize(want);
    let mut best: Option<((u32, bool), &Descriptor)> = None;
    for child in children {
        let Some(have) = &child.platform else {
            continue;
        };
        let (have_os, have_arch, have_variant) = normalize(have);
        if have_os != os || have_arch != arch {
            continue;
        }
        let Some(distance) = variant_distance(&arch, &variant, &have_variant) else {
            continue;
        };
        if let (Some(want_version), Some(have_version)) = (&want.os_version, &have.os_version)
            && build_of(want_version) != build_of(have_version)
        {
            continue;
        }
        if !have
            .os_features
            .iter()
            .all(|f| want.os_features.contains(f))
        {
            continue;
        }
        let exact_version = want.os_version.is_some() && want.os_version == have.os_version;
        // Lower distance first, then an exact os.version; earlier children win ties.
        let rank = (distance, !exact_version);
        if best.as_ref().is_none_or(|(r, _)| rank < *r) {
            best = Some((rank, child));
        }
    }
    best.map(|(_, child)| child)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(platform: &str, os_version: Option<&str>, features: &[&str], n: u8) -> Descriptor {
        let mut p = Platform::parse(platform).unwrap();
        p.os_version = os_version.map(str::to_owned);
        p.os_features = features.iter().map(|s| s.to_string()).collect();
        Descriptor {
            media_type: crate::OCI_IMAGE_MANIFEST.into(),
            digest: crate::Digest::of(crate::Algorithm::Sha256, &[n]),
            size: 1,
            artifact_type: None,
            annotations: Default::default(),
            urls: vec![],
            platform: Some(p),
        }
    }

    fn pick(children: &[Descriptor], want: &str) -> Option<u8> {
        let want = Platform::parse(want).unwrap();
        select(children, &want).map(|c| children.iter().position(|x| x == c).unwrap() as u8)
    }

    #[test]
    fn exact_and_normalized_matches() {
        let index = [
            child("linux/amd64", None, &[], 0),
            child("linux/arm64/v8", None, &[], 1),
            child("linux/arm/v6", None, &[], 2),
            child("linux/arm/v7", None, &[], 3),
            child("unknown/unknown", None, &[], 4),
        ];
        assert_eq!(pick(&index, "linux/amd64"), Some(0));
        assert_eq!(pick(&index, "linux/x86_64"), Some(0));
        assert_eq!(pick(&index, "linux/arm64"), Some(1), "arm64 means arm64/v8");
        assert_eq!(pick(&index, "linux/aarch64"), Some(1));
        assert_eq!(pick(&index, "linux/arm"), Some(3), "arm means arm/v7");
        assert_eq!(pick(&index, "linux/arm/v6"), Some(2));
        assert_eq!(
            pick(&index, "linux/arm/v8"),
            Some(3),
            "closest older variant"
        );
        assert_eq!(pick(&index, "linux/s390x"), None);
        assert_eq!(pick(&index, "windows/amd64"), None);
        assert_eq!(
            pick(&index[2..3], "linux/arm/v5"),
            None,
            "a newer variant does not run"
        );
        assert_eq!(
            pick(&[child("linux/amd64/v2", None, &[], 0)], "linux/amd64/v3"),
            Some(0)
        );
        assert_eq!(
            pick(&[child("linux/amd64/v2", None, &[], 0)], "linux/amd64"),
            None
        );
    }

    #[test]
    fn windows_builds_and_features() {
        let index = [
            child("windows/amd64", Some("10.0.17763.1000"), &[], 0),
            child("windows/amd64", Some("10.0.20348.500"), &[], 1),
            child("windows/amd64", Some("10.0.20348.900"), &[], 2),
            child("windows/amd64", Some("10.0.20348.900"), &["win32k"], 3),
        ];
        let mut want = Platform::parse("windows/amd64").unwrap();
        want.os_version = Some("10.0.20348.900".into());
        assert_eq!(
            select(&index, &want),
            Some(&index[2]),
            "exact build revision first"
        );
        want.os_version = Some("10.0.20348.1".into());
        assert_eq!(
            select(&index, &want),
            Some(&index[1]),
            "same build, first listed"
        );
        want.os_version = Some("10.0.17763.5".into());
        assert_eq!(select(&index, &want), Some(&index[0]));
        want.os_version = Some("10.0.14393.1".into());
        assert_eq!(select(&index, &want), None, "no child of this build");
        let mut gui = Platform::parse("windows/amd64").unwrap();
        gui.os_features = vec!["win32k".into()];
        gui.os_version = Some("10.0.20348.900".into());
        assert_eq!(select(&index[3..], &gui), Some(&index[3]));
        let plain = Platform::parse("windows/amd64").unwrap();
        assert_eq!(select(&index[3..], &plain), None, "the child needs win32k");
    }

    #[test]
    fn platform_text() {
        assert_eq!(
            Platform::parse("linux/arm/v7").unwrap().to_text(),
            "linux/arm/v7"
        );
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", "linux/arm/"] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
    }
}
