//! IAM wildcards: `*` matches any run of characters (also none), `?` exactly one.

/// Whether `text` matches `pattern`, comparing characters exactly or, with
/// `ignore_case`, ASCII case-insensitively (action names).
///
/// Linear in the text for each `*` (the classic two-pointer walk with one backtrack
/// point), so a hostile pattern cannot make a check take long.
pub(crate) fn matches(pattern: &str, text: &str, ignore_case: bool) -> bool {
    if !pattern.contains(['*', '?']) {
        return if ignore_case {
            pattern.eq_ignore_ascii_case(text)
        } else {
            pattern == text
        };
    }
    if pattern.is_ascii() && text.is_ascii() {
        return walk(pattern.as_bytes(), text.as_bytes(), ignore_case);
    }
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    walk(&pattern, &text, ignore_case)
}

/// A character of a pattern or text: bytes for ASCII (no allocation), else `char`s.
trait Unit: Copy + PartialEq {
    fn is(self, c: u8) -> bool;
    fn same_ignoring_case(self, other: Self) -> bool;
}

impl Unit for u8 {
    fn is(self, c: u8) -> bool {
        self == c
    }
    fn same_ignoring_case(self, other: Self) -> bool {
        self.eq_ignore_ascii_case(&other)
    }
}

impl Unit for char {
    fn is(self, c: u8) -> bool {
        self == char::from(c)
    }
    fn same_ignoring_case(self, other: Self) -> bool {
        self.eq_ignore_ascii_case(&other)
    }
}

fn walk<T: Unit>(pattern: &[T], text: &[T], ignore_case: bool) -> bool {
    let same = |a: T, b: T| {
        if ignore_case {
            a.same_ignoring_case(b)
        } else {
            a == b
        }
    };
    let (mut p, mut t) = (0, 0);
    // After the last `*` seen: where in the pattern it was, and where in the text its
    // run would end if it matched one more character.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len()
            && (pattern[p].is(b'?') || (!pattern[p].is(b'*') && same(pattern[p], text[t])))
        {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p].is(b'*') {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c.is(b'*'))
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn stars_and_question_marks() {
        for (pattern, text, want) in [
            ("*", "", true),
            ("*", "anything", true),
            ("ecr:*", "ecr:BatchGetImage", true),
            ("ecr:Get*", "ecr:GetDownloadUrlForLayer", true),
            ("ecr:Get*", "ecr:PutImage", false),
            ("ecr:?utImage", "ecr:PutImage", true),
            ("ecr:?utImage", "ecr:utImage", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("*a", "bbba", true),
            ("", "", true),
            ("", "x", false),
            ("abc", "abc", true),
            ("abc", "abcd", false),
        ] {
            assert_eq!(matches(pattern, text, false), want, "{pattern} ~ {text}");
        }
    }

    #[test]
    fn case_only_when_asked() {
        assert!(matches("ECR:batchgetimage", "ecr:BatchGetImage", true));
        assert!(!matches("ECR:batchgetimage", "ecr:BatchGetImage", false));
    }

    #[test]
    fn hostile_patterns_stay_fast() {
        let text = "a".repeat(10_000);
        let pattern = format!("{}b", "*a".repeat(500));
        assert!(!matches(&pattern, &text, false));
    }
}
