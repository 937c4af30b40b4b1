//! Python tokens, each with its byte span.

use crate::error::ExprError;

/// A byte range `(start, end)` in the source.
pub(crate) type Span = (usize, usize);

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    Name(String),
    Int(i128),
    Float(f64),
    Keyword(&'static str),
    Punct(&'static str),
    End,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) span: Span,
}

/// Longest first, so that "**" is never read as two "*".
const PUNCTS: &[&str] = &[
    "...", "**", "//", "<<", ">>", "<=", ">=", "==", "!=", "(", ")", "[", "]", ",", ":", ".", "=",
    "+", "-", "*", "/", "%", "@", "~", "&", "|", "^", "<", ">",
];

/// Python's reserved words: they can never be input names, so they are recognized here.
const KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield",
];

pub(crate) fn lex(src: &str) -> Result<Vec<Token>, ExprError> {
    let mut lexer = Lexer {
        src,
        pos: 0,
        depth: 0,
        tokens: Vec::new(),
    };
    lexer.run()?;
    Ok(lexer.tokens)
}

struct Lexer<'s> {
    src: &'s str,
    pos: usize,
    /// Bracket depth: Python joins lines only inside brackets.
    depth: usize,
    tokens: Vec<Token>,
}

impl Lexer<'_> {
    fn err(&self, span: Span, message: impl Into<String>) -> ExprError {
        ExprError::new(self.src, span, message)
    }

    fn char_at(&self, pos: usize) -> Option<char> {
        self.src.get(pos..).and_then(|s| s.chars().next())
    }

    fn byte(&self, pos: usize) -> Option<u8> {
        self.src.as_bytes().get(pos).copied()
    }

    fn push(&mut self, tok: Tok, start: usize, end: usize) {
        self.tokens.push(Token {
            tok,
            span: (start, end),
        });
        self.pos = end;
    }

    fn run(&mut self) -> Result<(), ExprError> {
        while let Some(c) = self.char_at(self.pos) {
            let start = self.pos;
            match c {
                ' ' | '\t' | '\x0c' => self.pos += 1,
                '\n' | '\r' => self.line_break()?,
                '#' => {
                    self.pos = self.src[start..]
                        .find('\n')
                        .map_or(self.src.len(), |n| start + n);
                }
                '\\' => {
                    let after = &self.src[start + 1..];
                    let skip = if after.starts_with("\r\n") {
                        3
                    } else if after.starts_with('\n') {
                        2
                    } else {
                        return Err(self.err((start, start + 1), "unexpected character \"\\\""));
                    };
                    self.pos += skip;
                }
                '"' | '\'' => {
                    return Err(self.err(
                        (start, start + 1),
                        "strings are not supported in array expressions",
                    ));
                }
                _ if c.is_ascii_digit()
                    || (c == '.' && self.byte(start + 1).is_some_and(|b| b.is_ascii_digit())) =>
                {
                    self.number()?;
                }
                _ if c.is_alphabetic() || c == '_' => self.word(),
                _ => self.punct(c)?,
            }
        }
        let end = self.src.len();
        self.tokens.push(Token {
            tok: Tok::End,
            span: (end, end),
        });
        Ok(())
    }

    fn line_break(&mut self) -> Result<(), ExprError> {
        let start = self.pos;
        let rest_blank = self.src[start..].lines().all(|line| {
            let t = line.trim_start();
            t.is_empty() || t.starts_with('#')
        });
        if self.depth == 0 && !rest_blank && !self.tokens.is_empty() {
            return Err(self.err(
                (start, start + 1),
                "a line break outside brackets ends a Python expression; \
                 wrap the expression in parentheses to continue it on the next line",
            ));
        }
        self.pos += 1;
        Ok(())
    }

    fn word(&mut self) {
        let start = self.pos;
        let len = self.src[start..]
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(self.src.len() - start);
        let word = &self.src[start..start + len];
        let tok = match KEYWORDS.iter().find(|k| **k == word) {
            Some(k) => Tok::Keyword(k),
            None => Tok::Name(word.to_string()),
        };
        self.push(tok, start, start + len);
    }

    fn punct(&mut self, c: char) -> Result<(), ExprError> {
        let start = self.pos;
        let Some(p) = PUNCTS.iter().find(|p| self.src[start..].starts_with(**p)) else {
            let end = start + c.len_utf8();
            let message = match c {
                '!' => "unexpected character \"!\"; use ~ for logical not, or != to compare"
                    .to_string(),
                '{' | '}' => "sets and dicts are not supported in array expressions".to_string(),
                _ => format!("unexpected character \"{c}\""),
            };
            return Err(self.err((start, end), message));
        };
        match *p {
            "(" | "[" => self.depth += 1,
            ")" | "]" => self.depth = self.depth.saturating_sub(1),
            _ => {}
        }
        self.push(Tok::Punct(p), start, start + p.len());
        Ok(())
    }

    /// Python's numeric literal grammar: decimal, 0x/0o/0b ints, floats with optional parts, `_` between digits.
    fn number(&mut self) -> Result<(), ExprError> {
        let start = self.pos;
        let radix = match (self.byte(start), self.byte(start + 1)) {
            (Some(b'0'), Some(b'x' | b'X')) => Some((16, "hexadecimal")),
            (Some(b'0'), Some(b'o' | b'O')) => Some((8, "octal")),
            (Some(b'0'), Some(b'b' | b'B')) => Some((2, "binary")),
            _ => None,
        };
        if let Some((radix, what)) = radix {
            return self.radix_int(radix, what);
        }
        let mut text = String::new();
        let mut pos = self.digits(start, &mut text)?;
        let mut is_float = false;
        if self.byte(pos) == Some(b'.') {
            is_float = true;
            text.push('.');
            pos = self.digits(pos + 1, &mut text)?;
        }
        if matches!(self.byte(pos), Some(b'e' | b'E')) {
            let sign = self.byte(pos + 1).filter(|b| matches!(b, b'+' | b'-'));
            let digits_at = pos + 1 + usize::from(sign.is_some());
            // Without digits the 'e' is a name glued to the number, rejected below as Python does.
            if self.byte(digits_at).is_some_and(|b| b.is_ascii_digit()) {
                is_float = true;
                text.push('e');
                text.extend(sign.map(char::from));
                pos = self.digits(digits_at, &mut text)?;
            }
        }
        if matches!(self.byte(pos), Some(b'j' | b'J')) {
            return Err(self.err(
                (start, pos + 1),
                "complex numbers are not supported in array expressions",
            ));
        }
        if let Some(c) = self
            .char_at(pos)
            .filter(|c| c.is_alphanumeric() || *c == '_')
        {
            return Err(self.err((start, pos + c.len_utf8()), "invalid decimal literal"));
        }
        let tok = if is_float {
            // Rust's parser wants digits on both sides of the point; Python does not.
            let mut normal = text.replace(".e", ".0e");
            if normal.starts_with('.') {
                normal.insert(0, '0');
            }
            if normal.ends_with('.') {
                normal.push('0');
            }
            let value = normal
                .parse::<f64>()
                .map_err(|_| self.err((start, pos), "invalid float literal"))?;
            Tok::Float(value)
        } else {
            if text.len() > 1 && text.starts_with('0') && text.bytes().any(|b| b != b'0') {
                return Err(self.err(
                    (start, pos),
                    "leading zeros in decimal integer literals are not permitted; \
                     use an 0o prefix for octal integers",
                ));
            }
            let value = text.parse::<i128>().map_err(|_| {
                self.err((start, pos), format!("integer literal {text} is too large"))
            })?;
            Tok::Int(value)
        };
        self.push(tok, start, pos);
        Ok(())
    }

    /// Decimal digits from `pos`, with single underscores allowed between digits.
    fn digits(&self, mut pos: usize, text: &mut String) -> Result<usize, ExprError> {
        let begin = pos;
        loop {
            match self.byte(pos) {
                Some(b) if b.is_ascii_digit() => {
                    text.push(char::from(b));
                    pos += 1;
                }
                Some(b'_')
                    if pos > begin && self.byte(pos + 1).is_some_and(|b| b.is_ascii_digit()) =>
                {
                    pos += 1;
                }
                Some(b'_') => {
                    return Err(self.err((self.pos, pos + 1), "invalid decimal literal"));
                }
                _ => return Ok(pos),
            }
        }
    }

    fn radix_int(&mut self, radix: u32, what: &str) -> Result<(), ExprError> {
        let start = self.pos;
        let mut pos = start + 2;
        let mut digits = String::new();
        let is_digit = |b: Option<u8>| b.is_some_and(|b| char::from(b).is_digit(radix));
        loop {
            match self.byte(pos) {
                Some(b'_') if is_digit(self.byte(pos + 1)) => pos += 1,
                Some(b) if is_digit(Some(b)) => {
                    digits.push(char::from(b));
                    pos += 1;
                }
                _ => break,
            }
        }
        let glued = self
            .char_at(pos)
            .filter(|c| c.is_alphanumeric() || *c == '_');
        if digits.is_empty() || glued.is_some() {
            let end = pos + glued.map_or(0, char::len_utf8);
            return Err(self.err((start, end), format!("invalid {what} literal")));
        }
        let value = i128::from_str_radix(&digits, radix).map_err(|_| {
            self.err(
                (start, pos),
                format!("integer literal {} is too large", &self.src[start..pos]),
            )
        })?;
        self.push(Tok::Int(value), start, pos);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        lex(src)
            .expect("source is valid")
            .into_iter()
            .map(|t| t.tok)
            .collect()
    }

    fn lex_err(src: &str) -> String {
        lex(src).expect_err("source is invalid").message
    }

    #[test]
    fn python_number_forms() {
        assert_eq!(
            toks("3 1_000 0x_1f 0o17 0b101 00"),
            [3, 1000, 31, 15, 5, 0]
                .into_iter()
                .map(Tok::Int)
                .chain([Tok::End])
                .collect::<Vec<_>>()
        );
        assert_eq!(
            toks("1.5 .5 2. 1e-3 1.e2 1_0.2_5E+1_0"),
            [1.5, 0.5, 2.0, 1e-3, 1e2, 10.25e10]
                .into_iter()
                .map(Tok::Float)
                .chain([Tok::End])
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn bad_numbers() {
        assert_eq!(lex_err("1__0"), "invalid decimal literal");
        assert_eq!(lex_err("1_"), "invalid decimal literal");
        assert_eq!(lex_err("1e"), "invalid decimal literal");
        assert_eq!(lex_err("1.T"), "invalid decimal literal");
        assert_eq!(lex_err("0x"), "invalid hexadecimal literal");
        assert!(lex_err("012").starts_with("leading zeros"));
        assert!(lex_err("2j").starts_with("complex numbers"));
        assert!(lex_err("1000000000000000000000000000000000000000000").contains("too large"));
    }

    #[test]
    fn spans_keywords_and_longest_operators() {
        let tokens = lex("a**-b // c").expect("valid");
        let spans: Vec<_> = tokens.iter().map(|t| t.span).collect();
        assert_eq!(
            spans,
            [(0, 1), (1, 3), (3, 4), (4, 5), (6, 8), (9, 10), (10, 10)]
        );
        assert_eq!(
            toks("not True x_1 é"),
            [
                Tok::Keyword("not"),
                Tok::Keyword("True"),
                Tok::Name("x_1".into()),
                Tok::Name("é".into()),
                Tok::End
            ]
        );
    }

    #[test]
    fn lines_comments_and_strange_characters() {
        assert_eq!(toks("(a +\n b)  # sum").len(), 6);
        assert_eq!(toks("a + \\\n b\n").len(), 4);
        assert!(lex_err("a +\n b").starts_with("a line break outside brackets"));
        assert!(lex_err("'x'").starts_with("strings are not supported"));
        assert!(lex_err("!a").contains("use ~"));
        assert_eq!(lex_err("a $ b"), "unexpected character \"$\"");
    }
}
