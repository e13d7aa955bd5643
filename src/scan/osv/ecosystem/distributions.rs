//! The distributions OSV has data for: the OSV ecosystem of each release, and which
//! package names its advisories use (see the table in [`ecosystem`](super)).

use super::Releases;
use crate::scan::package::{OsRelease, PackageKind};

/// Which names of an OS package a distribution's advisories use.
#[derive(Debug, Clone, Copy)]
pub(super) enum Naming {
    /// The source package's, else the package's.
    Source,
    /// The package's.
    Binary,
    /// Both.
    Both,
}

/// A distribution OSV has data for.
pub(super) struct Distribution {
    /// `ID` in os-release.
    pub(super) id: &'static str,
    /// The package system it uses.
    pub(super) kind: PackageKind,
    /// Its OSV ecosystem without the release.
    pub(super) base: &'static str,
    /// The names its advisories use.
    pub(super) naming: Naming,
    /// The ecosystems of the image's release, `None` when it cannot be read.
    pub(super) releases: fn(&OsRelease) -> Option<Releases>,
}

/// The distributions mapped, by `ID`.
pub(super) const DISTRIBUTIONS: [Distribution; 13] = [
    Distribution {
        id: "debian",
        kind: PackageKind::Dpkg,
        base: "Debian",
        naming: Naming::Source,
        releases: |os| one(format!("Debian:{}", numeric_prefix(os, 1)?)),
    },
    Distribution {
        id: "ubuntu",
        kind: PackageKind::Dpkg,
        base: "Ubuntu",
        naming: Naming::Source,
        releases: |os| {
            let release = numeric_prefix(os, 2)?;
            Some(Releases::OneOf(vec![
                format!("Ubuntu:{release}"),
                format!("Ubuntu:{release}:LTS"),
            ]))
        },
    },
    Distribution {
        id: "alpine",
        kind: PackageKind::Apk,
        base: "Alpine",
        naming: Naming::Source,
        releases: |os| one(format!("Alpine:v{}", numeric_prefix(os, 2)?)),
    },
    Distribution {
        id: "wolfi",
        kind: PackageKind::Apk,
        base: "Wolfi",
        naming: Naming::Binary,
        releases: |_| one("Wolfi".to_owned()),
    },
    Distribution {
        id: "chainguard",
        kind: PackageKind::Apk,
        base: "Chainguard",
        naming: Naming::Binary,
        releases: |_| one("Chainguard".to_owned()),
    },
    Distribution {
        id: "almalinux",
        kind: PackageKind::Rpm,
        base: "AlmaLinux",
        naming: Naming::Both,
        releases: |os| one(format!("AlmaLinux:{}", numeric_prefix(os, 1)?)),
    },
    Distribution {
        id: "rocky",
        kind: PackageKind::Rpm,
        base: "Rocky Linux",
        naming: Naming::Both,
        releases: |os| one(format!("Rocky Linux:{}", numeric_prefix(os, 1)?)),
    },
    Distribution {
        id: "rhel",
        kind: PackageKind::Rpm,
        base: "Red Hat",
        naming: Naming::Both,
        releases: |os| {
            Some(Releases::RedHat {
                major: numeric_prefix(os, 1)?,
            })
        },
    },
    Distribution {
        id: "opensuse-leap",
        kind: PackageKind::Rpm,
        base: "openSUSE",
        naming: Naming::Source,
        releases: |os| one(format!("openSUSE:{}", product_name(os, "openSUSE ")?)),
    },
    Distribution {
        id: "opensuse-tumbleweed",
        kind: PackageKind::Rpm,
        base: "openSUSE",
        naming: Naming::Source,
        releases: |os| one(format!("openSUSE:{}", product_name(os, "openSUSE ")?)),
    },
    Distribution {
        id: "sles",
        kind: PackageKind::Rpm,
        base: "SUSE",
        naming: Naming::Source,
        releases: |os| one(format!("SUSE:{}", product_name(os, "SUSE ")?)),
    },
    Distribution {
        id: "photon",
        kind: PackageKind::Rpm,
        base: "Photon OS",
        naming: Naming::Binary,
        releases: |os| one(format!("Photon OS:{}", numeric_prefix(os, 2)?)),
    },
    Distribution {
        id: "mageia",
        kind: PackageKind::Rpm,
        base: "Mageia",
        naming: Naming::Source,
        releases: |os| one(format!("Mageia:{}", numeric_prefix(os, 1)?)),
    },
];

fn one(ecosystem: String) -> Option<Releases> {
    Some(Releases::OneOf(vec![ecosystem]))
}

/// The first `parts` dot-separated components of `VERSION_ID` when each is digits
/// (`3.19.1` with 2 → `3.19`; `3.20_alpha20240329` → none).
fn numeric_prefix(os: &OsRelease, parts: usize) -> Option<String> {
    let version = os.version_id.as_deref()?;
    let components: Vec<&str> = version.split('.').take(parts).collect();
    let numeric = |c: &&str| !c.is_empty() && c.len() <= 8 && c.bytes().all(|b| b.is_ascii_digit());
    (components.len() == parts && components.iter().all(numeric)).then(|| components.join("."))
}

/// `PRETTY_NAME` without the vendor word SUSE's ecosystems leave out
/// (`openSUSE Leap 15.5` → `Leap 15.5`).
fn product_name(os: &OsRelease, vendor: &str) -> Option<String> {
    let name = os.pretty_name.as_deref()?.strip_prefix(vendor)?;
    (!name.is_empty() && name.len() <= 128).then(|| name.to_owned())
}

/// Distributions with RPM packages that OSV has no data for.
pub(super) const WITHOUT_DATA: [&str; 4] = ["fedora", "amzn", "centos", "ol"];
