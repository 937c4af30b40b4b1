//! A block: one rectangular piece of an array in memory, in one of the five dtypes, and the
//! NumPy operations on blocks (elementwise with broadcasting, casts). The checker has already
//! cast both operands of every operation to the dtype it computes in, so the kernels here
//! never promote.

use ndarray::{ArrayD, IxDyn, Zip};
use num_traits::AsPrimitive;

use super::expr::{BinaryOp, DType, Scalar, UnaryOp};
use kask_core::error::{Error, Result};

/// One block of array data.
#[derive(Clone, Debug, PartialEq)]
pub enum Block {
    /// bool
    Bool(ArrayD<bool>),
    /// int32
    I32(ArrayD<i32>),
    /// int64
    I64(ArrayD<i64>),
    /// float32
    F32(ArrayD<f32>),
    /// float64
    F64(ArrayD<f64>),
}

/// Runs `$e` with `$a` bound to the block's array, whatever its dtype.
macro_rules! each {
    ($b:expr, $a:ident => $e:expr) => {
        match $b {
            Block::Bool($a) => $e,
            Block::I32($a) => $e,
            Block::I64($a) => $e,
            Block::F32($a) => $e,
            Block::F64($a) => $e,
        }
    };
}
pub(crate) use each;

/// The shape both operands broadcast to (NumPy rules; the checker has verified they do).
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for (i, o) in out.iter_mut().enumerate() {
        let x = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let y = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        *o = match (x, y) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(Error::internal(format!(
                    "blocks of shapes {a:?} and {b:?} do not broadcast"
                )));
            }
        };
    }
    Ok(out)
}

fn zip2<A: Copy, B: Copy, C>(
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    mut f: impl FnMut(A, B) -> C,
) -> Result<ArrayD<C>> {
    let shape = broadcast_shape(a.shape(), b.shape())?;
    let (Some(av), Some(bv)) = (a.broadcast(IxDyn(&shape)), b.broadcast(IxDyn(&shape))) else {
        return Err(Error::internal("broadcast failed"));
    };
    Ok(Zip::from(&av).and(&bv).map_collect(|&x, &y| f(x, y)))
}

fn zip2_try<A: Copy, B: Copy, C: Copy + Default>(
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    f: impl Fn(A, B) -> std::result::Result<C, String>,
) -> Result<ArrayD<C>> {
    let mut failure = None;
    let out = zip2(a, b, |x, y| match f(x, y) {
        Ok(v) => v,
        Err(e) => {
            failure.get_or_insert(e);
            C::default()
        }
    })?;
    match failure {
        Some(e) => Err(Error::spec("spec.array.expr", e)),
        None => Ok(out),
    }
}

/// Python's floor division and modulo for integers; NumPy gives 0 for a zero divisor.
trait IntOps: Copy + PartialOrd + Default {
    fn floordiv(self, b: Self) -> Self;
    fn modulo(self, b: Self) -> Self;
    fn pow(self, b: Self) -> std::result::Result<Self, String>;
}

macro_rules! int_ops {
    ($t:ty) => {
        impl IntOps for $t {
            fn floordiv(self, b: Self) -> Self {
                if b == 0 {
                    return 0;
                }
                let q = self.wrapping_div(b);
                if (self % b != 0) && ((self < 0) != (b < 0)) {
                    q - 1
                } else {
                    q
                }
            }
            fn modulo(self, b: Self) -> Self {
                if b == 0 {
                    return 0;
                }
                let r = self.wrapping_rem(b);
                if r != 0 && ((r < 0) != (b < 0)) { r + b } else { r }
            }
            fn pow(self, b: Self) -> std::result::Result<Self, String> {
                if b < 0 {
                    return Err(
                        "integers to negative integer powers are not allowed (NumPy refuses them too); make one operand a float"
                            .into(),
                    );
                }
                let mut result: $t = 1;
                let mut base = self;
                let mut e = b;
                while e > 0 {
                    if e & 1 == 1 {
                        result = result.wrapping_mul(base);
                    }
                    base = base.wrapping_mul(base);
                    e >>= 1;
                }
                Ok(result)
            }
        }
    };
}
int_ops!(i32);
int_ops!(i64);

fn float_floordiv<T: num_traits::Float>(a: T, b: T) -> T {
    (a / b).floor()
}

fn float_mod<T: num_traits::Float>(a: T, b: T) -> T {
    if b == T::zero() {
        return T::nan();
    }
    let r = a % b;
    if r != T::zero() && ((r < T::zero()) != (b < T::zero())) {
        r + b
    } else {
        r
    }
}

