//! The `Condition` element: operators, their `IfExists` forms and the `ForAnyValue:` /
//! `ForAllValues:` set qualifiers, decided against a request's [`Context`].
//!
//! A block holds operators (all must hold), each over keys (all must hold), each with
//! values: a request value matches if it matches any of them, or, for a negated
//! operator (`StringNotEquals`, `NotIpAddress`, …), none of them. A key the request does
//! not have fails the condition, except under a negated operator or an `IfExists` form
//! (it holds), `ForAllValues:` (it holds) and `Null` (which tests exactly that).

use std::net::IpAddr;
use std::time::SystemTime;

use serde_json::Value;

use super::arn::Arn;
use super::request::Context;
use super::variables::{Variables, substitute};
use super::wildcard;

/// How a value is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    StringIgnoreCase,
    StringLike,
    Numeric(Order),
    Date(Order),
    Bool,
    IpAddress,
    ArnLike,
    Null,
}

/// The comparison of a numeric or date operator: request value against policy value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

/// A set qualifier for multivalued keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Qualifier {
    /// At least one request value satisfies the operator.
    ForAnyValue,
    /// Every request value does (and a missing key satisfies it).
    ForAllValues,
}

/// A condition operator as written, such as `ForAnyValue:StringNotLikeIfExists`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Operator {
    kind: Kind,
    negated: bool,
    if_exists: bool,
    qualifier: Option<Qualifier>,
}

impl Operator {
    fn parse(text: &str) -> Result<Self, String> {
        let (qualifier, rest) = if let Some(rest) = text.strip_prefix("ForAnyValue:") {
            (Some(Qualifier::ForAnyValue), rest)
        } else if let Some(rest) = text.strip_prefix("ForAllValues:") {
            (Some(Qualifier::ForAllValues), rest)
        } else {
            (None, text)
        };
        let (if_exists, name) = match rest.strip_suffix("IfExists") {
            Some(name) if name != "Null" => (true, name),
            _ => (false, rest),
        };
        let (kind, negated) = match name {
            "StringEquals" => (Kind::String, false),
            "StringNotEquals" => (Kind::String, true),
            "StringEqualsIgnoreCase" => (Kind::StringIgnoreCase, false),
            "StringNotEqualsIgnoreCase" => (Kind::StringIgnoreCase, true),
            "StringLike" => (Kind::StringLike, false),
            "StringNotLike" => (Kind::StringLike, true),
            "NumericEquals" => (Kind::Numeric(Order::Equal), false),
            "NumericNotEquals" => (Kind::Numeric(Order::Equal), true),
            "NumericLessThan" => (Kind::Numeric(Order::Less), false),
            "NumericLessThanEquals" => (Kind::Numeric(Order::LessOrEqual), false),
            "NumericGreaterThan" => (Kind::Numeric(Order::Greater), false),
            "NumericGreaterThanEquals" => (Kind::Numeric(Order::GreaterOrEqual), false),
            "DateEquals" => (Kind::Date(Order::Equal), false),
            "DateNotEquals" => (Kind::Date(Order::Equal), true),
            "DateLessThan" => (Kind::Date(Order::Less), false),
            "DateLessThanEquals" => (Kind::Date(Order::LessOrEqual), false),
            "DateGreaterThan" => (Kind::Date(Order::Greater), false),
            "DateGreaterThanEquals" => (Kind::Date(Order::GreaterOrEqual), false),
            "Bool" => (Kind::Bool, false),
            "IpAddress" => (Kind::IpAddress, false),
            "NotIpAddress" => (Kind::IpAddress, true),
            "ArnEquals" | "ArnLike" => (Kind::ArnLike, false),
            "ArnNotEquals" | "ArnNotLike" => (Kind::ArnLike, true),
            "Null" => (Kind::Null, false),
            "BinaryEquals" => {
                return Err(format!(
                    "operator {text:?} is not supported: no registry condition key is binary"
                ));
            }
            _ => return Err(format!("{text:?} is not a condition operator")),
        };
        if kind == Kind::Null && qualifier.is_some() {
            return Err(format!("operator {text:?}: Null takes no set qualifier"));
        }
        Ok(Self {
            kind,
            negated,
            if_exists,
            qualifier,
        })
    }
}

