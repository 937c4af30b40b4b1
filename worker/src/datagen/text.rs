//! `kask gen text`: lines of words drawn from a fixed vocabulary with a Zipf-like skew, for
//! the word-count example and benchmark.

use std::io::Write;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};

/// What to generate.
#[derive(Clone, Debug)]
pub struct TextGen {
    /// Total bytes, about.
    pub bytes: u64,
    /// Number of files.
    pub files: usize,
    /// Distinct words.
    pub vocabulary: usize,
    /// Seed.
    pub seed: u64,
}

fn word(i: usize) -> String {
    const SYLLABLES: [&str; 16] = [
        "ka", "sk", "da", "ta", "re", "mo", "li", "zu", "pe", "no", "vi", "ra", "te", "su", "lo",
        "mi",
    ];
    let mut n = i + 1;
    let mut w = String::new();
    while n > 0 {
        w.push_str(SYLLABLES[n % 16]);
        n /= 16;
    }
    w
}

impl TextGen {
    /// Writes `part-NNNNN.txt` files into `out`.
    pub fn write(&self, out: &Path) -> Result<u64> {
        let fail = |e: std::io::Error| Error::Output {
            path: out.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(out).map_err(fail)?;
        let words: Vec<String> = (0..self.vocabulary.max(1)).map(word).collect();
        // Squaring a uniform draw makes low indices (common words) much more likely.
        let per_file = self.bytes / self.files.max(1) as u64;
        let mut total = 0;
        for f in 0..self.files.max(1) {
            let mut rng = StdRng::seed_from_u64(self.seed ^ (f as u64).wrapping_mul(0x9E37_79B9));
            let path = out.join(format!("part-{f:05}.txt"));
            let mut w = std::io::BufWriter::new(std::fs::File::create(&path).map_err(fail)?);
            let mut written = 0u64;
            while written < per_file {
                let n = rng.random_range(5..15);
                let mut line = String::with_capacity(96);
                for i in 0..n {
                    let u: f64 = rng.random();
                    let idx = ((u * u * u) * words.len() as f64) as usize;
                    if i > 0 {
                        line.push(' ');
                    }
                    line.push_str(&words[idx.min(words.len() - 1)]);
                }
                line.push('\n');
                w.write_all(line.as_bytes()).map_err(fail)?;
                written += line.len() as u64;
            }
            w.flush().map_err(fail)?;
            total += written;
        }
        Ok(total)
    }
}
