//! The inner products of `@`: one k-block of an output tile at a time, accumulated in place.
//! Float matrix products go through the `gemm` crate's packed kernels, built with its `x86-v4`
//! feature so that CPUs with AVX-512 run its AVX-512 kernels (chosen at run time; others fall
//! back to AVX2 or SSE). On the 4096² benchmark the whole job took 3.6 s with gemm's AVX2
//! kernels and 2.4–2.5 s with the AVX-512 ones (bench/results/2026-12-01-arrays.md); gemm's
//! AVX2 kernels had measured about 1.4x faster than matrixmultiply's before that.
//! Matrix-vector products and integers go through ndarray's products.

use ndarray::linalg::{general_mat_mul, general_mat_vec_mul};
use ndarray::{
    ArrayD, ArrayView, ArrayView2, ArrayViewMut, ArrayViewMut2, Dimension, Ix1, Ix2, LinalgScalar,
};

use super::block::Block;
use kask_core::error::{Error, Result};

/// The scalars the `gemm` crate multiplies (it panics on any other type).
trait GemmScalar: LinalgScalar {}
impl GemmScalar for f32 {}
impl GemmScalar for f64 {}

/// `c += a @ b` for float matrices, through `gemm`.
#[allow(unsafe_code)]
fn gemm_2d<T: GemmScalar>(
    c: &mut ArrayViewMut2<T>,
    a: &ArrayView2<T>,
    b: &ArrayView2<T>,
    threads: usize,
) -> Result<()> {
    let (m, k) = a.dim();
    let n = b.dim().1;
    if b.dim().0 != k || c.dim() != (m, n) {
        return Err(Error::internal(format!(
            "matmul of {:?} and {:?} into {:?}",
            a.dim(),
            b.dim(),
            c.dim()
        )));
    }
    if m == 0 || n == 0 || k == 0 {
        return Ok(());
    }
    let (c_rs, c_cs) = (c.strides()[0], c.strides()[1]);
    let (a_rs, a_cs) = (a.strides()[0], a.strides()[1]);
    let (b_rs, b_cs) = (b.strides()[0], b.strides()[1]);
    let c_ptr = c.as_mut_ptr();
    // SAFETY: the shapes were checked above, so every element gemm reads or writes,
    // (i, l) of a, (l, j) of b and (i, j) of c for i < m, j < n, l < k, lies inside the
    // three views; the pointers and element strides are the views' own. `c` is borrowed
    // mutably, so it aliases neither `a` nor `b`. T is f32 or f64, which gemm supports.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c_ptr,
            c_cs,
            c_rs,
            true,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            T::one(),
            T::one(),
            false,
            false,
            false,
            if threads > 1 {
                gemm::Parallelism::Rayon(threads)
            } else {
                gemm::Parallelism::None
            },
        );
    }
    Ok(())
}

fn shape_err(e: ndarray::ShapeError) -> Error {
    Error::internal(format!("matmul operands: {e}"))
}

/// A block seen with `D` dimensions.
fn view<T, D: Dimension>(a: &ArrayD<T>) -> Result<ArrayView<'_, T, D>> {
    a.view().into_dimensionality::<D>().map_err(shape_err)
}

/// The accumulator seen with `D` dimensions.
fn view_mut<T, D: Dimension>(c: &mut ArrayD<T>) -> Result<ArrayViewMut<'_, T, D>> {
    c.view_mut().into_dimensionality::<D>().map_err(shape_err)
}

/// `c += a @ b` for float blocks: matrix products through `gemm`, the rest as for integers.
fn accumulate_float<T: GemmScalar>(
    c: &mut ArrayD<T>,
    a: &ArrayD<T>,
    b: &ArrayD<T>,
    threads: usize,
) -> Result<()> {
    if (a.ndim(), b.ndim()) != (2, 2) {
        return accumulate_typed(c, a, b);
    }
    gemm_2d(&mut view_mut::<_, Ix2>(c)?, &view(a)?, &view(b)?, threads)
}

fn accumulate_typed<T: LinalgScalar>(
    c: &mut ArrayD<T>,
    a: &ArrayD<T>,
    b: &ArrayD<T>,
) -> Result<()> {
    match (a.ndim(), b.ndim()) {
        (2, 2) => general_mat_mul(
            T::one(),
            &view::<_, Ix2>(a)?,
            &view::<_, Ix2>(b)?,
            T::one(),
            &mut view_mut::<_, Ix2>(c)?,
        ),
        (2, 1) => general_mat_vec_mul(
            T::one(),
            &view::<_, Ix2>(a)?,
            &view::<_, Ix1>(b)?,
            T::one(),
            &mut view_mut::<_, Ix1>(c)?,
        ),
        (1, 2) => general_mat_vec_mul(
            T::one(),
            &view::<_, Ix2>(b)?.t(),
            &view::<_, Ix1>(a)?,
            T::one(),
            &mut view_mut::<_, Ix1>(c)?,
        ),
        (1, 1) => {
            let d = view::<_, Ix1>(a)?.dot(&view::<_, Ix1>(b)?);
            c.mapv_inplace(|x| x + d);
        }
        (x, y) => return Err(Error::internal(format!("matmul of {x}-d and {y}-d blocks"))),
    }
    Ok(())
}

/// `c += a @ b` for one k-block; all three share a dtype (bool computes as int64 and is
/// turned back by [`finish`]). Float products use `threads` threads.
pub fn accumulate(c: &mut Block, a: &Block, b: &Block, threads: usize) -> Result<()> {
    match (c, a, b) {
        (Block::I32(c), Block::I32(a), Block::I32(b)) => accumulate_typed(c, a, b),
        (Block::I64(c), Block::I64(a), Block::I64(b)) => accumulate_typed(c, a, b),
        (Block::F32(c), Block::F32(a), Block::F32(b)) => accumulate_float(c, a, b, threads),
        (Block::F64(c), Block::F64(a), Block::F64(b)) => accumulate_float(c, a, b, threads),
        (Block::I64(c), a @ Block::Bool(_), b @ Block::Bool(_)) => {
            let (Block::I64(a), Block::I64(b)) = (
                a.clone().cast(super::expr::DType::I64),
                b.clone().cast(super::expr::DType::I64),
            ) else {
                return Err(Error::internal("bool matmul cast"));
            };
            accumulate_typed(c, &a, &b)
        }
        (c, a, b) => Err(Error::internal(format!(
            "matmul of {} and {} into {}",
            a.dtype().name(),
            b.dtype().name(),
            c.dtype().name()
        ))),
    }
}

/// The zero tile an output region starts from (int64 for a bool product).
pub fn zeros(dtype: super::expr::DType, shape: &[usize]) -> Block {
    let d = if dtype == super::expr::DType::Bool {
        super::expr::DType::I64
    } else {
        dtype
    };
    Block::zeros(d, shape)
}

/// The finished tile in the product's dtype.
pub fn finish(tile: Block, dtype: super::expr::DType) -> Block {
    tile.cast(dtype)
}