/// One operator over one key with its values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    operator: Operator,
    key: String,
    values: Vec<String>,
}

/// Parses a `Condition` element; an error names the operator or key and the reason.
pub(crate) fn parse_block(block: &Value) -> Result<Vec<Condition>, String> {
    let operators = block.as_object().ok_or("must be an object of operators")?;
    let mut conditions = Vec::new();
    for (name, keys) in operators {
        let operator = Operator::parse(name)?;
        let keys = keys
            .as_object()
            .ok_or_else(|| format!("operator {name:?} must map condition keys to values"))?;
        if keys.is_empty() {
            return Err(format!("operator {name:?} names no condition key"));
        }
        for (key, values) in keys {
            check_key(key)?;
            let values = condition_values(values).ok_or_else(|| {
                format!("{name}: {key:?} must be a string, number, boolean or a list of them")
            })?;
            if values.is_empty() {
                return Err(format!("{name}: {key:?} has no values"));
            }
            for value in &values {
                check_value(operator.kind, value)
                    .map_err(|why| format!("{name}: {key:?}: {why}"))?;
            }
            conditions.push(Condition {
                operator,
                key: key.to_ascii_lowercase(),
                values,
            });
        }
    }
    Ok(conditions)
}

fn check_key(key: &str) -> Result<(), String> {
    match key.split_once(':') {
        Some((prefix, name)) if !prefix.is_empty() && !name.is_empty() => Ok(()),
        _ => Err(format!(
            "{key:?} is not a condition key (service:name, such as aws:SourceIp)"
        )),
    }
}

fn condition_values(value: &Value) -> Option<Vec<String>> {
    let one = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    match value {
        Value::Array(items) => items.iter().map(one).collect(),
        other => one(other).map(|v| vec![v]),
    }
}

/// Checks a policy value against its operator (values holding a policy variable are
/// checked once substituted, when evaluated).
fn check_value(kind: Kind, value: &str) -> Result<(), String> {
    if value.contains("${") {
        return Ok(());
    }
    let ok = match kind {
        Kind::Numeric(_) => parse_number(value).is_some(),
        Kind::Date(_) => parse_date(value).is_some(),
        Kind::Bool | Kind::Null => parse_bool(value).is_some(),
        Kind::IpAddress => Cidr::parse(value).is_some(),
        Kind::ArnLike => Arn::check_pattern(value).is_ok(),
        Kind::String | Kind::StringIgnoreCase | Kind::StringLike => true,
    };
    if ok {
        Ok(())
    } else {
        let what = match kind {
            Kind::Numeric(_) => "a number",
            Kind::Date(_) => "a date (ISO 8601 or seconds since the epoch)",
            Kind::Bool | Kind::Null => "true or false",
            Kind::IpAddress => "an IP address or CIDR block",
            _ => "an ARN",
        };
        Err(format!("{value:?} is not {what}"))
    }
}

fn parse_number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

fn parse_date(text: &str) -> Option<SystemTime> {
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(seconds));
    }
    if let Ok(time) = crate::lifecycle::parse_rfc3339(text) {
        return Some(time);
    }
    // ISO 8601 dates without a time, as IAM also accepts: midnight UTC.
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .and_then(|t| u64::try_from(t.and_utc().timestamp()).ok())
        .map(|s| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s))
}

/// An address block: an address and how many leading bits must match.
#[derive(Debug, Clone, Copy)]
struct Cidr {
    address: IpAddr,
    bits: u32,
}

