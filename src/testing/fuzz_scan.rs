//! Fuzz bodies for scanning: the layer walk and the package-database parsers.

pub(super) mod binaries;
pub(super) mod layers;
pub(super) mod osv;
pub(super) mod parsers;
pub(super) mod rpm;
pub(super) mod versions;