fn compare<T: PartialOrd + Copy>(op: BinaryOp, a: &ArrayD<T>, b: &ArrayD<T>) -> Result<Block> {
    let out = match op {
        BinaryOp::Eq => zip2(a, b, |x, y| x == y)?,
        BinaryOp::Ne => zip2(a, b, |x, y| x != y)?,
        BinaryOp::Lt => zip2(a, b, |x, y| x < y)?,
        BinaryOp::Le => zip2(a, b, |x, y| x <= y)?,
        BinaryOp::Gt => zip2(a, b, |x, y| x > y)?,
        BinaryOp::Ge => zip2(a, b, |x, y| x >= y)?,
        _ => return Err(Error::internal(format!("{op:?} is not a comparison"))),
    };
    Ok(Block::Bool(out))
}

fn is_comparison(op: BinaryOp) -> bool {
    matches!(
        op,
        BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge
    )
}

macro_rules! int_binary {
    ($op:expr, $a:expr, $b:expr, $v:ident) => {{
        let (a, b) = ($a, $b);
        Ok(Block::$v(match $op {
            BinaryOp::Add => zip2(a, b, |x, y| x.wrapping_add(y))?,
            BinaryOp::Sub => zip2(a, b, |x, y| x.wrapping_sub(y))?,
            BinaryOp::Mul => zip2(a, b, |x, y| x.wrapping_mul(y))?,
            BinaryOp::FloorDiv => zip2(a, b, IntOps::floordiv)?,
            BinaryOp::Mod => zip2(a, b, IntOps::modulo)?,
            BinaryOp::Pow => zip2_try(a, b, IntOps::pow)?,
            BinaryOp::And => zip2(a, b, |x, y| x & y)?,
            BinaryOp::Or => zip2(a, b, |x, y| x | y)?,
            BinaryOp::Xor => zip2(a, b, |x, y| x ^ y)?,
            other => return Err(Error::internal(format!("{other:?} on integers"))),
        }))
    }};
}

macro_rules! float_binary {
    ($op:expr, $a:expr, $b:expr, $v:ident) => {{
        let (a, b) = ($a, $b);
        Ok(Block::$v(match $op {
            BinaryOp::Add => zip2(a, b, |x, y| x + y)?,
            BinaryOp::Sub => zip2(a, b, |x, y| x - y)?,
            BinaryOp::Mul => zip2(a, b, |x, y| x * y)?,
            BinaryOp::Div => zip2(a, b, |x, y| x / y)?,
            BinaryOp::FloorDiv => zip2(a, b, float_floordiv)?,
            BinaryOp::Mod => zip2(a, b, float_mod)?,
            BinaryOp::Pow => zip2(a, b, num_traits::Float::powf)?,
            other => return Err(Error::internal(format!("{other:?} on floats"))),
        }))
    }};
}

impl Block {
    /// The block's dtype.
    pub fn dtype(&self) -> DType {
        match self {
            Block::Bool(_) => DType::Bool,
            Block::I32(_) => DType::I32,
            Block::I64(_) => DType::I64,
            Block::F32(_) => DType::F32,
            Block::F64(_) => DType::F64,
        }
    }

    /// The block's shape.
    pub fn shape(&self) -> &[usize] {
        each!(self, a => a.shape())
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        each!(self, a => a.len())
    }

    /// Whether the block has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A 0-d block holding a scalar of `dtype` (the checker has already fitted it).
    pub fn scalar(value: Scalar, dtype: DType) -> Block {
        fn one<T: Clone>(x: T) -> ArrayD<T> {
            ArrayD::from_elem(IxDyn(&[]), x)
        }
        let float = match value {
            Scalar::Bool(b) => f64::from(u8::from(b)),
            Scalar::Int(i) => i as f64,
            Scalar::Float(f) => f,
        };
        match (dtype, value) {
            (DType::Bool, Scalar::Bool(b)) => Block::Bool(one(b)),
            (DType::Bool, _) => Block::Bool(one(float != 0.0)),
            (DType::I32, Scalar::Int(i)) => Block::I32(one(i as i32)),
            (DType::I64, Scalar::Int(i)) => Block::I64(one(i)),
            (DType::I32, _) => Block::I32(one(float as i32)),
            (DType::I64, _) => Block::I64(one(float as i64)),
            (DType::F32, _) => Block::F32(one(float as f32)),
            (DType::F64, _) => Block::F64(one(float)),
        }
    }

