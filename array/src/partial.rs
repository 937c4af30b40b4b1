//! Partial reduction states: what a partials task keeps of its block (per element of the
//! result, reduced over the block's share of the reduced axes), how two states merge, and
//! how the combine stage finishes them. States keep the reduced axes as length 1, so the
//! states of blocks that differ only along reduced axes line up element by element.
//!
//! Sums and products accumulate in the result dtype (wrapping for integers, as NumPy);
//! means, variances and standard deviations accumulate count, mean and the sum of squared
//! deviations in float64 (Chan et al.'s pairwise update), whatever the operand's dtype.

use ndarray::{ArrayD, Axis, IxDyn, Zip};

use super::block::Block;
use super::expr::ReduceOp;
use kask_core::error::{Error, Result};

/// The partial state of one block.
#[derive(Clone, Debug, PartialEq)]
pub enum State {
    /// sum, prod, min or max so far, in the result dtype.
    Value(Block),
    /// count of elements per result element, their mean and sum of squared deviations.
    Moments {
        /// Elements reduced into each result element.
        count: u64,
        /// Their mean.
        mean: ArrayD<f64>,
        /// Their sum of squared deviations from the mean.
        m2: ArrayD<f64>,
    },
}

fn reduce_axes<T: Copy>(
    a: ArrayD<T>,
    axes: &[usize],
    f: impl Fn(ndarray::ArrayViewD<'_, T>, Axis) -> ArrayD<T>,
) -> ArrayD<T> {
    reduce_view(a.view(), axes, f).unwrap_or(a)
}

/// [`reduce_axes`] of a borrowed block; `None` when there is no axis to reduce.
fn reduce_view<T: Copy>(
    a: ndarray::ArrayViewD<'_, T>,
    axes: &[usize],
    f: impl Fn(ndarray::ArrayViewD<'_, T>, Axis) -> ArrayD<T>,
) -> Option<ArrayD<T>> {
    let mut out: Option<ArrayD<T>> = None;
    for &axis in axes.iter().rev() {
        let next = match &out {
            None => f(a.view(), Axis(axis)),
            Some(r) => f(r.view(), Axis(axis)),
        };
        out = Some(next.insert_axis(Axis(axis)));
    }
    out
}

fn fold<T: Copy>(
    v: ndarray::ArrayViewD<'_, T>,
    axis: Axis,
    init: T,
    f: impl Fn(T, T) -> T,
) -> ArrayD<T> {
    v.fold_axis(axis, init, |acc, &x| f(*acc, x))
}

fn fmin<T: num_traits::Float>(a: T, b: T) -> T {
    if a.is_nan() || b.is_nan() {
        T::nan()
    } else {
        a.min(b)
    }
}
fn fmax<T: num_traits::Float>(a: T, b: T) -> T {
    if a.is_nan() || b.is_nan() {
        T::nan()
    } else {
        a.max(b)
    }
}

macro_rules! by_dtype {
    ($block:expr, $axes:expr, $int:expr, $float:expr, $bool:expr) => {
        match $block {
            Block::Bool(a) => Block::Bool(reduce_axes(a, $axes, $bool)),
            Block::I32(a) => Block::I32(reduce_axes(a, $axes, |v, ax| $int(v, ax))),
            Block::I64(a) => Block::I64(reduce_axes(a, $axes, |v, ax| $int(v, ax))),
            Block::F32(a) => Block::F32(reduce_axes(a, $axes, |v, ax| $float(v, ax))),
            Block::F64(a) => Block::F64(reduce_axes(a, $axes, |v, ax| $float(v, ax))),
        }
    };
}

/// Reduces a block (already in the dtype the reduction accumulates in) over `axes`.
pub fn of_block(op: ReduceOp, block: Block, axes: &[usize]) -> Result<State> {
    Ok(match op {
        ReduceOp::Sum => State::Value(match block {
            Block::I64(a) => Block::I64(reduce_axes(a, axes, |v, ax| {
                fold(v, ax, 0i64, i64::wrapping_add)
            })),
            Block::F32(a) => Block::F32(reduce_axes(a, axes, |v, ax| v.sum_axis(ax))),
            Block::F64(a) => Block::F64(reduce_axes(a, axes, |v, ax| v.sum_axis(ax))),
            other => {
                return Err(Error::internal(format!(
                    "sum over {}",
                    other.dtype().name()
                )));
            }
        }),
        ReduceOp::Prod => State::Value(match block {
            Block::I64(a) => Block::I64(reduce_axes(a, axes, |v, ax| {
                fold(v, ax, 1i64, i64::wrapping_mul)
            })),
            Block::F32(a) => {
                Block::F32(reduce_axes(a, axes, |v, ax| fold(v, ax, 1.0, |x, y| x * y)))
            }
            Block::F64(a) => {
                Block::F64(reduce_axes(a, axes, |v, ax| fold(v, ax, 1.0, |x, y| x * y)))
            }
            other => {
                return Err(Error::internal(format!(
                    "prod over {}",
                    other.dtype().name()
                )));
            }
        }),
        ReduceOp::Min => State::Value(by_dtype!(
            block,
            axes,
            |v: ndarray::ArrayViewD<'_, _>, ax| v
                .fold_axis(ax, None, |acc: &Option<_>, &x| Some(
                    acc.map_or(x, |a: _| std::cmp::min(a, x))
                ))
                .mapv(|x| x.unwrap_or_default()),
            |v: ndarray::ArrayViewD<'_, _>, ax| fold(v, ax, num_traits::Float::infinity(), fmin),
            |v: ndarray::ArrayViewD<'_, bool>, ax| fold(v, ax, true, |x, y| x & y)
        )),
        ReduceOp::Max => State::Value(by_dtype!(
            block,
            axes,
            |v: ndarray::ArrayViewD<'_, _>, ax| v
                .fold_axis(ax, None, |acc: &Option<_>, &x| Some(
                    acc.map_or(x, |a: _| std::cmp::max(a, x))
                ))
                .mapv(|x| x.unwrap_or_default()),
            |v: ndarray::ArrayViewD<'_, _>, ax| fold(
                v,
                ax,
                num_traits::Float::neg_infinity(),
                fmax
            ),
            |v: ndarray::ArrayViewD<'_, bool>, ax| fold(v, ax, false, |x, y| x | y)
        )),
        ReduceOp::Mean | ReduceOp::Var | ReduceOp::Std => {
            let shape = block.shape().to_vec();
            let count: u64 = axes.iter().map(|&a| shape[a] as u64).product();
            let x = block.to_f64();
            let sum =
                reduce_view(x.view(), axes, |v, ax| v.sum_axis(ax)).unwrap_or_else(|| x.clone());
            let n = count.max(1) as f64;
            let mean = sum.mapv(|s| s / n);
            let m2 = if op == ReduceOp::Mean {
                ArrayD::zeros(mean.raw_dim())
            } else {
                let Some(m) = mean.broadcast(x.raw_dim()) else {
                    return Err(Error::internal("mean does not broadcast over its block"));
                };
                let dev = Zip::from(&x)
                    .and(&m)
                    .map_collect(|&v, &m| (v - m) * (v - m));
                reduce_axes(dev, axes, |v, ax| v.sum_axis(ax))
            };
            State::Moments { count, mean, m2 }
        }
    })
}

fn zip_same<T: Copy>(a: &ArrayD<T>, b: &ArrayD<T>, f: impl Fn(T, T) -> T) -> Result<ArrayD<T>> {
    if a.shape() != b.shape() {
        return Err(Error::internal(format!(
            "partial states of shapes {:?} and {:?}",
            a.shape(),
            b.shape()
        )));
    }
    Ok(Zip::from(a).and(b).map_collect(|&x, &y| f(x, y)))
}

/// Merges two states of the same reduction and region.
pub fn merge(op: ReduceOp, a: State, b: State) -> Result<State> {
    Ok(match (a, b) {
        (State::Value(x), State::Value(y)) => State::Value(match (op, x, y) {
            (ReduceOp::Sum, Block::I64(x), Block::I64(y)) => {
                Block::I64(zip_same(&x, &y, i64::wrapping_add)?)
            }
            (ReduceOp::Sum, Block::F32(x), Block::F32(y)) => {
                Block::F32(zip_same(&x, &y, |p, q| p + q)?)
            }
            (ReduceOp::Sum, Block::F64(x), Block::F64(y)) => {
                Block::F64(zip_same(&x, &y, |p, q| p + q)?)
            }
            (ReduceOp::Prod, Block::I64(x), Block::I64(y)) => {
                Block::I64(zip_same(&x, &y, i64::wrapping_mul)?)
            }
            (ReduceOp::Prod, Block::F32(x), Block::F32(y)) => {
                Block::F32(zip_same(&x, &y, |p, q| p * q)?)
            }
            (ReduceOp::Prod, Block::F64(x), Block::F64(y)) => {
                Block::F64(zip_same(&x, &y, |p, q| p * q)?)
            }
            (ReduceOp::Min, Block::Bool(x), Block::Bool(y)) => {
                Block::Bool(zip_same(&x, &y, |p, q| p & q)?)
            }
            (ReduceOp::Min, Block::I32(x), Block::I32(y)) => {
                Block::I32(zip_same(&x, &y, std::cmp::min)?)
            }
            (ReduceOp::Min, Block::I64(x), Block::I64(y)) => {
                Block::I64(zip_same(&x, &y, std::cmp::min)?)
            }
            (ReduceOp::Min, Block::F32(x), Block::F32(y)) => Block::F32(zip_same(&x, &y, fmin)?),
            (ReduceOp::Min, Block::F64(x), Block::F64(y)) => Block::F64(zip_same(&x, &y, fmin)?),
            (ReduceOp::Max, Block::Bool(x), Block::Bool(y)) => {
                Block::Bool(zip_same(&x, &y, |p, q| p | q)?)
            }
            (ReduceOp::Max, Block::I32(x), Block::I32(y)) => {
                Block::I32(zip_same(&x, &y, std::cmp::max)?)
            }
            (ReduceOp::Max, Block::I64(x), Block::I64(y)) => {
                Block::I64(zip_same(&x, &y, std::cmp::max)?)
            }
            (ReduceOp::Max, Block::F32(x), Block::F32(y)) => Block::F32(zip_same(&x, &y, fmax)?),
            (ReduceOp::Max, Block::F64(x), Block::F64(y)) => Block::F64(zip_same(&x, &y, fmax)?),
            (op, x, y) => {
                return Err(Error::internal(format!(
                    "merging {op:?} states of {} and {}",
                    x.dtype().name(),
                    y.dtype().name()
                )));
            }
        }),
        (
            State::Moments {
                count: na,
                mean: ma,
                m2: qa,
            },
            State::Moments {
                count: nb,
                mean: mb,
                m2: qb,
            },
        ) => {
            let n = na + nb;
            if n == 0 {
                return Ok(State::Moments {
                    count: 0,
                    mean: ma,
                    m2: qa,
                });
            }
            let (fa, fb, fnn) = (na as f64, nb as f64, n as f64);
            let delta = zip_same(&mb, &ma, |b, a| b - a)?;
            let mean = Zip::from(&ma)
                .and(&delta)
                .map_collect(|&a, &d| a + d * fb / fnn);
            let m2 = Zip::from(&qa)
                .and(&qb)
                .and(&delta)
                .map_collect(|&qa, &qb, &d| qa + qb + d * d * fa * fb / fnn);
            State::Moments { count: n, mean, m2 }
        }
        _ => {
            return Err(Error::internal(
                "merging a value state with a moments state",
            ));
        }
    })
}

/// The reduction's result from its merged state.
pub fn finish(op: ReduceOp, state: State, ddof: u64) -> Result<Block> {
    Ok(match (op, state) {
        (_, State::Value(b)) => b,
        (ReduceOp::Mean, State::Moments { count, mean, .. }) => {
            if count == 0 {
                Block::F64(mean.mapv(|_| f64::NAN))
            } else {
                Block::F64(mean)
            }
        }
        (ReduceOp::Var | ReduceOp::Std, State::Moments { count, m2, .. }) => {
            let dof = count as f64 - ddof as f64;
            let var = m2.mapv(|q| if dof > 0.0 { q / dof } else { f64::NAN });
            Block::F64(if op == ReduceOp::Std {
                var.mapv(f64::sqrt)
            } else {
                var
            })
        }
        (op, _) => return Err(Error::internal(format!("finishing {op:?} from moments"))),
    })
}

const MAGIC: &[u8; 8] = b"KASKPRT1";

impl State {
    /// Result elements the state covers.
    pub fn len(&self) -> usize {
        match self {
            State::Value(b) => b.len(),
            State::Moments { mean, .. } => mean.len(),
        }
    }

    /// Whether it covers none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Serializes a state: a magic, a JSON header line, then little-endian element bytes.
pub fn encode(state: &State) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    let (header, arrays): (serde_json::Value, Vec<Block>) = match state {
        State::Value(b) => (
            serde_json::json!({"kind": "value", "dtype": b.dtype().name(), "shape": b.shape()}),
            vec![b.clone()],
        ),
        State::Moments { count, mean, m2 } => (
            serde_json::json!({"kind": "moments", "count": count, "shape": mean.shape()}),
            vec![Block::F64(mean.clone()), Block::F64(m2.clone())],
        ),
    };
    out.extend_from_slice(header.to_string().as_bytes());
    out.push(b'\n');
    for b in arrays {
        super::block::each!(b, a => {
            for x in a.as_standard_layout().iter() {
                out.extend_from_slice(&Le::bytes(*x));
            }
        });
    }
    out
}

/// Reads a state that [`encode`] wrote.
pub fn decode(bytes: &[u8]) -> Result<State> {
    let bad = |what: &str| Error::internal(format!("a partial-state file is damaged: {what}"));
    let rest = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| bad("no magic"))?;
    let nl = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| bad("no header"))?;
    let header: serde_json::Value =
        serde_json::from_slice(&rest[..nl]).map_err(|e| bad(&e.to_string()))?;
    let mut data = &rest[nl + 1..];
    let shape: Vec<usize> =
        serde_json::from_value(header["shape"].clone()).map_err(|e| bad(&e.to_string()))?;
    let n: usize = shape.iter().product();
    let mut take = |dtype: super::expr::DType| -> Result<Block> {
        let width = width(dtype);
        if data.len() < n * width {
            return Err(bad("too short"));
        }
        let (head, tail) = data.split_at(n * width);
        data = tail;
        let s = IxDyn(&shape);
        let chunks = head.chunks_exact(width.max(1));
        fn arr<T>(s: &IxDyn, v: Vec<T>) -> Result<ArrayD<T>> {
            ArrayD::from_shape_vec(s.clone(), v)
                .map_err(|e| Error::internal(format!("a partial-state file is damaged: {e}")))
        }
        Ok(match dtype {
            super::expr::DType::Bool => Block::Bool(arr(&s, chunks.map(|c| c[0] != 0).collect())?),
            super::expr::DType::I32 => Block::I32(arr(
                &s,
                chunks
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            )?),
            super::expr::DType::I64 => Block::I64(arr(
                &s,
                chunks.map(|c| i64::from_le_bytes(to8(c))).collect(),
            )?),
            super::expr::DType::F32 => Block::F32(arr(
                &s,
                chunks
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            )?),
            super::expr::DType::F64 => Block::F64(arr(
                &s,
                chunks.map(|c| f64::from_le_bytes(to8(c))).collect(),
            )?),
        })
    };
    match header["kind"].as_str() {
        Some("value") => {
            let dtype = header["dtype"]
                .as_str()
                .and_then(super::zarr::dtype_from_name)
                .ok_or_else(|| bad("dtype"))?;
            Ok(State::Value(take(dtype)?))
        }
        Some("moments") => {
            let count = header["count"].as_u64().ok_or_else(|| bad("count"))?;
            let (Block::F64(mean), Block::F64(m2)) = (
                take(super::expr::DType::F64)?,
                take(super::expr::DType::F64)?,
            ) else {
                return Err(bad("moments"));
            };
            Ok(State::Moments { count, mean, m2 })
        }
        _ => Err(bad("kind")),
    }
}

fn to8(c: &[u8]) -> [u8; 8] {
    let mut b = [0u8; 8];
    b.copy_from_slice(&c[..8]);
    b
}

/// Little-endian element bytes.
trait Le: Copy {
    fn bytes(self) -> Vec<u8>;
}
impl Le for bool {
    fn bytes(self) -> Vec<u8> {
        vec![u8::from(self)]
    }
}
macro_rules! le {
    ($($t:ty),*) => {$(
        impl Le for $t {
            fn bytes(self) -> Vec<u8> {
                self.to_le_bytes().to_vec()
            }
        }
    )*};
}
le!(i32, i64, f32, f64);

fn width(dtype: super::expr::DType) -> usize {
    match dtype {
        super::expr::DType::Bool => 1,
        super::expr::DType::I32 | super::expr::DType::F32 => 4,
        super::expr::DType::I64 | super::expr::DType::F64 => 8,
    }
}
