//! The RPM database (rpmdb): what is installed on Fedora, RHEL and its rebuilds, Amazon
//! Linux and SUSE.
//!
//! # Where and in which format
//!
//! | file | format | systems | read |
//! |---|---|---|---|
//! | `var/lib/rpm/rpmdb.sqlite`, `usr/lib/sysimage/rpm/rpmdb.sqlite` | SQLite | Fedora 33+, RHEL 9, Amazon Linux 2023 | yes |
//! | `var/lib/rpm/Packages` | Berkeley DB hash | RHEL 7 and 8, CentOS, Amazon Linux 2 | yes |
//! | `var/lib/rpm/Packages.db`, `usr/lib/sysimage/rpm/Packages.db` | ndb | SUSE | no ([`NDB_UNSUPPORTED`]) |
//!
//! Both read formats map a package's number in the database (its install order) to its
//! header ([`parse_header`]). In SQLite, table `Packages(hnum INTEGER PRIMARY KEY, blob
//! BLOB NOT NULL)` holds one row per package. In Berkeley DB ([`HashDatabase`]) the key
//! is the number as a 4-byte integer in the file's byte order and the value the header;
//! key 0 holds rpm's counter of numbers handed out, not a package. The other tables or
//! files (`Name`, `Basenames`, `Providename`, …) index the headers and are not needed.
//!
//! # The package's version
//!
//! [`Package::version`] is `epoch:version-release` with `epoch:` present exactly when
//! the header has an `EPOCH` tag, even `0`: the form rpm's own `%{EVR}` prints.
//! Advisories may write a zero epoch as `0:` or leave it out, and rpm's version order
//! reads a missing epoch as 0, so both forms compare the same.
//!
//! The source package comes from `SOURCERPM`, the file name of the source package
//! (`openssl-3.0.7-24.el9.src.rpm`): its name and `version-release`. The file name has
//! no epoch, so its version is recorded only when it differs from the package's
//! (always, when the package has an epoch); a name that does not split into three
//! `-`-separated parts leaves the source unknown.
//!
//! # Caps
//!
//! At most [`MAX_PACKAGES`] packages per database and [`MAX_INDEX_ENTRIES`] index
//! entries per header; the readers bound the rest by the file's size (see
//! [`crate::scan::sqlite`] and [`HashDatabase`]).

mod bdb;
mod header;

use std::fmt;

pub use self::bdb::{BdbError, HashDatabase, Pair, Pairs};
pub use self::header::{GPG_PUBKEY, HeaderError, MAX_INDEX_ENTRIES, RpmHeader, parse_header};

use crate::scan::package::{InventoryError, Package, PackageKind, SourcePackage};
use crate::scan::sqlite::{Database, Value};

/// Where images keep a SQLite rpmdb.
pub const RPMDB_SQLITE: &[&str] = &[
    "var/lib/rpm/rpmdb.sqlite",
    "usr/lib/sysimage/rpm/rpmdb.sqlite",
];

/// Where images keep a Berkeley DB rpmdb (RHEL 7 and 8, Amazon Linux 2).
pub const RPMDB_BDB: &[&str] = &["var/lib/rpm/Packages"];

/// Where images keep an ndb rpmdb (SUSE).
pub const RPMDB_NDB: &[&str] = &[
    "var/lib/rpm/Packages.db",
    "usr/lib/sysimage/rpm/Packages.db",
];

/// Why an image whose rpmdb is at one of [`RPMDB_NDB`] has no rpm inventory.
pub const NDB_UNSUPPORTED: &str = "rpmdb in ndb format is not supported";

/// The most packages one rpmdb may list.
pub const MAX_PACKAGES: usize = 200_000;

/// The table of headers in a SQLite rpmdb, and the column of the header blob in it.
const PACKAGES_TABLE: &str = "Packages";
const BLOB_COLUMN: usize = 1;

/// The packages of a SQLite rpmdb found at `path`, in install order (signing keys
/// left out).
pub fn parse_sqlite(data: &[u8], path: &str) -> Result<Vec<Package>, InventoryError> {
    let rows = Database::open(data)
        .and_then(|database| database.table(PACKAGES_TABLE))
        .map_err(|e| rpmdb_error(path, e))?;
    let mut listing = Listing::new(path);
    for row in rows {
        let row = row.map_err(|e| rpmdb_error(path, e))?;
        let blob = row.values.get(BLOB_COLUMN).and_then(Value::as_blob);
        let blob = blob.ok_or_else(|| {
            let problem = format!("package {}: the blob column is not a blob", row.rowid);
            rpmdb_error(path, problem)
        })?;
        listing.add(row.rowid, blob)?;
    }
    Ok(listing.in_install_order())
}

/// The packages of a Berkeley DB rpmdb found at `path`, in install order (signing keys
/// left out).
pub fn parse_bdb(data: &[u8], path: &str) -> Result<Vec<Package>, InventoryError> {
    let database = HashDatabase::open(data).map_err(|e| rpmdb_error(path, e))?;
    let mut listing = Listing::new(path);
    for pair in database.pairs() {
        let Pair { key, value } = pair.map_err(|e| rpmdb_error(path, e))?;
        let key = <[u8; 4]>::try_from(key.as_slice()).map_err(|_| {
            let problem = format!("a key of {} bytes, not a package number", key.len());
            rpmdb_error(path, problem)
        })?;
        let number = match database.big_endian() {
            true => u32::from_be_bytes(key),
            false => u32::from_le_bytes(key),
        };
        // Key 0 holds rpm's counter of numbers handed out.
        if number != 0 {
            listing.add(i64::from(number), &value)?;
        }
    }
    Ok(listing.in_install_order())
}

