//! SQL `LIKE` / `ILIKE` patterns, compiled once into tokens and matched
//! over characters (not bytes), so `_` is one character.

use crate::value::Res;

/// One element of a compiled LIKE pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    /// A literal character (already lowercased for ILIKE).
    Char(char),
    /// `_`: exactly one character.
    One,
    /// `%`: any run of characters, including none.
    Many,
}

/// A compiled LIKE pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LikePattern {
    tokens: Vec<Token>,
    case_insensitive: bool,
}

impl LikePattern {
    /// Compiles `pattern`; `escape` makes the next character literal.
    /// PostgreSQL's default escape is backslash; `ESCAPE ''` passes `None`.
    pub(crate) fn new(pattern: &str, escape: Option<char>, case_insensitive: bool) -> Res<Self> {
        let mut tokens = Vec::with_capacity(pattern.len());
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            let token = if Some(c) == escape {
                match chars.next() {
                    Some(lit) => Token::Char(lit),
                    None => {
                        return Err("LIKE pattern must not end with the escape character".into());
                    }
                }
            } else if c == '%' {
                Token::Many
            } else if c == '_' {
                Token::One
            } else {
                Token::Char(c)
            };
            match token {
                // Runs of % are equivalent to one and only cost backtracking.
                Token::Many if tokens.last() == Some(&Token::Many) => {}
                Token::Char(c) if case_insensitive => {
                    tokens.extend(c.to_lowercase().map(Token::Char));
                }
                t => tokens.push(t),
            }
        }
        Ok(LikePattern {
            tokens,
            case_insensitive,
        })
    }

    /// Whether the whole of `text` matches the pattern.
    pub(crate) fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = if self.case_insensitive {
            text.chars().flat_map(char::to_lowercase).collect()
        } else {
            text.chars().collect()
        };
        let p = &self.tokens;
        let (mut ti, mut pi) = (0, 0);
        // Where to resume after the last `%`: pattern index after it, and
        // how much text that `%` has swallowed so far.
        let mut resume: Option<(usize, usize)> = None;
        while ti < text.len() {
            match p.get(pi) {
                Some(Token::Char(c)) if *c == text[ti] => {
                    ti += 1;
                    pi += 1;
                }
                Some(Token::One) => {
                    ti += 1;
                    pi += 1;
                }
                Some(Token::Many) => {
                    pi += 1;
                    resume = Some((pi, ti));
                }
                _ => match resume {
                    // A later `%` never needs an earlier one to take more,
                    // so retrying from the last one is enough.
                    Some((rp, rt)) => {
                        pi = rp;
                        ti = rt + 1;
                        resume = Some((rp, rt + 1));
                    }
                    None => return false,
                },
            }
        }
        p[pi..].iter().all(|t| *t == Token::Many)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn like(text: &str, pattern: &str) -> bool {
        LikePattern::new(pattern, Some('\\'), false)
            .expect("valid pattern")
            .matches(text)
    }

    #[test]
    fn wildcards() {
        assert!(like("hello", "h%o"));
        assert!(like("hello", "_ello"));
        assert!(!like("hello", "_llo"));
        assert!(like("", "%"));
        assert!(!like("", "_"));
        assert!(like("abcabc", "%abc"));
        assert!(like("héllo", "h_llo"));
        assert!(like("a%b", "a\\%b"));
        assert!(!like("axb", "a\\%b"));
    }

    #[test]
    fn escape_at_end_is_an_error() {
        assert!(LikePattern::new("ab\\", Some('\\'), false).is_err());
        assert!(LikePattern::new("ab\\", None, false).is_ok());
    }

    #[test]
    fn case_insensitive() {
        let p = LikePattern::new("HE%", None, true).expect("valid pattern");
        assert!(p.matches("hello"));
        assert!(p.matches("HELLO"));
    }
}
