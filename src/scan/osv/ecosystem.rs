//! Where a package's advisories are filed: the OSV ecosystem, the package name and the
//! version to compare, from the package and the image's OS release.
//!
//! # Ecosystems
//!
//! | package | `ID` in os-release | OSV ecosystems accepted | name looked up |
//! |---|---|---|---|
//! | dpkg | `debian` | `Debian:<major VERSION_ID>` (`Debian:12`) | source package |
//! | dpkg | `ubuntu` | `Ubuntu:<VERSION_ID>` and `Ubuntu:<VERSION_ID>:LTS` | source package |
//! | apk | `alpine` | `Alpine:v<major.minor>` (`Alpine:v3.19`) | origin (source) package |
//! | apk | `wolfi`, `chainguard` | `Wolfi`, `Chainguard` (rolling: no release) | package |
//! | rpm | `almalinux`, `rocky` | `AlmaLinux:<major>`, `Rocky Linux:<major>` | package and source package |
//! | rpm | `rhel` | `Red Hat:enterprise_linux:<major>` and its streams (`…::baseos`, `…::appstream`) | package and source package |
//! | rpm | `opensuse-leap`, `opensuse-tumbleweed`, `sles` | `openSUSE:`/`SUSE:` + `PRETTY_NAME` without its first word (`openSUSE:Leap 15.5`) | source package |
//! | rpm | `photon`, `mageia` | `Photon OS:<VERSION_ID>`, `Mageia:<VERSION_ID>` | package (Photon), source package (Mageia) |
//! | Python | any | `PyPI`, names normalised per PEP 503 | package |
//! | npm, Go, Cargo | any | `npm`, `Go` (the toolchain as `stdlib`), `crates.io` | package |
//!
//! Distribution advisories are filed against *source* packages (Debian, Ubuntu,
//! Alpine, SUSE), so those are looked up by `source.name`, falling back to the
//! package's own name. AlmaLinux's export names binary packages despite the schema
//! saying source, and Red Hat's names either, so rpm packages on those are looked up
//! under both names (one advisory found under both gives one finding).
//!
//! The version compared is the source version for dpkg when the status file gives one
//! (`Source: glibc (2.36-9+deb12u3)`), else the package's. A binNMU rebuilds a binary
//! without changing its source: its binary version gains `+bN`
//! (`2.36-9+deb12u3+b1`) and dpkg then records the source version, which is what
//! the advisory's range is about. When it does not, comparing the binary version is
//! still right: `+bN` sorts after its source version and before the next source
//! upload's, and fixes come only with source uploads. rpm and apk compare the
//! package's own version (an rpm `SOURCERPM` has no epoch; an apk shares its origin's
//! version).
//!
//! Ubuntu's `Ubuntu:Pro:<release>:LTS` records describe fixes available only with an
//! Ubuntu Pro subscription; they are not matched, so a finding's fixed version is one
//! the public archive has.
//!
//! # What is not matched
//!
//! Distribution advisories apply to one release. An OS package on an image without an
//! os-release, or whose release cannot be read (Debian testing and Alpine edge have
//! no numeric `VERSION_ID`), matches nothing rather than something guessed. OSV has no
//! data for Fedora, Amazon Linux, CentOS or Oracle Linux: their packages are
//! inventoried, not matched. Derivatives (`ID_LIKE=debian`) are not matched against
//! their parent's data, whose releases and versions are not theirs. Each case is a
//! [`NotCovered`] the scan reports.

use std::fmt;

use self::distributions::{DISTRIBUTIONS, Naming, WITHOUT_DATA};
use crate::scan::package::{OsRelease, Package, PackageKind};
use crate::scan::version::VersionScheme;

mod distributions;

/// Where to look a package up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The ecosystem without its release (`Debian`, `PyPI`): the index key.
    pub base: &'static str,
    /// Which full ecosystem strings apply.
    pub releases: Releases,
    /// The names to look up (one or two).
    pub names: Vec<String>,
    /// The version to compare: for dpkg the source version when the status file
    /// gives one, else the package's.
    pub version: String,
    /// How versions compare in `ECOSYSTEM` ranges.
    pub scheme: VersionScheme,
}

