//! Event formats for receivers written for other registries: ECR's EventBridge events,
//! CloudEvents 1.0 (structured JSON), and Distribution's notification envelope. Pure:
//! an [`EventRecord`] in, a JSON body out.
//!
//! # ECR (EventBridge)
//!
//! `{"version":"0","id":<uuid>,"detail-type":…,"source":"aws.ecr","account":…,
//! "time":<RFC 3339, seconds>,"region":…,"resources":[],"detail":{…}}`, with `id` the
//! event id written as a UUID (stable across deliveries). As ECR sends them:
//!
//! | event | `detail-type` | `detail` |
//! |---|---|---|
//! | manifest pushed, tag set | `ECR Image Action` | `action-type: PUSH`, `result: SUCCESS`, `repository-name`, `image-digest`, `image-tag` when there is one |
//! | tag deleted, manifest deleted | `ECR Image Action` | `action-type: DELETE`, likewise |
//! | image expired | `ECR Image Action` | `action-type: DELETE`, and `lifecycle-rule-priority` (ECR has no event of its own for an expiry, so receivers keyed on DELETE see it) |
//! | image archived, restored | `ECR Image Action` | `action-type: UPDATE_STORAGE_CLASS`, `target-storage-class: ARCHIVE` or `STANDARD` |
//!
//! Other events (blob, repository and policy changes, reclaimed blobs) have no ECR shape:
//! [`Format::render`] gives `None` and a webhook in this format passes them over.
//!
//! # CloudEvents
//!
//! `specversion` `1.0`, `id` the event id, `source` as configured, `type`
//! `dev.wharf.<event type>` (such as `dev.wharf.manifest_pushed`), `subject`
//! `<repository>` or `<repository>:<tag>` or `<repository>@<digest>`, `time`,
//! `datacontenttype` `application/json`, and `data` the event as wharf stores it. Sent
//! as `application/cloudevents+json`. Every event has this shape.
//!
//! # Distribution
//!
//! `{"events":[{"id","timestamp","action","target",…}]}` as `application/vnd.docker.
//! distribution.events.v1+json` (Distribution 2.x): pushes and mounts of manifests and
//! blobs, and deletes of manifests (target: digest and repository), tags (repository and
//! tag) and repositories (repository). Other events have no shape there.

use serde_json::{Map, Value, json};

use super::{Event, EventRecord};
use crate::error::{Error, ErrorKind, Result};
use crate::reference::Tag;

/// A body format for a webhook.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// ECR's EventBridge events.
    #[default]
    Ecr,
    /// CloudEvents 1.0, structured JSON.
    CloudEvents,
    /// Distribution's notification envelope.
    Distribution,
}

impl std::str::FromStr for Format {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self> {
        match text {
            "ecr" => Ok(Self::Ecr),
            "cloudevents" => Ok(Self::CloudEvents),
            "distribution" => Ok(Self::Distribution),
            other => Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("unknown event format {other:?} (ecr, cloudevents or distribution)"),
            )),
        }
    }
}

/// Where events come from, as the formats name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The account ECR events carry.
    pub account: String,
    /// The region ECR events carry.
    pub region: String,
    /// The CloudEvents `source` (a URI reference, such as `https://registry.example`).
    pub source: String,
    /// The registry's host and port, for Distribution's target URLs and source.
    pub host: String,
}

impl Format {
    /// The body's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Ecr => "application/json",
            Self::CloudEvents => "application/cloudevents+json",
            Self::Distribution => "application/vnd.docker.distribution.events.v1+json",
        }
    }

    /// Whether the format has a shape for `event`.
    pub fn carries(self, event: &Event) -> bool {
        match self {
            Self::Ecr => ecr_detail(event).is_some(),
            Self::CloudEvents => true,
            Self::Distribution => distribution_target(event, "").is_some(),
        }
    }

    /// The body for `record`, or `None` where the format has no shape for it.
    pub fn render(self, record: &EventRecord, origin: &Origin) -> Option<Value> {
        match self {
            Self::Ecr => ecr(record, origin),
            Self::CloudEvents => Some(cloud_event(record, origin)),
            Self::Distribution => distribution(record, origin),
        }
    }
}