    /// An all-zero (all-false) block.
    pub fn zeros(dtype: DType, shape: &[usize]) -> Block {
        let s = IxDyn(shape);
        match dtype {
            DType::Bool => Block::Bool(ArrayD::from_elem(s, false)),
            DType::I32 => Block::I32(ArrayD::zeros(s)),
            DType::I64 => Block::I64(ArrayD::zeros(s)),
            DType::F32 => Block::F32(ArrayD::zeros(s)),
            DType::F64 => Block::F64(ArrayD::zeros(s)),
        }
    }

    /// Converts to `dtype` as NumPy's `astype` does (bool is `x != 0`).
    pub fn cast(self, dtype: DType) -> Block {
        if self.dtype() == dtype {
            return self;
        }
        match self {
            Block::Bool(a) => {
                let a = a.mapv(u8::from);
                match dtype {
                    DType::Bool => Block::Bool(a.mapv(|x| x != 0)),
                    DType::I32 => Block::I32(a.mapv(i32::from)),
                    DType::I64 => Block::I64(a.mapv(i64::from)),
                    DType::F32 => Block::F32(a.mapv(f32::from)),
                    DType::F64 => Block::F64(a.mapv(f64::from)),
                }
            }
            Block::I32(a) => cast_num(&a, dtype),
            Block::I64(a) => cast_num(&a, dtype),
            Block::F32(a) => cast_num(&a, dtype),
            Block::F64(a) => cast_num(&a, dtype),
        }
    }

    /// The values as float64 (for reductions that accumulate in float64).
    pub fn to_f64(self) -> ArrayD<f64> {
        match self.cast(DType::F64) {
            Block::F64(a) => a,
            _ => ArrayD::zeros(IxDyn(&[])),
        }
    }

    /// A unary operation.
    pub fn unary(self, op: UnaryOp) -> Result<Block> {
        use num_traits::Float;
        let bad = |d: DType| Error::internal(format!("{op:?} on {}", d.name()));
        Ok(match (op, self) {
            (UnaryOp::Neg, Block::I32(a)) => Block::I32(a.mapv(i32::wrapping_neg)),
            (UnaryOp::Neg, Block::I64(a)) => Block::I64(a.mapv(i64::wrapping_neg)),
            (UnaryOp::Neg, Block::F32(a)) => Block::F32(a.mapv(|x| -x)),
            (UnaryOp::Neg, Block::F64(a)) => Block::F64(a.mapv(|x| -x)),
            (UnaryOp::Not, Block::Bool(a)) => Block::Bool(a.mapv(|x| !x)),
            (UnaryOp::Not, Block::I32(a)) => Block::I32(a.mapv(|x| !x)),
            (UnaryOp::Not, Block::I64(a)) => Block::I64(a.mapv(|x| !x)),
            (UnaryOp::Abs, Block::Bool(a)) => Block::Bool(a),
            (UnaryOp::Abs, Block::I32(a)) => Block::I32(a.mapv(i32::wrapping_abs)),
            (UnaryOp::Abs, Block::I64(a)) => Block::I64(a.mapv(i64::wrapping_abs)),
            (UnaryOp::Abs, Block::F32(a)) => Block::F32(a.mapv(f32::abs)),
            (UnaryOp::Abs, Block::F64(a)) => Block::F64(a.mapv(f64::abs)),
            (UnaryOp::Sqrt, Block::F32(a)) => Block::F32(a.mapv(Float::sqrt)),
            (UnaryOp::Sqrt, Block::F64(a)) => Block::F64(a.mapv(Float::sqrt)),
            (UnaryOp::Exp, Block::F32(a)) => Block::F32(a.mapv(Float::exp)),
            (UnaryOp::Exp, Block::F64(a)) => Block::F64(a.mapv(Float::exp)),
            (UnaryOp::Log, Block::F32(a)) => Block::F32(a.mapv(Float::ln)),
            (UnaryOp::Log, Block::F64(a)) => Block::F64(a.mapv(Float::ln)),
            (_, b) => return Err(bad(b.dtype())),
        })
    }

