//! Installed npm packages, from the `package.json` at the top of each package directory
//! under a `node_modules/`.
//!
//! Where: `…/node_modules/<name>/package.json`, or `…/node_modules/@<scope>/<name>/package.json`
//! for a scoped package. Nested trees (`node_modules/a/node_modules/b/`) and pnpm's store
//! (`node_modules/.pnpm/b@1.0.0/node_modules/b/`) have the same shape. A `package.json`
//! anywhere else inside a package (its test fixtures, or the `{"type": "module"}` markers
//! of `dist/esm/`) is not an installed package, and neither are directories named like
//! no package can be (`.bin`, `.cache`, `_tmp`, a scope without a name).
//!
//! What: a JSON object. `name` and `version` are required strings: a manifest without
//! either (or with either empty) is not a package and yields `Ok(None)`; one of another
//! type makes the file unreadable. The licence is `license`, an SPDX expression string,
//! or in old packages an object `{"type": "MIT"}`, or the older still `licenses` list of
//! such objects (several are alternatives, joined with ` OR `).
//!
//! The name is the manifest's, not the directory's, and they need not agree: an aliased
//! dependency (`"foo": "npm:bar@1.0.0"`) is installed as `node_modules/foo/` with the
//! manifest of `bar`, and it is `bar`'s advisories that apply to it.
//!
//! Caps: `name` is at most [`MAX_NAME_LEN`] bytes (npm's own limit) and `version` at
//! most [`MAX_VALUE_LEN`]; longer ones make the file unreadable. A longer licence is left
//! out. The file's size is capped by the caller, and `serde_json` limits nesting to 128
//! levels.

use serde_json::{Map, Value};

use crate::scan::package::{InventoryError, Package, PackageKind};

/// The longest package name npm accepts, in bytes.
pub const MAX_NAME_LEN: usize = 214;

/// The longest version or licence read, in bytes.
pub const MAX_VALUE_LEN: usize = 1024;

const FORMAT: &str = "npm package.json";

/// Whether `path` is the manifest at the top of an installed package.
pub fn is_package_json_path(path: &str) -> bool {
    let Some(dir) = path.strip_suffix("package.json") else {
        return false;
    };
    // Components from the package directory up: `name`, then `node_modules` or a scope.
    let mut up = dir.strip_suffix('/').unwrap_or(dir).rsplit('/');
    let name = up.next().unwrap_or_default();
    let can_be_name = |part: &str| !part.is_empty() && !part.starts_with(['.', '_', '@']);
    if !dir.ends_with('/') || !can_be_name(name) {
        return false;
    }
    match up.next() {
        Some("node_modules") => true,
        Some(scope) if scope.starts_with('@') => {
            can_be_name(scope.get(1..).unwrap_or_default()) && up.next() == Some("node_modules")
        }
        _ => false,
    }
}

/// Parses a `package.json` found at `path`; `None` when `path` is not an installed
/// package's manifest (see [`is_package_json_path`]) or the manifest lacks a name or
/// version.
pub fn parse_package_json(data: &[u8], path: &str) -> Result<Option<Package>, InventoryError> {
    if !is_package_json_path(path) {
        return Ok(None);
    }
    let error = |reason: String| InventoryError::new(FORMAT, format!("{path}: {reason}"));
    let manifest: Value = serde_json::from_slice(data).map_err(|e| error(e.to_string()))?;
    let Value::Object(manifest) = manifest else {
        return Err(error("not a JSON object".to_owned()));
    };
    let name = text_field(&manifest, "name", MAX_NAME_LEN).map_err(error)?;
    let version = text_field(&manifest, "version", MAX_VALUE_LEN).map_err(error)?;
    let (Some(name), Some(version)) = (name, version) else {
        return Ok(None);
    };
    let license = licence(&manifest);
    Ok(Some(Package {
        kind: PackageKind::Npm,
        name: name.to_owned(),
        version: version.to_owned(),
        source: None,
        arch: None,
        license,
        path: path.to_owned(),
    }))
}

/// The string field `key`; `None` when absent or empty.
fn text_field<'a>(
    manifest: &'a Map<String, Value>,
    key: &str,
    max_len: usize,
) -> Result<Option<&'a str>, String> {
    match manifest.get(key) {
        None => Ok(None),
        Some(Value::String(text)) if text.len() > max_len => {
            Err(format!("`{key}` is longer than {max_len} bytes"))
        }
        Some(Value::String(text)) => Ok((!text.is_empty()).then_some(text.as_str())),
        Some(_) => Err(format!("`{key}` is not a string")),
    }
}

/// The licence from `license` or, failing that, `licenses`. A value of a shape neither
/// npm nor its predecessors wrote, or one longer than [`MAX_VALUE_LEN`], counts as no
/// licence: it is informational, and not worth the package.
fn licence(manifest: &Map<String, Value>) -> Option<String> {
    let named = |value: &Value| match value {
        Value::String(text) => Some(text.clone()),
        Value::Object(object) => object.get("type")?.as_str().map(str::to_owned),
        _ => None,
    };
    let license = match (manifest.get("license"), manifest.get("licenses")) {
        (Some(license), _) => named(license),
        (None, Some(Value::Array(licenses))) => {
            let names: Vec<String> = licenses.iter().filter_map(named).collect();
            Some(names.join(" OR "))
        }
        (None, _) => None,
    };
    license.filter(|text| !text.is_empty() && text.len() <= MAX_VALUE_LEN)
}
