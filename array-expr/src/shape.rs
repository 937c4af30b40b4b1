//! Shape rules: broadcasting, Python slicing, matmul, and how shapes are written in messages.

use crate::tree::AxisIndex;

/// NumPy broadcasting of two shapes, or `None` when an aligned pair differs and neither is 1.
pub(crate) fn broadcast(a: &[u64], b: &[u64]) -> Option<Vec<u64>> {
    let n = a.len().max(b.len());
    // Missing leading axes act as length 1.
    let dim = |s: &[u64], i: usize| {
        (i + s.len())
            .checked_sub(n)
            .and_then(|j| s.get(j).copied())
            .unwrap_or(1)
    };
    (0..n)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y || y == 1 => Some(x),
            (1, y) => Some(y),
            _ => None,
        })
        .collect()
}

/// Why a subscript entry is invalid, before the caller adds which operand and axis.
#[derive(Debug, PartialEq)]
pub(crate) enum IndexError {
    OutOfRange,
    ZeroStep,
    NegativeStep,
}

/// Python's slice clamping for `len` elements; negative steps are not supported.
pub(crate) fn slice(
    len: u64,
    start: Option<i128>,
    stop: Option<i128>,
    step: Option<i128>,
) -> Result<AxisIndex, IndexError> {
    let step = step.unwrap_or(1);
    if step == 0 {
        return Err(IndexError::ZeroStep);
    }
    let step = u64::try_from(step).map_err(|_| IndexError::NegativeStep)?;
    let len_i = i128::from(len);
    let clamp = |v: i128| {
        let v = if v < 0 { v + len_i } else { v };
        // The clamped value lies in 0..=len, so it always fits u64.
        u64::try_from(v.clamp(0, len_i)).unwrap_or(0)
    };
    let start = start.map_or(0, clamp);
    let stop = stop.map_or(len, clamp).max(start);
    Ok(AxisIndex::Range { start, stop, step })
}

/// Python's integer index into `len` elements, counting negatives from the end.
pub(crate) fn index(len: u64, i: i128) -> Result<AxisIndex, IndexError> {
    let len_i = i128::from(len);
    let j = if i < 0 { i + len_i } else { i };
    if (0..len_i).contains(&j) {
        u64::try_from(j)
            .map(AxisIndex::Index)
            .map_err(|_| IndexError::OutOfRange)
    } else {
        Err(IndexError::OutOfRange)
    }
}

/// Result shape of matmul for 1-D/2-D operands, or `None` when the contracted lengths differ.
pub(crate) fn matmul(a: &[u64], b: &[u64]) -> Option<Vec<u64>> {
    // Operands are 1-D or 2-D, so b's contracted axis is always its first.
    let (k_a, k_b) = (a.last()?, b.first()?);
    if k_a != k_b {
        return None;
    }
    // The contracted axis disappears from both sides; 1-D operands contribute no other axis.
    let mut shape: Vec<u64> = a[..a.len() - 1].to_vec();
    if b.len() == 2 {
        shape.extend(b.last());
    }
    Some(shape)
}

/// A shape as Python prints a tuple: `()`, `(5,)`, `(3, 4)`.
pub(crate) fn format(shape: &[u64]) -> String {
    match shape {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        _ => {
            let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
            format!("({})", dims.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_rules() {
        assert_eq!(broadcast(&[3, 4], &[4]), Some(vec![3, 4]));
        assert_eq!(broadcast(&[3, 1], &[1, 5]), Some(vec![3, 5]));
        assert_eq!(broadcast(&[0], &[1]), Some(vec![0]));
        assert_eq!(broadcast(&[], &[2, 3]), Some(vec![2, 3]));
        assert_eq!(broadcast(&[3, 4], &[5]), None);
        assert_eq!(broadcast(&[0], &[2]), None);
    }

    #[test]
    fn matmul_shapes() {
        assert_eq!(matmul(&[2, 3], &[3, 4]), Some(vec![2, 4]));
        assert_eq!(matmul(&[2, 3], &[3]), Some(vec![2]));
        assert_eq!(matmul(&[3], &[3, 4]), Some(vec![4]));
        assert_eq!(matmul(&[3], &[3]), Some(vec![]));
        assert_eq!(matmul(&[2, 3], &[4, 3]), None);
    }

    #[test]
    fn shapes_print_as_python_tuples() {
        assert_eq!(format(&[]), "()");
        assert_eq!(format(&[5]), "(5,)");
        assert_eq!(format(&[3, 4]), "(3, 4)");
    }
}