fn rpmdb_error(path: &str, problem: impl fmt::Display) -> InventoryError {
    InventoryError::new("rpmdb", format!("{path}: {problem}"))
}

/// The packages read so far, with their numbers in the database.
struct Listing<'path> {
    path: &'path str,
    numbered: Vec<(i64, Package)>,
}

impl<'path> Listing<'path> {
    fn new(path: &'path str) -> Self {
        Listing {
            path,
            numbered: Vec::new(),
        }
    }

    /// Adds the package of header `blob`, number `number`, unless it is a signing key.
    fn add(&mut self, number: i64, blob: &[u8]) -> Result<(), InventoryError> {
        let header = parse_header(blob)
            .map_err(|e| rpmdb_error(self.path, format!("package {number}: {e}")))?;
        let Some(header) = header else {
            return Ok(());
        };
        if self.numbered.len() == MAX_PACKAGES {
            let problem = format!("more than {MAX_PACKAGES} packages");
            return Err(rpmdb_error(self.path, problem));
        }
        self.numbered.push((number, header.to_package(self.path)));
        Ok(())
    }

    fn in_install_order(mut self) -> Vec<Package> {
        self.numbered.sort_by_key(|(number, _)| *number);
        self.numbered
            .into_iter()
            .map(|(_, package)| package)
            .collect()
    }
}

impl RpmHeader {
    /// `[epoch:]version-release`, the epoch present when the header has one.
    pub fn evr(&self) -> String {
        match self.epoch {
            Some(epoch) => format!("{epoch}:{}-{}", self.version, self.release),
            None => format!("{}-{}", self.version, self.release),
        }
    }

    /// The package this header describes, found in the rpmdb at `path`.
    pub fn to_package(&self, path: &str) -> Package {
        let version = self.evr();
        let source = self.source_rpm.as_deref().and_then(split_source_rpm);
        let source = source.map(|(name, source_version)| SourcePackage {
            name: name.to_owned(),
            version: (source_version != version).then(|| source_version.to_owned()),
        });
        Package {
            kind: PackageKind::Rpm,
            name: self.name.clone(),
            version,
            source,
            arch: self.arch.clone(),
            license: self.license.clone(),
            path: path.to_owned(),
        }
    }
}

/// The name and `version-release` of a source package's file name:
/// `openssl-3.0.7-24.el9.src.rpm` → `openssl`, `3.0.7-24.el9` (`.nosrc.rpm` too).
pub fn split_source_rpm(file: &str) -> Option<(&str, &str)> {
    let stem = file
        .strip_suffix(".src.rpm")
        .or_else(|| file.strip_suffix(".nosrc.rpm"))?;
    let (rest, release) = stem.rsplit_once('-')?;
    let (name, version) = rest.rsplit_once('-')?;
    if name.is_empty() || version.is_empty() || release.is_empty() {
        return None;
    }
    Some((name, stem.get(name.len() + 1..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(epoch: Option<u32>, source_rpm: &str) -> RpmHeader {
        RpmHeader {
            name: "openssl-libs".into(),
            epoch,
            version: "3.0.7".into(),
            release: "24.el9".into(),
            arch: Some("x86_64".into()),
            license: Some("Apache-2.0".into()),
            source_rpm: Some(source_rpm.into()),
        }
    }

    #[test]
    fn source_rpm_names_split_into_name_and_version_release() {
        assert_eq!(
            split_source_rpm("openssl-3.0.7-24.el9.src.rpm"),
            Some(("openssl", "3.0.7-24.el9"))
        );
        assert_eq!(
            split_source_rpm("python3-pip-21.3.1-1.fc40.src.rpm"),
            Some(("python3-pip", "21.3.1-1.fc40"))
        );
        assert_eq!(
            split_source_rpm("hello-wharf-1.2~rc1-3.fc40.nosrc.rpm"),
            Some(("hello-wharf", "1.2~rc1-3.fc40"))
        );
        assert_eq!(split_source_rpm("openssl-3.0.7.src.rpm"), None);
        assert_eq!(split_source_rpm("-1-2.src.rpm"), None);
        assert_eq!(split_source_rpm("openssl-3.0.7-24.el9.x86_64.rpm"), None);
    }

    #[test]
    fn the_epoch_is_written_when_the_header_has_one() {
        let with_epoch = header(Some(1), "openssl-3.0.7-24.el9.src.rpm").to_package("p");
        assert_eq!(with_epoch.version, "1:3.0.7-24.el9");
        assert_eq!(
            with_epoch.source,
            Some(SourcePackage {
                name: "openssl".into(),
                version: Some("3.0.7-24.el9".into()),
            })
        );
        let zero = header(Some(0), "openssl-3.0.7-24.el9.src.rpm").to_package("p");
        assert_eq!(zero.version, "0:3.0.7-24.el9");
        // Without an epoch the source's version is the package's own.
        let none = header(None, "openssl-3.0.7-24.el9.src.rpm").to_package("p");
        assert_eq!(none.version, "3.0.7-24.el9");
        assert_eq!(none.source.and_then(|s| s.version), None);
    }

    #[test]
    fn a_source_version_unlike_the_packages_is_kept() {
        let package = header(None, "openssl-3.0.7-23.el9.src.rpm").to_package("p");
        assert_eq!(
            package.source.and_then(|s| s.version),
            Some("3.0.7-23.el9".into())
        );
    }

    #[test]
    fn a_file_that_is_not_sqlite_is_an_rpmdb_error_with_its_path() {
        let error = parse_sqlite(b"not a database", RPMDB_SQLITE[0]);
        assert_eq!(
            error,
            Err(InventoryError::new(
                "rpmdb",
                "var/lib/rpm/rpmdb.sqlite: not a SQLite 3 database file"
            ))
        );
    }
}
