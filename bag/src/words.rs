//! Cutting text into words as Python's `str.split()` does: runs of whitespace separate words
//! and empty words are dropped. Python's whitespace is Unicode's White_Space (Rust's
//! `char::is_whitespace`) plus the information separators \x1c-\x1f.
//!
//! This is the word count's inner loop, so ASCII is classified byte by byte from a table and
//! only the rare non-ASCII character is decoded.

/// ASCII whitespace in Python's sense: \t \n \v \f \r, \x1c-\x1f and the space.
const ASCII_SPACE: [bool; 128] = {
    let mut t = [false; 128];
    let mut b = 0;
    while b < 128 {
        t[b] = matches!(b, 0x09..=0x0d | 0x1c..=0x1f | 0x20);
        b += 1;
    }
    t
};

/// Whether the character at byte `i` of `text` (a character boundary) is whitespace, and its
/// length in bytes.
#[inline]
fn at(text: &str, i: usize) -> (bool, usize) {
    let b = text.as_bytes()[i];
    if b < 0x80 {
        return (ASCII_SPACE[b as usize], 1);
    }
    match text[i..].chars().next() {
        Some(c) => (c.is_whitespace(), c.len_utf8()),
        None => (false, 1),
    }
}

/// The words of `text` split on whitespace.
pub struct Words<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Words<'a> {
    pub fn new(text: &'a str) -> Self {
        Words { text, pos: 0 }
    }
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let len = self.text.len();
        let mut i = self.pos;
        while i < len {
            let (space, n) = at(self.text, i);
            if !space {
                break;
            }
            i += n;
        }
        if i >= len {
            self.pos = len;
            return None;
        }
        let start = i;
        while i < len {
            let (space, n) = at(self.text, i);
            if space {
                break;
            }
            i += n;
        }
        self.pos = i;
        Some(&self.text[start..i])
    }
}

#[cfg(test)]
mod tests {
    use super::Words;
    use proptest::prelude::*;

    fn reference(text: &str) -> Vec<&str> {
        text.split(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c))
            .filter(|w| !w.is_empty())
            .collect()
    }

    #[test]
    fn python_whitespace() {
        let text = " a\tb\x0bc\x0cd\re\nf\x1cg\x1dh\x1ei\x1fj\u{85}k\u{a0}l\u{2003}m\u{3000}n  ";
        let got: Vec<&str> = Words::new(text).collect();
        assert_eq!(
            got,
            "abcdefghijklmn"
                .split("")
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        );
        assert_eq!(Words::new("").count(), 0);
        assert_eq!(Words::new(" \t\u{3000} ").count(), 0);
        assert_eq!(Words::new("é ü€ 𝄞x").collect::<Vec<_>>(), ["é", "ü€", "𝄞x"]);
    }

    proptest! {
        #[test]
        fn same_as_char_split(text in "[ a-cé€\t\n\x1c\x1f\u{85}\u{a0}\u{2000}\u{3000}\u{1F600}]{0,40}") {
            let got: Vec<&str> = Words::new(&text).collect();
            prop_assert_eq!(got, reference(&text));
        }
    }
}