/// The event id as a UUID: its 32 hex digits grouped 8-4-4-4-12.
fn uuid(record: &EventRecord) -> String {
    let hex = record.id.as_str();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn time(at_ms: u64) -> String {
    crate::lifecycle::format_rfc3339(crate::util::from_millis(at_ms))
}

fn ecr_detail(event: &Event) -> Option<Map<String, Value>> {
    let mut detail = Map::new();
    let (action, tag) = match event {
        Event::ManifestPushed { tag, .. } => ("PUSH", tag.as_ref()),
        Event::TagMoved { tag, .. } => ("PUSH", Some(tag)),
        Event::TagDeleted { tag, .. } => ("DELETE", Some(tag)),
        Event::ManifestDeleted { .. } => ("DELETE", None),
        Event::ImageExpired { rule, .. } => {
            if let Some(rule) = rule {
                detail.insert("lifecycle-rule-priority".into(), json!(rule));
            }
            ("DELETE", None)
        }
        Event::ImageArchived { .. } => {
            detail.insert("target-storage-class".into(), json!("ARCHIVE"));
            ("UPDATE_STORAGE_CLASS", None)
        }
        Event::ImageRestored { .. } => {
            detail.insert("target-storage-class".into(), json!("STANDARD"));
            ("UPDATE_STORAGE_CLASS", None)
        }
        _ => return None,
    };
    detail.insert("result".into(), json!("SUCCESS"));
    detail.insert("repository-name".into(), json!(event.repo()?.as_str()));
    detail.insert("image-digest".into(), json!(event.digest()?.as_str()));
    detail.insert("action-type".into(), json!(action));
    if let Some(tag) = tag {
        detail.insert("image-tag".into(), json!(tag.as_str()));
    }
    Some(detail)
}

/// ECR's "ECR Image Scan" detail, with the repository's ARN as the resource.
fn ecr_scan(record: &EventRecord, origin: &Origin) -> Option<Value> {
    let Event::ImageScanned {
        repo,
        digest,
        status,
        counts,
        tags,
    } = &record.event
    else {
        return None;
    };
    Some(json!({
        "version": "0",
        "id": uuid(record),
        "detail-type": "ECR Image Scan",
        "source": "aws.ecr",
        "account": origin.account,
        "time": time(record.at_ms / 1000 * 1000),
        "region": origin.region,
        "resources": [format!("arn:aws:ecr:{}:{}:repository/{repo}", origin.region, origin.account)],
        "detail": {
            "scan-status": status,
            "repository-name": repo.as_str(),
            "finding-severity-counts": counts,
            "image-digest": digest.as_str(),
            "image-tags": tags.iter().map(Tag::as_str).collect::<Vec<_>>(),
        },
    }))
}

fn ecr(record: &EventRecord, origin: &Origin) -> Option<Value> {
    if matches!(record.event, Event::ImageScanned { .. }) {
        return ecr_scan(record, origin);
    }
    let detail = ecr_detail(&record.event)?;
    Some(json!({
        "version": "0",
        "id": uuid(record),
        "detail-type": "ECR Image Action",
        "source": "aws.ecr",
        "account": origin.account,
        "time": time(record.at_ms / 1000 * 1000),
        "region": origin.region,
        "resources": [],
        "detail": detail,
    }))
}

fn cloud_event(record: &EventRecord, origin: &Origin) -> Value {
    let event = &record.event;
    let subject = match (event.repo(), event.tag(), event.digest()) {
        (Some(repo), Some(tag), _) => format!("{repo}:{tag}"),
        (Some(repo), None, Some(digest)) => format!("{repo}@{digest}"),
        (Some(repo), None, None) => repo.to_string(),
        (None, _, Some(digest)) => digest.to_string(),
        (None, _, None) => String::new(),
    };
    let mut body = json!({
        "specversion": "1.0",
        "id": record.id.as_str(),
        "source": origin.source,
        "type": format!("dev.wharf.{}", event.kind()),
        "time": time(record.at_ms),
        "datacontenttype": "application/json",
        "data": serde_json::to_value(event).unwrap_or(Value::Null),
    });
    if !subject.is_empty() {
        body["subject"] = json!(subject);
    }
    body
}

/// Distribution's action and target for `event`.
fn distribution_target(event: &Event, host: &str) -> Option<(&'static str, Value)> {
    let repo = event.repo()?.as_str();
    let url = |kind: &str, digest: &str| format!("http://{host}/v2/{repo}/{kind}/{digest}");
    Some(match event {
        Event::ManifestPushed {
            digest,
            media_type,
            size,
            tag,
            ..
        } => {
            let mut target = json!({"mediaType": media_type, "digest": digest.as_str(), "size": size,
                "length": size, "repository": repo, "url": url("manifests", digest.as_str())});
            if let Some(tag) = tag {
                target["tag"] = json!(tag.as_str());
            }
            ("push", target)
        }
        Event::TagMoved { tag, to, .. } => (
            "push",
            json!({"digest": to.as_str(), "repository": repo, "tag": tag.as_str(),
                "url": url("manifests", to.as_str())}),
        ),
        Event::BlobPushed {
            digest,
            size,
            mounted_from,
            ..
        } => {
            let mut target = json!({"mediaType": "application/octet-stream", "digest": digest.as_str(),
                "size": size, "length": size, "repository": repo, "url": url("blobs", digest.as_str())});
            match mounted_from {
                Some(from) => {
                    target["fromRepository"] = json!(from.as_str());
                    ("mount", target)
                }
                None => ("push", target),
            }
        }
        Event::ManifestDeleted { digest, .. } | Event::ImageExpired { digest, .. } => (
            "delete",
            json!({"digest": digest.as_str(), "repository": repo}),
        ),
        Event::TagDeleted { tag, .. } => {
            ("delete", json!({"repository": repo, "tag": tag.as_str()}))
        }
        Event::RepositoryDeleted { .. } => ("delete", json!({"repository": repo})),
        _ => return None,
    })
}

fn distribution(record: &EventRecord, origin: &Origin) -> Option<Value> {
    let (action, target) = distribution_target(&record.event, &origin.host)?;
    Some(json!({"events": [{
        "id": uuid(record),
        "timestamp": time(record.at_ms),
        "action": action,
        "target": target,
        "source": {"addr": origin.host},
    }]}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventId;

    fn origin() -> Origin {
        Origin {
            account: "123456789012".into(),
            region: "eu-west-1".into(),
            source: "https://registry.example".into(),
            host: "registry.example:5000".into(),
        }
    }

    fn record(event: Event) -> EventRecord {
        EventRecord {
            id: EventId::new(7, 0x0123_4567_89ab_cdef),
            at_ms: 1_700_000_000_250,
            event,
        }
    }

    const DIGEST: &str = "sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd12345678";

    fn pushed() -> Event {
        Event::ManifestPushed {
            repo: "team/app".parse().unwrap(),
            digest: DIGEST.parse().unwrap(),
            media_type: crate::manifest::OCI_IMAGE_MANIFEST.into(),
            size: 528,
            tag: Some("latest".parse().unwrap()),
            previous: None,
        }
    }

    #[test]
    fn a_push_as_ecr_sends_it() {
        let body = Format::Ecr.render(&record(pushed()), &origin()).unwrap();
        let expected = json!({
            "version": "0",
            "id": "00000000-0000-0007-0123-456789abcdef",
            "detail-type": "ECR Image Action",
            "source": "aws.ecr",
            "account": "123456789012",
            "time": "2023-11-14T22:13:20Z",
            "region": "eu-west-1",
            "resources": [],
            "detail": {"result": "SUCCESS", "repository-name": "team/app",
                "image-digest": DIGEST, "action-type": "PUSH", "image-tag": "latest"},
        });
        assert_eq!(body, expected);
        let expired = Event::ImageExpired {
            repo: "team/app".parse().unwrap(),
            digest: DIGEST.parse().unwrap(),
            rule: Some(3),
        };
        let body = Format::Ecr.render(&record(expired), &origin()).unwrap();
        assert_eq!(body["detail"]["action-type"], "DELETE");
        assert_eq!(body["detail"]["lifecycle-rule-priority"], 3);
        let reclaimed = Event::BlobReclaimed {
            digest: DIGEST.parse().unwrap(),
            size: 1,
        };
        assert!(Format::Ecr.render(&record(reclaimed), &origin()).is_none());
    }

    #[test]
    fn a_push_as_a_cloud_event() {
        let body = Format::CloudEvents
            .render(&record(pushed()), &origin())
            .unwrap();
        assert_eq!(body["specversion"], "1.0");
        assert_eq!(body["id"], "00000000000000070123456789abcdef");
        assert_eq!(body["source"], "https://registry.example");
        assert_eq!(body["type"], "dev.wharf.manifest_pushed");
        assert_eq!(body["subject"], "team/app:latest");
        assert_eq!(body["time"], "2023-11-14T22:13:20.250Z");
        assert_eq!(body["data"]["digest"], DIGEST);
        let back: Event = serde_json::from_value(body["data"].clone()).unwrap();
        assert_eq!(back, pushed());
    }

    #[test]
    fn a_push_and_a_tag_delete_as_distribution_sends_them() {
        let body = Format::Distribution
            .render(&record(pushed()), &origin())
            .unwrap();
        let event = &body["events"][0];
        assert_eq!(event["action"], "push");
        assert_eq!(
            event["target"],
            json!({"mediaType": crate::manifest::OCI_IMAGE_MANIFEST, "digest": DIGEST, "size": 528,
                "length": 528, "repository": "team/app", "tag": "latest",
                "url": format!("http://registry.example:5000/v2/team/app/manifests/{DIGEST}")})
        );
        let deleted = Event::TagDeleted {
            repo: "team/app".parse().unwrap(),
            tag: "latest".parse().unwrap(),
            digest: DIGEST.parse().unwrap(),
            rule: None,
        };
        let body = Format::Distribution
            .render(&record(deleted), &origin())
            .unwrap();
        assert_eq!(
            body["events"][0]["target"],
            json!({"repository": "team/app", "tag": "latest"})
        );
    }
}
