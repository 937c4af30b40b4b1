//! The inner products of `@`: one k-block of an output tile at a time, accumulated in place.
//! Floats go through ndarray's `general_mat_mul`, which runs matrixmultiply's packed GEMM
//! kernels (AVX2/FMA when the CPU has them); integers through ndarray's generic product.

use ndarray::linalg::{general_mat_mul, general_mat_vec_mul};
use ndarray::{ArrayD, Ix1, Ix2, LinalgScalar};

use super::block::Block;
use crate::error::{Error, Result};

fn accumulate_typed<T: LinalgScalar>(
    c: &mut ArrayD<T>,
    a: &ArrayD<T>,
    b: &ArrayD<T>,
) -> Result<()> {
    let shape_err = |e: ndarray::ShapeError| Error::internal(format!("matmul operands: {e}"));
    match (a.ndim(), b.ndim()) {
        (2, 2) => {
            let a = a.view().into_dimensionality::<Ix2>().map_err(shape_err)?;
            let b = b.view().into_dimensionality::<Ix2>().map_err(shape_err)?;
            let mut c = c
                .view_mut()
                .into_dimensionality::<Ix2>()
                .map_err(shape_err)?;
            general_mat_mul(T::one(), &a, &b, T::one(), &mut c);
        }
        (2, 1) => {
            let a = a.view().into_dimensionality::<Ix2>().map_err(shape_err)?;
            let b = b.view().into_dimensionality::<Ix1>().map_err(shape_err)?;
            let mut c = c
                .view_mut()
                .into_dimensionality::<Ix1>()
                .map_err(shape_err)?;
            general_mat_vec_mul(T::one(), &a, &b, T::one(), &mut c);
        }
        (1, 2) => {
            let a = a.view().into_dimensionality::<Ix1>().map_err(shape_err)?;
            let b = b.view().into_dimensionality::<Ix2>().map_err(shape_err)?;
            let mut c = c
                .view_mut()
                .into_dimensionality::<Ix1>()
                .map_err(shape_err)?;
            general_mat_vec_mul(T::one(), &b.t(), &a, T::one(), &mut c);
        }
        (1, 1) => {
            let a = a.view().into_dimensionality::<Ix1>().map_err(shape_err)?;
            let b = b.view().into_dimensionality::<Ix1>().map_err(shape_err)?;
            let d = a.dot(&b);
            c.mapv_inplace(|x| x + d);
        }
        (x, y) => return Err(Error::internal(format!("matmul of {x}-d and {y}-d blocks"))),
    }
    Ok(())
}

/// `c += a @ b` for one k-block; all three share a dtype (bool computes as int64 and is
/// turned back by [`finish`]).
pub fn accumulate(c: &mut Block, a: Block, b: Block) -> Result<()> {
    match (c, a, b) {
        (Block::I32(c), Block::I32(a), Block::I32(b)) => accumulate_typed(c, &a, &b),
        (Block::I64(c), Block::I64(a), Block::I64(b)) => accumulate_typed(c, &a, &b),
        (Block::F32(c), Block::F32(a), Block::F32(b)) => accumulate_typed(c, &a, &b),
        (Block::F64(c), Block::F64(a), Block::F64(b)) => accumulate_typed(c, &a, &b),
        (Block::I64(c), a @ Block::Bool(_), b @ Block::Bool(_)) => {
            let (Block::I64(a), Block::I64(b)) = (
                a.cast(super::expr::DType::I64),
                b.cast(super::expr::DType::I64),
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