    /// A binary operation; both operands have the dtype the operation computes in.
    pub fn binary(op: BinaryOp, a: &Block, b: &Block) -> Result<Block> {
        if is_comparison(op) {
            return match (a, b) {
                (Block::Bool(x), Block::Bool(y)) => compare(op, x, y),
                (Block::I32(x), Block::I32(y)) => compare(op, x, y),
                (Block::I64(x), Block::I64(y)) => compare(op, x, y),
                (Block::F32(x), Block::F32(y)) => compare(op, x, y),
                (Block::F64(x), Block::F64(y)) => compare(op, x, y),
                _ => Err(mismatch(op, a, b)),
            };
        }
        match (a, b) {
            (Block::Bool(x), Block::Bool(y)) => Ok(Block::Bool(match op {
                BinaryOp::Add | BinaryOp::Or => zip2(x, y, |p, q| p | q)?,
                BinaryOp::Mul | BinaryOp::And => zip2(x, y, |p, q| p & q)?,
                BinaryOp::Xor | BinaryOp::Ne => zip2(x, y, |p, q| p ^ q)?,
                _ => return Err(mismatch(op, a, b)),
            })),
            (Block::I32(x), Block::I32(y)) => int_binary!(op, x, y, I32),
            (Block::I64(x), Block::I64(y)) => int_binary!(op, x, y, I64),
            (Block::F32(x), Block::F32(y)) => float_binary!(op, x, y, F32),
            (Block::F64(x), Block::F64(y)) => float_binary!(op, x, y, F64),
            _ => Err(mismatch(op, a, b)),
        }
    }

    /// `where(c, x, y)` elementwise, broadcasting all three.
    pub fn select(cond: &Block, x: &Block, y: &Block) -> Result<Block> {
        let Block::Bool(c) = cond else {
            return Err(Error::internal("where: the condition is not bool"));
        };
        fn pick<T: Copy>(c: &ArrayD<bool>, x: &ArrayD<T>, y: &ArrayD<T>) -> Result<ArrayD<T>> {
            let shape = broadcast_shape(&broadcast_shape(c.shape(), x.shape())?, y.shape())?;
            let s = IxDyn(&shape);
            let (Some(cv), Some(xv), Some(yv)) = (
                c.broadcast(s.clone()),
                x.broadcast(s.clone()),
                y.broadcast(s),
            ) else {
                return Err(Error::internal("broadcast failed"));
            };
            Ok(Zip::from(&cv)
                .and(&xv)
                .and(&yv)
                .map_collect(|&c, &x, &y| if c { x } else { y }))
        }
        Ok(match (x, y) {
            (Block::Bool(x), Block::Bool(y)) => Block::Bool(pick(c, x, y)?),
            (Block::I32(x), Block::I32(y)) => Block::I32(pick(c, x, y)?),
            (Block::I64(x), Block::I64(y)) => Block::I64(pick(c, x, y)?),
            (Block::F32(x), Block::F32(y)) => Block::F32(pick(c, x, y)?),
            (Block::F64(x), Block::F64(y)) => Block::F64(pick(c, x, y)?),
            _ => return Err(Error::internal("where: x and y differ in dtype")),
        })
    }

    /// The block with its axes reversed, in standard layout.
    pub fn transpose(self) -> Block {
        each!(self, a => a.reversed_axes().as_standard_layout().into_owned().into())
    }

    /// The block as one with the given shape (same number of elements).
    pub fn reshape(self, shape: &[usize]) -> Result<Block> {
        let s = IxDyn(shape);
        each!(self, a => {
            let a = a.as_standard_layout().into_owned();
            a.into_shape_with_order(s)
                .map(Into::into)
                .map_err(|e| Error::internal(format!("reshape to {shape:?}: {e}")))
        })
    }
}

fn mismatch(op: BinaryOp, a: &Block, b: &Block) -> Error {
    Error::internal(format!(
        "{op:?} on {} and {}",
        a.dtype().name(),
        b.dtype().name()
    ))
}

fn cast_num<T>(a: &ArrayD<T>, dtype: DType) -> Block
where
    T: Copy
        + 'static
        + AsPrimitive<i32>
        + AsPrimitive<i64>
        + AsPrimitive<f32>
        + AsPrimitive<f64>
        + num_traits::Zero
        + PartialEq,
{
    match dtype {
        DType::Bool => Block::Bool(a.mapv(|x| x != T::zero())),
        DType::I32 => Block::I32(a.mapv(AsPrimitive::<i32>::as_)),
        DType::I64 => Block::I64(a.mapv(AsPrimitive::<i64>::as_)),
        DType::F32 => Block::F32(a.mapv(AsPrimitive::<f32>::as_)),
        DType::F64 => Block::F64(a.mapv(AsPrimitive::<f64>::as_)),
    }
}

macro_rules! from_array {
    ($t:ty, $v:ident) => {
        impl From<ArrayD<$t>> for Block {
            fn from(a: ArrayD<$t>) -> Block {
                Block::$v(a)
            }
        }
    };
}
from_array!(bool, Bool);
from_array!(i32, I32);
from_array!(i64, I64);
from_array!(f32, F32);
from_array!(f64, F64);