/// Which full ecosystem strings a lookup accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Releases {
    /// Exactly these (a language ecosystem's name, or a distribution release's).
    OneOf(Vec<String>),
    /// Red Hat's streams of one major release: `Red Hat:enterprise_linux:<major>`
    /// alone or followed by `::` and a stream.
    RedHat {
        /// The major release (`9`).
        major: String,
    },
}

impl Releases {
    /// Whether advisories filed under `ecosystem` apply.
    pub fn accepts(&self, ecosystem: &str) -> bool {
        match self {
            Releases::OneOf(list) => list.iter().any(|e| e == ecosystem),
            Releases::RedHat { major } => ecosystem
                .strip_prefix("Red Hat:enterprise_linux:")
                .and_then(|rest| rest.strip_prefix(major.as_str()))
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::")),
        }
    }
}

/// Why a package is not matched.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NotCovered {
    /// An OS package on an image without an os-release.
    UnknownOs {
        /// The package system.
        kind: PackageKind,
    },
    /// The os-release has no release this module can read for its distribution.
    UnknownRelease {
        /// `ID`.
        distribution: String,
    },
    /// OSV has no data for the distribution (Fedora, Amazon Linux, CentOS, Oracle
    /// Linux).
    NoData {
        /// `ID`.
        distribution: String,
    },
    /// A distribution this module does not map to an OSV ecosystem (a derivative, or
    /// one OSV covers that is not in the table above).
    Unmapped {
        /// `ID`.
        distribution: String,
    },
    /// Packages of a system the distribution does not use (dpkg on Alpine).
    ForeignPackages {
        /// The package system.
        kind: PackageKind,
        /// `ID`.
        distribution: String,
    },
}

impl fmt::Display for NotCovered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotCovered::UnknownOs { kind } => {
                write!(
                    f,
                    "{kind} packages not matched: the image has no os-release, so its release is unknown"
                )
            }
            NotCovered::UnknownRelease { distribution } => write!(
                f,
                "{distribution} packages not matched: its os-release names no release with vulnerability data"
            ),
            NotCovered::NoData { distribution } => {
                write!(
                    f,
                    "{distribution} packages not matched: OSV has no data for {distribution}"
                )
            }
            NotCovered::Unmapped { distribution } => {
                write!(
                    f,
                    "{distribution} packages not matched: {distribution} has no mapped OSV ecosystem"
                )
            }
            NotCovered::ForeignPackages { kind, distribution } => {
                write!(
                    f,
                    "{kind} packages not matched: {distribution} does not publish advisories for them"
                )
            }
        }
    }
}

/// Where `package`'s advisories are, on an image running `os`.
pub fn lookup(os: Option<&OsRelease>, package: &Package) -> Result<Lookup, NotCovered> {
    let language = |base: &'static str| Lookup {
        base,
        releases: Releases::OneOf(vec![base.to_owned()]),
        names: vec![normalise_name(base, &package.name)],
        version: package.version.clone(),
        scheme: VersionScheme::of(package.kind),
    };
    match package.kind {
        PackageKind::Python => return Ok(language("PyPI")),
        PackageKind::Npm => return Ok(language("npm")),
        PackageKind::Go => return Ok(language("Go")),
        PackageKind::Cargo => return Ok(language("crates.io")),
        PackageKind::Dpkg | PackageKind::Apk | PackageKind::Rpm => {}
    }
    let os = os.ok_or(NotCovered::UnknownOs { kind: package.kind })?;
    let distribution = || os.id.chars().take(64).collect::<String>();
    let Some(known) = DISTRIBUTIONS.iter().find(|d| d.id == os.id) else {
        return Err(if WITHOUT_DATA.contains(&os.id.as_str()) {
            NotCovered::NoData {
                distribution: distribution(),
            }
        } else {
            NotCovered::Unmapped {
                distribution: distribution(),
            }
        });
    };
    if known.kind != package.kind {
        return Err(NotCovered::ForeignPackages {
            kind: package.kind,
            distribution: distribution(),
        });
    }
    let releases = (known.releases)(os).ok_or_else(|| NotCovered::UnknownRelease {
        distribution: distribution(),
    })?;
    let source = package.source.as_ref();
    let source_name = source.map_or(&package.name, |s| &s.name);
    let mut names = match known.naming {
        Naming::Source => vec![source_name.clone()],
        Naming::Binary => vec![package.name.clone()],
        Naming::Both => vec![package.name.clone(), source_name.clone()],
    };
    names.dedup();
    let version = match package.kind {
        PackageKind::Dpkg => source.and_then(|s| s.version.clone()),
        _ => None,
    };
    Ok(Lookup {
        base: known.base,
        releases,
        names,
        version: version.unwrap_or_else(|| package.version.clone()),
        scheme: VersionScheme::of(package.kind),
    })
}

