//! S3's XML answers to the composer's requests, read with quick-xml: only the
//! elements the composer uses.

use serde::Deserialize;

use crate::error::{Error, ErrorKind, Result};

#[derive(Deserialize)]
pub(super) struct Started {
    #[serde(rename = "UploadId")]
    pub(super) upload_id: String,
}

#[derive(Deserialize)]
pub(super) struct ListedUploads {
    #[serde(rename = "Upload", default)]
    pub(super) uploads: Vec<ListedUpload>,
}

#[derive(Deserialize)]
pub(super) struct ListedUpload {
    #[serde(rename = "Key")]
    pub(super) key: String,
    #[serde(rename = "UploadId")]
    pub(super) upload_id: String,
}

#[derive(Deserialize)]
pub(super) struct CopyResult {
    #[serde(rename = "ETag")]
    pub(super) etag: String,
}

#[derive(Deserialize, Default)]
pub(super) struct S3Error {
    #[serde(rename = "Code")]
    pub(super) code: Option<String>,
    #[serde(rename = "Message")]
    pub(super) message: Option<String>,
}

pub(super) fn parse<'de, T: Deserialize<'de>>(body: &'de [u8], what: &str) -> Result<T> {
    let text = std::str::from_utf8(body).unwrap_or_default();
    quick_xml::de::from_str(text).map_err(|e| {
        Error::new(
            ErrorKind::Storage,
            format!("S3 answered {what} with XML that does not parse: {e}"),
        )
    })
}

/// The name of the document's first element.
pub(super) fn root_element(xml: &str) -> Option<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) => {
                return Some(String::from_utf8_lossy(e.name().as_ref()).into_owned());
            }
            Ok(Event::Eof) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}
