//! `WWW-Authenticate` challenges: which scheme a registry asks for, and for `Bearer`
//! where to get a token (RFC 7235's `auth-param` list, quoted values may hold commas).

/// How the remote wants requests authenticated, once it has said.
#[derive(Debug, Clone)]
pub(super) enum Scheme {
    None,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// The scheme a `WWW-Authenticate` value asks for.
pub(super) fn parse_challenge(value: &str) -> Option<Scheme> {
    let (scheme, params) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Scheme::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut realm = None;
    let mut service = None;
    for (key, value) in challenge_params(params) {
        match key.to_ascii_lowercase().as_str() {
            "realm" => realm = Some(value),
            "service" => service = Some(value),
            _ => {}
        }
    }
    Some(Scheme::Bearer {
        realm: realm?,
        service,
    })
}

/// `key="value", key=value` pairs of a challenge; quoted values may hold commas.
fn challenge_params(params: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut rest = params.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key.trim().trim_start_matches(',').trim().to_owned();
        let (value, remainder) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (quoted[..end].to_owned(), &quoted[end + 1..]),
                None => (quoted.to_owned(), ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (after[..end].trim().to_owned(), &after[end..]),
                None => (after.trim().to_owned(), ""),
            }
        };
        pairs.push((key, value));
        rest = remainder.trim().trim_start_matches(',').trim();
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_read() {
        let bearer = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        let Some(Scheme::Bearer { realm, service }) = bearer else {
            panic!("{bearer:?}");
        };
        assert_eq!(realm, "https://auth.example/token");
        assert_eq!(service.as_deref(), Some("registry.example"));
        assert!(matches!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Scheme::Basic)
        ));
        assert!(parse_challenge("Negotiate").is_none());
        assert!(
            parse_challenge("Bearer service=x").is_none(),
            "a realm is required"
        );
    }
}
