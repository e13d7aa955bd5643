//! Policy variables: `${aws:username}` in a `Resource` or a condition value stands for
//! the request's value of that key, `${key, 'default'}` with a fallback. Only documents
//! of version `2012-10-17` have them; in `2008-10-17` the text is literal.

use super::request::Context;

/// Whether a document's version gives it policy variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Variables {
    /// `2012-10-17`.
    Substituted,
    /// `2008-10-17`: `${…}` is literal text.
    Literal,
}

/// `text` with its variables replaced from `context`; `None` when one names a key the
/// request lacks (or holds several values for) and has no default: the element then
/// matches nothing.
pub(crate) fn substitute(text: &str, context: &Context, variables: Variables) -> Option<String> {
    if variables == Variables::Literal || !text.contains("${") {
        return Some(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}')?;
        out.push_str(&resolve(&after[..end], context)?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

fn resolve(inner: &str, context: &Context) -> Option<String> {
    match inner {
        "*" => return Some("*".to_owned()),
        "?" => return Some("?".to_owned()),
        "$" => return Some("$".to_owned()),
        _ => {}
    }
    let (key, default) = match inner.split_once(',') {
        Some((key, default)) => {
            let default = default.trim();
            let quoted = default
                .strip_prefix('\'')
                .and_then(|d| d.strip_suffix('\''))?;
            (key.trim(), Some(quoted))
        }
        None => (inner.trim(), None),
    };
    match context.get(key) {
        Some([one]) => Some(one.clone()),
        _ => default.map(str::to_owned),
    }
}

/// Checks the variables of `text` are well formed (`${` closed by `}`).
pub(crate) fn check(text: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!(
                "{text:?} opens a policy variable that never closes"
            ));
        };
        let inner = &after[..end];
        if inner.trim().is_empty() {
            return Err(format!("{text:?} holds an empty policy variable"));
        }
        if let Some((_, default)) = inner.split_once(',') {
            let default = default.trim();
            if !(default.len() >= 2 && default.starts_with('\'') && default.ends_with('\'')) {
                return Err(format!(
                    "{text:?}: a variable's default must be quoted: ${{key, 'default'}}"
                ));
            }
        }
        rest = &after[end + 1..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution() {
        let mut context = Context::default();
        context.set("aws:username", "alice");
        let s = |t| substitute(t, &context, Variables::Substituted);
        assert_eq!(
            s("repository/${aws:username}/*").unwrap(),
            "repository/alice/*"
        );
        assert_eq!(s("${AWS:UserName}").unwrap(), "alice");
        assert_eq!(s("${aws:PrincipalTag/team, 'none'}").unwrap(), "none");
        assert_eq!(s("${aws:PrincipalTag/team}"), None);
        assert_eq!(s("a${$}b").unwrap(), "a$b");
        assert_eq!(
            substitute("${aws:username}", &context, Variables::Literal).unwrap(),
            "${aws:username}"
        );
        assert!(check("${aws:username").is_err());
        assert!(check("${}").is_err());
        assert!(check("${aws:x, none}").is_err());
        assert!(check("${aws:x, 'none'}").is_ok());
    }
}