/// A package name as its ecosystem compares names: PyPI's per PEP 503 (lower case,
/// each run of `-`, `_` and `.` as one `-`), the others as written.
pub fn normalise_name(base: &str, name: &str) -> String {
    if base != "PyPI" {
        return name.to_owned();
    }
    let mut out = String::with_capacity(name.len());
    let mut in_separators = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_separators {
                out.push('-');
            }
            in_separators = true;
        } else {
            out.push(c.to_ascii_lowercase());
            in_separators = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::package::SourcePackage;

    fn os(id: &str, version_id: Option<&str>, pretty: Option<&str>) -> OsRelease {
        OsRelease {
            id: id.into(),
            version_id: version_id.map(str::to_owned),
            pretty_name: pretty.map(str::to_owned),
            ..OsRelease::default()
        }
    }

    fn package(
        kind: PackageKind,
        name: &str,
        version: &str,
        source: Option<(&str, Option<&str>)>,
    ) -> Package {
        Package {
            kind,
            name: name.into(),
            version: version.into(),
            source: source.map(|(name, version)| SourcePackage {
                name: name.into(),
                version: version.map(str::to_owned),
            }),
            arch: None,
            license: None,
            path: String::new(),
        }
    }

    #[test]
    fn debian_uses_the_source_package_and_its_version() {
        let libc = package(
            PackageKind::Dpkg,
            "libc6",
            "2.36-9+deb12u3+b1",
            Some(("glibc", Some("2.36-9+deb12u3"))),
        );
        let found = lookup(Some(&os("debian", Some("12"), None)), &libc);
        let Ok(found) = found else {
            panic!("{found:?}");
        };
        assert_eq!(found.names, ["glibc"]);
        assert_eq!(found.version, "2.36-9+deb12u3");
        assert!(found.releases.accepts("Debian:12"));
        assert!(!found.releases.accepts("Debian:11"));
        assert!(!found.releases.accepts("Debian"));
    }

    #[test]
    fn release_strings_per_distribution() {
        let accepts = |os: OsRelease, kind: PackageKind, ecosystem: &str| {
            lookup(Some(&os), &package(kind, "p", "1", None))
                .is_ok_and(|l| l.releases.accepts(ecosystem))
        };
        assert!(accepts(
            os("ubuntu", Some("22.04"), None),
            PackageKind::Dpkg,
            "Ubuntu:22.04:LTS"
        ));
        assert!(accepts(
            os("ubuntu", Some("23.10"), None),
            PackageKind::Dpkg,
            "Ubuntu:23.10"
        ));
        assert!(!accepts(
            os("ubuntu", Some("22.04"), None),
            PackageKind::Dpkg,
            "Ubuntu:Pro:22.04:LTS"
        ));
        assert!(accepts(
            os("alpine", Some("3.19.1"), None),
            PackageKind::Apk,
            "Alpine:v3.19"
        ));
        assert!(accepts(
            os("rocky", Some("9.3"), None),
            PackageKind::Rpm,
            "Rocky Linux:9"
        ));
        assert!(accepts(
            os("rhel", Some("9.4"), None),
            PackageKind::Rpm,
            "Red Hat:enterprise_linux:9::baseos"
        ));
        assert!(accepts(
            os("rhel", Some("9.4"), None),
            PackageKind::Rpm,
            "Red Hat:enterprise_linux:9"
        ));
        assert!(!accepts(
            os("rhel", Some("9.4"), None),
            PackageKind::Rpm,
            "Red Hat:enterprise_linux:90::baseos"
        ));
        assert!(!accepts(
            os("rhel", Some("9.4"), None),
            PackageKind::Rpm,
            "Red Hat:rhel_eus:9.4::baseos"
        ));
        let leap = os("opensuse-leap", Some("15.5"), Some("openSUSE Leap 15.5"));
        assert!(accepts(leap, PackageKind::Rpm, "openSUSE:Leap 15.5"));
        assert!(accepts(os("wolfi", None, None), PackageKind::Apk, "Wolfi"));
    }

    #[test]
    fn what_is_not_covered_says_why() {
        let openssl = package(PackageKind::Rpm, "openssl", "1:3.0.8-1.amzn2023.0.11", None);
        assert_eq!(
            lookup(None, &openssl),
            Err(NotCovered::UnknownOs {
                kind: PackageKind::Rpm
            })
        );
        assert_eq!(
            lookup(Some(&os("amzn", Some("2023"), None)), &openssl),
            Err(NotCovered::NoData {
                distribution: "amzn".into()
            })
        );
        assert_eq!(
            lookup(
                Some(&os("linuxmint", Some("21.2"), None)),
                &package(PackageKind::Dpkg, "bash", "5.1", None)
            ),
            Err(NotCovered::Unmapped {
                distribution: "linuxmint".into()
            })
        );
        let edge = os("alpine", Some("3.20_alpha20240329"), None);
        assert_eq!(
            lookup(
                Some(&edge),
                &package(PackageKind::Apk, "musl", "1.2.5-r0", None)
            ),
            Err(NotCovered::UnknownRelease {
                distribution: "alpine".into()
            })
        );
        assert_eq!(
            lookup(
                Some(&os("alpine", Some("3.19.1"), None)),
                &package(PackageKind::Dpkg, "bash", "5.2", None)
            ),
            Err(NotCovered::ForeignPackages {
                kind: PackageKind::Dpkg,
                distribution: "alpine".into()
            })
        );
        // Language packages need no OS.
        assert!(lookup(None, &package(PackageKind::Npm, "lodash", "4.17.20", None)).is_ok());
    }

    #[test]
    fn rpm_on_alma_tries_both_names_once() {
        let libs = package(
            PackageKind::Rpm,
            "openssl-libs",
            "1:3.0.7-25.el9",
            Some(("openssl", Some("3.0.7-25.el9"))),
        );
        let found =
            lookup(Some(&os("almalinux", Some("9.3"), None)), &libs).map(|l| (l.names, l.version));
        assert_eq!(
            found,
            Ok((
                vec!["openssl-libs".to_owned(), "openssl".to_owned()],
                "1:3.0.7-25.el9".to_owned()
            ))
        );
        let openssl = package(
            PackageKind::Rpm,
            "openssl",
            "1:3.0.7-25.el9",
            Some(("openssl", None)),
        );
        let found = lookup(Some(&os("almalinux", Some("9.3"), None)), &openssl).map(|l| l.names);
        assert_eq!(found, Ok(vec!["openssl".to_owned()]));
    }

    #[test]
    fn pypi_names_are_normalised() {
        assert_eq!(
            normalise_name("PyPI", "Django_REST--framework.x"),
            "django-rest-framework-x"
        );
        assert_eq!(normalise_name("npm", "@Babel/core"), "@Babel/core");
    }
}
