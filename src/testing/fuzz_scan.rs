//! Fuzz bodies for scanning: the layer walk and the package-database parsers.

pub(super) mod binaries;
pub(super) mod inventory;
pub(super) mod layers;
pub(super) mod osv;
pub(super) mod rpm;
pub(super) mod sbom;
pub(super) mod versions;
