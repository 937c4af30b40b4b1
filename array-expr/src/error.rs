//! The one error type, with the span it is about and a caret rendering.

/// An error with the byte span it is about.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("at column {column}: {message}")]
pub struct ExprError {
    /// Byte range in the source that the error is about.
    pub span: (usize, usize),
    /// What is wrong and what was expected.
    pub message: String,
    /// 1-based character column of `span.0` within its line.
    pub column: usize,
}

impl ExprError {
    /// Builds an error about `span` of `source`, computing the column there because `Display` has no source.
    pub fn new(source: &str, span: (usize, usize), message: impl Into<String>) -> Self {
        let start = floor_boundary(source, span.0);
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        ExprError {
            span,
            message: message.into(),
            column: source[line_start..start].chars().count() + 1,
        }
    }

    /// The message, then the source line, then a caret line under the span.
    pub fn render(&self, source: &str) -> String {
        let start = floor_boundary(source, self.span.0);
        let end = floor_boundary(source, self.span.1.max(start));
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[start..]
            .find('\n')
            .map_or(source.len(), |i| start + i);
        let line = source[line_start..line_end].trim_end_matches('\r');
        // Tabs are copied so the carets line up however the terminal expands them.
        let pad: String = source[line_start..start]
            .chars()
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let width = source[start..end.min(line_end).max(start)]
            .chars()
            .count()
            .max(1);
        format!("{self}\n  {line}\n  {pad}{}", "^".repeat(width))
    }
}

/// Clamps `pos` into `source` and back onto a character boundary, so a span from another source cannot panic.
fn floor_boundary(source: &str, pos: usize) -> usize {
    let mut pos = pos.min(source.len());
    while !source.is_char_boundary(pos) {
        pos -= 1;
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_counts_characters_not_bytes() {
        let src = "é + c";
        let e = ExprError::new(src, (5, 6), "bad");
        assert_eq!(e.column, 5);
        assert_eq!(e.to_string(), "at column 5: bad");
        assert_eq!(e.render(src), "at column 5: bad\n  é + c\n      ^");
    }

    #[test]
    fn render_uses_the_line_of_the_span() {
        let src = "(a +\n\tb)";
        let e = ExprError::new(src, (6, 7), "here");
        assert_eq!(e.column, 2);
        assert_eq!(e.render(src), "at column 2: here\n  \tb)\n  \t^");
    }

    #[test]
    fn span_at_end_and_foreign_source_do_not_panic() {
        let e = ExprError::new("ab", (2, 2), "end");
        assert_eq!(e.render("ab"), "at column 3: end\n  ab\n    ^");
        assert_eq!(e.render("é"), "at column 3: end\n  é\n   ^");
    }
}