impl Cidr {
    fn parse(text: &str) -> Option<Self> {
        let (address, bits) = match text.split_once('/') {
            Some((address, bits)) => (address.parse().ok()?, Some(bits.parse::<u32>().ok()?)),
            None => (text.parse().ok()?, None),
        };
        let max = match address {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let bits = bits.unwrap_or(max);
        (bits <= max).then_some(Self { address, bits })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let prefix = |a: u128, b: u128, width: u32| {
            let shift = width - self.bits;
            shift >= width || (a >> shift) == (b >> shift)
        };
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix(u32::from(net).into(), u32::from(ip).into(), 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix(net.into(), ip.into(), 128),
            _ => false,
        }
    }
}

fn compare<T: PartialOrd>(order: Order, request: T, policy: T) -> bool {
    match order {
        Order::Equal => request == policy,
        Order::Less => request < policy,
        Order::LessOrEqual => request <= policy,
        Order::Greater => request > policy,
        Order::GreaterOrEqual => request >= policy,
    }
}

impl Condition {
    /// Whether the condition holds for `context`; policy variables in the values are
    /// substituted from it when `variables` allows.
    pub(crate) fn holds(&self, context: &Context, variables: Variables) -> bool {
        let present = context.get(&self.key).filter(|v| !v.is_empty());
        let op = self.operator;
        if op.kind == Kind::Null {
            // "true": the key must be absent; "false": present.
            return self
                .values
                .iter()
                .any(|v| parse_bool(v) == Some(present.is_none()));
        }
        let Some(request_values) = present else {
            return match op.qualifier {
                Some(Qualifier::ForAllValues) => true,
                Some(Qualifier::ForAnyValue) => false,
                None => op.if_exists || op.negated,
            };
        };
        let policy_values: Vec<String> = self
            .values
            .iter()
            .filter_map(|v| substitute(v, context, variables))
            .collect();
        let satisfies = |request: &String| {
            let any = policy_values
                .iter()
                .any(|policy| matches(op.kind, request, policy));
            any != op.negated
        };
        match op.qualifier {
            Some(Qualifier::ForAllValues) => request_values.iter().all(satisfies),
            _ => request_values.iter().any(satisfies),
        }
    }
}

/// Whether one request value matches one policy value under `kind`.
fn matches(kind: Kind, request: &str, policy: &str) -> bool {
    match kind {
        Kind::String => request == policy,
        Kind::StringIgnoreCase => request.eq_ignore_ascii_case(policy),
        Kind::StringLike => wildcard::matches(policy, request, false),
        Kind::Numeric(order) => match (parse_number(request), parse_number(policy)) {
            (Some(r), Some(p)) => compare(order, r, p),
            _ => false,
        },
        Kind::Date(order) => match (parse_date(request), parse_date(policy)) {
            (Some(r), Some(p)) => compare(order, r, p),
            _ => false,
        },
        Kind::Bool => match (parse_bool(request), parse_bool(policy)) {
            (Some(r), Some(p)) => r == p,
            _ => false,
        },
        Kind::IpAddress => match (request.parse::<IpAddr>(), Cidr::parse(policy)) {
            (Ok(ip), Some(block)) => block.contains(ip),
            _ => false,
        },
        Kind::ArnLike => request.parse::<Arn>().is_ok_and(|arn| arn.like(policy)),
        Kind::Null => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_blocks() {
        let block = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(block.contains("10.1.200.3".parse().unwrap()));
        assert!(!block.contains("10.2.0.1".parse().unwrap()));
        assert!(!block.contains("::1".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(
            Cidr::parse("2001:db8::/32")
                .unwrap()
                .contains("2001:db8::7".parse().unwrap())
        );
        assert!(
            Cidr::parse("192.0.2.7")
                .unwrap()
                .contains("192.0.2.7".parse().unwrap())
        );
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("10.0.0/8").is_none());
    }

    #[test]
    fn operator_names() {
        let op = Operator::parse("ForAllValues:StringNotLikeIfExists").unwrap();
        assert_eq!(op.kind, Kind::StringLike);
        assert!(op.negated && op.if_exists);
        assert_eq!(op.qualifier, Some(Qualifier::ForAllValues));
        assert!(Operator::parse("StringEqualz").is_err());
        assert!(Operator::parse("ForAnyValue:Null").is_err());
        assert!(Operator::parse("BinaryEquals").is_err());
    }
}
