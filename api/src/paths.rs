//! Where a job reads and where it writes, compared as object-store prefixes: pure checks that
//! keep a job from writing where it reads.
//!
//! Paths are compared component by component (`data` and `database` do not overlap), and an
//! input's glob components match the output's components as the glob would match a file:
//!
//! ```
//! use kask_api::paths::overlaps;
//! assert!(overlaps("t", "t/*.parquet"));            // the output holds the input's files
//! assert!(overlaps("arrays", "arrays/a.zarr"));     // the output holds an input array
//! assert!(overlaps("a.zarr/out", "a.zarr"));         // the output is inside the input
//! assert!(overlaps("logs/2026", "logs/*/x.csv"));    // the glob can match under the output
//! assert!(!overlaps("out", "t/*.parquet"));
//! assert!(!overlaps("data", "database/x.csv"));
//! ```

use globset::GlobBuilder;

/// The folder name of Kask's scratch space and commit records under an output.
pub const SCRATCH_DIR: &str = "_kask";

/// A path's components, without empty or `.` ones: `"/a//b/./c/"` is `[a, b, c]`.
pub fn components(path: &str) -> Vec<&str> {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect()
}

/// Whether writing under `output` could touch what the input `pattern` (a path or a glob)
/// reads, or what it reads could hold the output: one is a prefix of the other.
pub fn overlaps(output: &str, pattern: &str) -> bool {
    let out = components(output);
    let inp = components(pattern);
    for (o, p) in out.iter().zip(&inp) {
        if *p == "**" {
            return true;
        }
        if !component_matches(p, o) {
            return false;
        }
    }
    true
}

/// Whether one glob component (no `/`) matches one path component. A component that is not a
/// valid glob is compared literally.
fn component_matches(pattern: &str, name: &str) -> bool {
    if !pattern.contains(['*', '?', '[', '{']) {
        return pattern == name;
    }
    match GlobBuilder::new(pattern).literal_separator(true).build() {
        Ok(g) => g.compile_matcher().is_match(name),
        Err(_) => pattern == name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_overlap_in_both_directions() {
        assert!(overlaps("t", "t/*.parquet"));
        assert!(overlaps("t/", "./t/a.parquet"));
        assert!(overlaps("arrays/a.zarr/out", "arrays/a.zarr"));
        assert!(overlaps("x", "x"));
    }

    #[test]
    fn components_are_compared_whole() {
        assert!(!overlaps("data", "database/*.csv"));
        assert!(!overlaps("t2", "t/*.parquet"));
        assert!(!overlaps("out/t", "t/*.parquet"));
    }

    #[test]
    fn glob_components_match_output_components() {
        assert!(overlaps("logs/2026", "logs/*/x.csv"));
        assert!(overlaps("logs/2026/x.csv", "logs/20{25,26}/*.csv"));
        assert!(!overlaps("logs/2024", "logs/20{25,26}/*.csv"));
        assert!(overlaps("a/b/c", "a/**/x.json"));
        assert!(overlaps("data", "*/x.csv"));
        assert!(!overlaps("data/x.csv", "*/y.csv"));
    }

    #[test]
    fn empty_and_dot_components_are_ignored() {
        assert_eq!(components("/a//b/./c/"), ["a", "b", "c"]);
        assert!(components("./").is_empty());
    }
}
