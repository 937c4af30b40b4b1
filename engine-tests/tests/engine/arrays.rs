//! Array jobs against a plain reference written here: elementwise operations with
//! broadcasting, every reduction over every axis choice, `@`, slices and `.T`, over random
//! shapes and chunkings (uneven last chunks, a single chunk, one element) and task sizes; and
//! the errors of bad inputs.

use std::ops::Range;

use ndarray::{ArrayD, IxDyn, SliceInfoElem};
use proptest::prelude::*;

use crate::support::{Lab, run};
use kask_worker::array::block::Block;
use kask_worker::array::expr::DType;
use kask_worker::array::zarr;

/// A test array: its shape and row-major values.
#[derive(Clone, Debug)]
struct Arr {
    shape: Vec<usize>,
    data: Vec<f64>,
}

impl Arr {
    fn at(&self, idx: &[usize]) -> f64 {
        let mut off = 0;
        for (i, n) in idx.iter().zip(&self.shape) {
            off = off * n + i;
        }
        self.data[off]
    }
    fn len(&self) -> usize {
        self.shape.iter().product()
    }
}

fn indices(shape: &[usize]) -> Vec<Vec<usize>> {
    let mut out = vec![vec![]];
    for &n in shape {
        out = out
            .into_iter()
            .flat_map(|p| {
                (0..n).map(move |i| {
                    let mut q = p.clone();
                    q.push(i);
                    q
                })
            })
            .collect();
    }
    out
}

fn block_of(a: &Arr, dtype: DType) -> Block {
    let f = ArrayD::from_shape_vec(IxDyn(&a.shape), a.data.clone()).expect("shape");
    Block::F64(f).cast(dtype)
}

/// Writes `a` as a Zarr v3 array of `dtype` with chunk shape `chunks`.
async fn put_array(lab: &Lab, path: &str, a: &Arr, chunks: &[u64], dtype: DType) {
    let shape: Vec<u64> = a.shape.iter().map(|&n| n as u64).collect();
    let array = zarr::new_array(zarr::storage_at(&lab.store, path), &shape, chunks, dtype)
        .expect("metadata");
    lab.put(
        &format!("{path}/zarr.json"),
        zarr::metadata_json(&array).expect("json"),
    )
    .await;
    let all = block_of(a, dtype);
    let grid: Vec<u64> = shape
        .iter()
        .zip(chunks)
        .map(|(s, c)| s.div_ceil(*c))
        .collect();
    let mut chunk_indices = Vec::new();
    zarr::for_each_index(&grid, |i| chunk_indices.push(i.to_vec()));
    for idx in chunk_indices {
        let ranges: Vec<Range<usize>> = idx
            .iter()
            .zip(chunks)
            .zip(&shape)
            .map(|((i, c), s)| (i * c) as usize..((i + 1) * c).min(*s) as usize)
            .collect();
        let full: Vec<usize> = chunks.iter().map(|&c| c as usize).collect();
        let piece = pad(&all, &ranges, &full);
        zarr::write_chunk(&array, &idx, piece).await.expect("chunk");
    }
}

fn pad(all: &Block, r: &[Range<usize>], full: &[usize]) -> Block {
    let info: Vec<SliceInfoElem> = r.iter().map(|x| SliceInfoElem::from(x.clone())).collect();
    let local: Vec<SliceInfoElem> = r.iter().map(|x| SliceInfoElem::from(0..x.len())).collect();
    macro_rules! pad_as {
        ($a:expr, $v:ident) => {{
            let mut out = ArrayD::default(IxDyn(full));
            out.slice_mut(local.as_slice())
                .assign(&$a.slice(info.as_slice()));
            Block::$v(out)
        }};
    }
    match all {
        Block::Bool(a) => pad_as!(a, Bool),
        Block::I32(a) => pad_as!(a, I32),
        Block::I64(a) => pad_as!(a, I64),
        Block::F32(a) => pad_as!(a, F32),
        Block::F64(a) => pad_as!(a, F64),
    }
}

/// Reads an output array as float64 values, with its dtype.
async fn get_array(lab: &Lab, path: &str) -> (Arr, DType) {
    let array = zarr::ZarrArray::async_open(zarr::storage_at(&lab.store, path), "/")
        .await
        .expect("output opens");
    let meta = lab
        .manifest(path)
        .await
        .expect("committed")
        .array
        .expect("array");
    let dtype = zarr::dtype_from_name(&meta.dtype).expect("dtype");
    let region: Vec<Range<u64>> = array.shape().iter().map(|&n| 0..n).collect();
    let block = zarr::read(&array, "out", "out", &region, dtype)
        .await
        .expect("read");
    let shape = block.shape().to_vec();
    let data = block.to_f64().iter().copied().collect();
    (Arr { shape, data }, dtype)
}

fn job(expr: &str, inputs: &[&str], task_bytes: u64) -> String {
    let inputs: String = inputs
        .iter()
        .map(|n| format!("      {n}: {{path: {n}.zarr}}\n"))
        .collect();
    format!(
        "  array:\n    inputs:\n{inputs}    expr: \"{expr}\"\n  targetTaskBytes: {task_bytes}\n  output: {{path: out.zarr}}\n"
    )
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn assert_arr(got: &Arr, want: &Arr, what: &str) {
    assert_eq!(got.shape, want.shape, "shape of {what}");
    for (i, (g, w)) in got.data.iter().zip(&want.data).enumerate() {
        assert!(close(*g, *w), "{what}: element {i} is {g}, expected {w}");
    }
}

// ---- strategies ----

fn shape(max_dims: usize, max_len: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1..=max_len, 1..=max_dims)
}

fn values(n: usize) -> impl Strategy<Value = Vec<f64>> {
    // Quarters keep sums exact and products small.
    prop::collection::vec((-8i32..8).prop_map(|x| f64::from(x) / 4.0), n)
}

fn arr(shape: Vec<usize>) -> impl Strategy<Value = Arr> {
    let n = shape.iter().product();
    values(n).prop_map(move |data| Arr {
        shape: shape.clone(),
        data,
    })
}

fn task_bytes() -> impl Strategy<Value = u64> {
    prop::sample::select(vec![8u64, 64, 1 << 30])
}

// ---- references ----

fn broadcast(a: &Arr, b: &Arr, f: impl Fn(f64, f64) -> f64) -> Arr {
    let n = a.shape.len().max(b.shape.len());
    let dim = |s: &[usize], i: usize| {
        if i + s.len() >= n {
            s[i + s.len() - n]
        } else {
            1
        }
    };
    let shape: Vec<usize> = (0..n)
        .map(|i| dim(&a.shape, i).max(dim(&b.shape, i)))
        .collect();
    let pick = |x: &Arr, idx: &[usize]| {
        let off = n - x.shape.len();
        let i: Vec<usize> = x
            .shape
            .iter()
            .enumerate()
            .map(|(k, &len)| if len == 1 { 0 } else { idx[k + off] })
            .collect();
        x.at(&i)
    };
    let data = indices(&shape)
        .iter()
        .map(|idx| f(pick(a, idx), pick(b, idx)))
        .collect();
    Arr { shape, data }
}

fn reduce(a: &Arr, axes: &[usize], keepdims: bool, op: &str) -> Arr {
    let out_shape: Vec<usize> = a
        .shape
        .iter()
        .enumerate()
        .filter_map(|(i, &n)| match (axes.contains(&i), keepdims) {
            (false, _) => Some(n),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect();
    let mut groups: Vec<Vec<f64>> = vec![vec![]; out_shape.iter().product()];
    for idx in indices(&a.shape) {
        let mut off = 0;
        for (i, &x) in idx.iter().enumerate() {
            match (axes.contains(&i), keepdims) {
                (false, _) => off = off * a.shape[i] + x,
                (true, true) => {}
                (true, false) => {}
            }
        }
        groups[off].push(a.at(&idx));
    }
    let data = groups
        .into_iter()
        .map(|g| {
            let n = g.len() as f64;
            let mean = g.iter().sum::<f64>() / n;
            let var = g.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
            match op {
                "sum" => g.iter().sum(),
                "prod" => g.iter().product(),
                "min" => g.iter().copied().fold(f64::INFINITY, f64::min),
                "max" => g.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                "mean" => mean,
                "var" => var,
                _ => var.sqrt(),
            }
        })
        .collect();
    Arr {
        shape: out_shape,
        data,
    }
}

fn matmul(a: &Arr, b: &Arr) -> Arr {
    let (m, k) = (a.shape[0], a.shape[1]);
    let n = b.shape[1];
    let mut data = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            data[i * n + j] = (0..k).map(|p| a.at(&[i, p]) * b.at(&[p, j])).sum();
        }
    }
    Arr {
        shape: vec![m, n],
        data,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn elementwise_operations_broadcast_as_numpy_does(
        (a, b) in shape(3, 6).prop_flat_map(|s| {
            // b: a trailing part of a's shape, some axes stretched from 1.
            let tail = s.len().saturating_sub(2)..=s.len();
            let sa = s.clone();
            (arr(s), prop::sample::select(tail.collect::<Vec<_>>()), prop::collection::vec(any::<bool>(), 3))
                .prop_flat_map(move |(a, keep, ones)| {
                    let bs: Vec<usize> = sa[sa.len() - keep..]
                        .iter()
                        .zip(&ones)
                        .map(|(&n, &one)| if one { 1 } else { n })
                        .collect();
                    let bs = if bs.is_empty() { vec![1] } else { bs };
                    (Just(a), arr(bs))
                })
        }),
        op in prop::sample::select(vec!["+", "-", "*", "/"]),
        seed in 0u64..1000,
        tb in task_bytes(),
    ) {
        let chunks_a: Vec<u64> = a.shape.iter().map(|&n| (seed as usize % n + 1) as u64).collect();
        let chunks_b: Vec<u64> = b.shape.iter().map(|&n| ((seed as usize / 7) % n + 1) as u64).collect();
        let f: fn(f64, f64) -> f64 = match op {
            "+" => |x, y| x + y,
            "-" => |x, y| x - y,
            "*" => |x, y| x * y,
            _ => |x, y| x / y,
        };
        let want = broadcast(&broadcast(&a, &b, f), &Arr { shape: vec![], data: vec![2.0] }, |x, y| x * y + 1.0);
        run(async {
            let lab = Lab::local();
            put_array(&lab, "a.zarr", &a, &chunks_a, DType::F64).await;
            put_array(&lab, "b.zarr", &b, &chunks_b, DType::F64).await;
            lab.run(&job(&format!("(a {op} b) * 2 + 1"), &["a", "b"], tb)).await.expect("runs");
            let (got, dtype) = get_array(&lab, "out.zarr").await;
            assert_eq!(dtype, DType::F64);
            assert_arr(&got, &want, op);
        });
    }

    #[test]
    fn reductions_match_over_every_axis_choice(
        a in shape(3, 6).prop_flat_map(arr),
        op in prop::sample::select(vec!["sum", "prod", "min", "max", "mean", "var", "std"]),
        axes_mask in prop::collection::vec(any::<bool>(), 3),
        none in any::<bool>(),
        keepdims in any::<bool>(),
        chunk_seed in 0usize..100,
        tb in task_bytes(),
    ) {
        let nd = a.shape.len();
        let axes: Vec<usize> = if none { (0..nd).collect() } else {
            let picked: Vec<usize> = (0..nd).filter(|&i| axes_mask[i]).collect();
            if picked.is_empty() { vec![nd - 1] } else { picked }
        };
        let axis_arg = if none {
            "None".to_string()
        } else if axes.len() == 1 {
            format!("{}", axes[0] as i64 - nd as i64) // negative axes too
        } else {
            format!("({})", axes.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", "))
        };
        let chunks: Vec<u64> = a.shape.iter().map(|&n| (chunk_seed % n + 1) as u64).collect();
        let want = reduce(&a, &axes, keepdims, op);
        let keep = if keepdims { "True" } else { "False" };
        let expr = format!("a.{op}(axis={axis_arg}, keepdims={keep})");
        run(async {
            let lab = Lab::local();
            put_array(&lab, "a.zarr", &a, &chunks, DType::F64).await;
            lab.run(&job(&expr, &["a"], tb)).await.expect("runs");
            let (got, _) = get_array(&lab, "out.zarr").await;
            assert_arr(&got, &want, &expr);
        });
    }

    #[test]
    fn matmul_matches_the_triple_loop(
        (m, k, n) in (1usize..9, 1usize..9, 1usize..9),
        seed in 0usize..1000,
        vector in any::<bool>(),
        tb in task_bytes(),
    ) {
        let a = Arr { shape: vec![m, k], data: (0..m * k).map(|i| ((i * 7 + seed) % 11) as f64 - 5.0).collect() };
        let b = Arr { shape: vec![k, n], data: (0..k * n).map(|i| ((i * 3 + seed) % 13) as f64 - 6.0).collect() };
        let (ca, cb) = (vec![(seed % m + 1) as u64, (seed % k + 1) as u64], vec![(seed / 3 % k + 1) as u64, (seed % n + 1) as u64]);
        let (expr, want) = if vector {
            // Matrix-vector: a @ b[:, 0].
            let col = Arr { shape: vec![k, 1], data: (0..k).map(|p| b.at(&[p, 0])).collect() };
            let r = matmul(&a, &col);
            ("a @ b[:, 0]".to_string(), Arr { shape: vec![m], data: r.data })
        } else {
            ("a @ b".to_string(), matmul(&a, &b))
        };
        run(async {
            let lab = Lab::local();
            put_array(&lab, "a.zarr", &a, &ca, DType::F64).await;
            put_array(&lab, "b.zarr", &b, &cb, DType::I32).await;
            lab.run(&job(&expr, &["a", "b"], tb)).await.expect("runs");
            let (got, dtype) = get_array(&lab, "out.zarr").await;
            assert_eq!(dtype, DType::F64, "float64 @ int32 is float64");
            assert_arr(&got, &want, &expr);
        });
    }

    #[test]
    fn slices_and_transposes_pick_the_same_elements(
        a in shape(2, 9).prop_flat_map(arr),
        starts in prop::collection::vec(0usize..9, 2),
        lens in prop::collection::vec(1usize..9, 2),
        steps in prop::collection::vec(1usize..4, 2),
        chunk_seed in 0usize..50,
        tb in task_bytes(),
    ) {
        let nd = a.shape.len();
        let ranges: Vec<(usize, usize, usize)> = (0..nd)
            .map(|i| {
                let s = starts[i] % a.shape[i];
                (s, (s + lens[i]).min(a.shape[i]), steps[i])
            })
            .collect();
        let picked: Vec<Vec<usize>> = ranges.iter().map(|&(s, e, st)| (s..e).step_by(st).collect()).collect();
        let sliced_shape: Vec<usize> = picked.iter().map(Vec::len).collect();
        let mut data = Vec::new();
        for idx in indices(&sliced_shape) {
            let src: Vec<usize> = idx.iter().enumerate().map(|(ax, &i)| picked[ax][i]).collect();
            data.push(a.at(&src));
        }
        let sliced = Arr { shape: sliced_shape.clone(), data };
        // .T reverses the axes.
        let mut t_shape = sliced_shape.clone();
        t_shape.reverse();
        let t_data = indices(&t_shape)
            .iter()
            .map(|idx| {
                let mut r = idx.clone();
                r.reverse();
                sliced.at(&r)
            })
            .collect();
        let want = Arr { shape: t_shape, data: t_data };
        let sl: Vec<String> = ranges.iter().map(|(s, e, st)| format!("{s}:{e}:{st}")).collect();
        let expr = format!("a[{}].T", sl.join(", "));
        let chunks: Vec<u64> = a.shape.iter().map(|&n| (chunk_seed % n + 1) as u64).collect();
        run(async {
            let lab = Lab::local();
            put_array(&lab, "a.zarr", &a, &chunks, DType::F64).await;
            lab.run(&job(&expr, &["a"], tb)).await.expect("runs");
            let (got, _) = get_array(&lab, "out.zarr").await;
            assert_arr(&got, &want, &expr);
        });
    }

    #[test]
    fn integer_floor_division_modulo_and_where_follow_python(
        a in shape(2, 6).prop_flat_map(arr),
        divisor in prop::sample::select(vec![-3i32, -2, 2, 3]),
        chunk_seed in 0usize..50,
    ) {
        let ints = Arr { shape: a.shape.clone(), data: a.data.iter().map(|x| (x * 4.0).round()).collect() };
        let d = f64::from(divisor);
        let want = Arr {
            shape: ints.shape.clone(),
            data: ints
                .data
                .iter()
                .map(|&x| {
                    let q = (x / d).floor();
                    let r = x - q * d;
                    if x > 0.0 { q } else { r }
                })
                .collect(),
        };
        let chunks: Vec<u64> = a.shape.iter().map(|&n| (chunk_seed % n + 1) as u64).collect();
        let expr = format!("where(a > 0, a // {divisor}, a % {divisor})");
        run(async {
            let lab = Lab::local();
            put_array(&lab, "a.zarr", &ints, &chunks, DType::I32).await;
            lab.run(&job(&expr, &["a"], 16)).await.expect("runs");
            let (got, dtype) = get_array(&lab, "out.zarr").await;
            assert_eq!(dtype, DType::I32, "int32 with a Python int stays int32");
            assert_arr(&got, &want, &expr);
        });
    }
}

#[test]
fn a_product_of_one_tile_on_every_core_equals_the_triple_loop() {
    // One chunk each: one task, whose product runs on every core (large enough for gemm to
    // split it between them). Small integers keep every sum exact.
    let (m, k, n) = (257, 300, 263);
    let a = Arr {
        shape: vec![m, k],
        data: (0..m * k).map(|i| ((i * 7) % 11) as f64 - 5.0).collect(),
    };
    let b = Arr {
        shape: vec![k, n],
        data: (0..k * n).map(|i| ((i * 3) % 13) as f64 - 6.0).collect(),
    };
    let want = matmul(&a, &b);
    run(async {
        let lab = Lab::local();
        put_array(&lab, "a.zarr", &a, &[m as u64, k as u64], DType::F64).await;
        put_array(&lab, "b.zarr", &b, &[k as u64, n as u64], DType::F64).await;
        lab.run(&job("a @ b", &["a", "b"], 1 << 30))
            .await
            .expect("runs");
        let (got, dtype) = get_array(&lab, "out.zarr").await;
        assert_eq!(dtype, DType::F64);
        assert_eq!(got.data, want.data, "a @ b, exactly");
    });
}

#[test]
fn one_element_and_single_chunk_arrays_reduce_to_a_0d_result() {
    run(async {
        let lab = Lab::local();
        let a = Arr {
            shape: vec![1],
            data: vec![2.5],
        };
        put_array(&lab, "a.zarr", &a, &[1], DType::F32).await;
        let b = Arr {
            shape: vec![3, 4],
            data: (0..12).map(f64::from).collect(),
        };
        put_array(&lab, "b.zarr", &b, &[3, 4], DType::I64).await;
        lab.run(&job("a.sum() + b.max()", &["a", "b"], 1 << 30))
            .await
            .expect("runs");
        let (got, dtype) = get_array(&lab, "out.zarr").await;
        assert_eq!(dtype, DType::F64, "float32 + int64 is float64");
        assert_eq!(got.shape, Vec::<usize>::new());
        assert_eq!(got.data, [13.5]);
        assert_eq!(got.len(), 1);
    });
}

#[test]
fn array_jobs_run_on_s3_too() {
    let Some(lab) = Lab::s3() else { return };
    run(async move {
        let a = Arr {
            shape: vec![7, 5],
            data: (0..35).map(f64::from).collect(),
        };
        put_array(&lab, "a.zarr", &a, &[3, 2], DType::F64).await;
        let s = lab
            .run(&job("(a * a).sum(axis=0)", &["a"], 16))
            .await
            .expect("runs on MinIO");
        let (got, _) = get_array(&lab, "out.zarr").await;
        assert_arr(
            &got,
            &reduce(&broadcast(&a, &a, |x, y| x * y), &[0], false, "sum"),
            "sum of squares",
        );
        assert!(
            lab.store
                .list(&format!("out.zarr/_kask/{}", s.manifest.job_id))
                .await
                .expect("list")
                .is_empty(),
            "scratch removed"
        );
    });
}

// ---- bad input ----

async fn error_of(lab: &Lab, body: &str) -> String {
    lab.run(body).await.expect_err("the job fails").to_string()
}

#[test]
fn a_missing_chunk_fails_before_any_task_naming_the_chunk_unless_fill_is_set() {
    run(async {
        let lab = Lab::local();
        let a = Arr {
            shape: vec![4, 4],
            data: (0..16).map(f64::from).collect(),
        };
        put_array(&lab, "a.zarr", &a, &[2, 2], DType::F64).await;
        lab.store.delete("a.zarr/c/1/0").await.expect("delete");
        let err = error_of(&lab, &job("a.sum()", &["a"], 16)).await;
        assert!(err.contains("input \"a\""), "{err}");
        assert!(
            err.contains("1 of the 4 chunks of a.zarr are missing, e.g. c/1/0 (chunk [1, 0])"),
            "{err}"
        );
        assert!(err.contains("missingChunks: fill"), "{err}");
        assert!(
            lab.store.list("out.zarr").await.expect("list").is_empty(),
            "nothing written"
        );
        let fill = job("a.sum()", &["a"], 16)
            .replace("{path: a.zarr}", "{path: a.zarr, missingChunks: fill}");
        lab.run(&fill)
            .await
            .expect("fill reads the lost chunk as zeros");
        let (got, _) = get_array(&lab, "out.zarr").await;
        assert_eq!(got.data, [120.0 - (8.0 + 9.0 + 12.0 + 13.0)]);
    });
}

#[test]
fn shape_mismatches_and_unknown_names_fail_at_plan_time_naming_both_operands() {
    run(async {
        let lab = Lab::local();
        put_array(
            &lab,
            "a.zarr",
            &Arr {
                shape: vec![3, 4],
                data: vec![0.0; 12],
            },
            &[3, 4],
            DType::F64,
        )
        .await;
        put_array(
            &lab,
            "b.zarr",
            &Arr {
                shape: vec![5],
                data: vec![0.0; 5],
            },
            &[5],
            DType::I32,
        )
        .await;
        let err = error_of(&lab, &job("a + b", &["a", "b"], 16)).await;
        assert!(err.starts_with("spec.array.expr: at column 1: cannot broadcast a (shape (3, 4)) with b (shape (5,))"), "{err}");
        let err = error_of(&lab, &job("(a * c).sum()", &["a", "b"], 16)).await;
        assert!(
            err.contains("at column 6: unknown name \"c\" (inputs: a, b)"),
            "{err}"
        );
        assert!(err.contains("      ^"), "a caret under the name: {err}");
        let err = error_of(&lab, &job("a @ b", &["a", "b"], 16)).await;
        assert!(err.contains("(3, 4)") && err.contains("(5,)"), "{err}");
        assert!(
            lab.store.list("out.zarr").await.expect("list").is_empty(),
            "no task ran"
        );
    });
}

#[test]
fn an_unsupported_dtype_is_named() {
    run(async {
        let lab = Lab::local();
        let meta = r#"{"zarr_format":3,"node_type":"array","shape":[2],"data_type":"uint8",
            "chunk_grid":{"name":"regular","configuration":{"chunk_shape":[2]}},
            "chunk_key_encoding":{"name":"default","configuration":{"separator":"/"}},
            "fill_value":0,"codecs":[{"name":"bytes"}]}"#;
        lab.put("a.zarr/zarr.json", meta.as_bytes().to_vec()).await;
        lab.put("a.zarr/c/0", vec![1u8, 2]).await;
        let err = error_of(&lab, &job("a + 1", &["a"], 16)).await;
        assert!(err.contains("input \"a\": a.zarr holds \"uint8\"; kask computes with bool, int32, int64, float32 and float64"), "{err}");
        let err = error_of(
            &lab,
            &job("a + 1", &["a"], 16).replace("a.zarr}", "nothing.zarr}"),
        )
        .await;
        assert!(err.contains("nothing.zarr is not a Zarr array"), "{err}");
    });
}

/// The array library's block cache: a block is read once, the block used longest ago leaves
/// past the budget, one larger than the budget is returned but not kept, and a failed read is
/// not remembered.
#[tokio::test]
async fn a_block_is_read_once_and_the_oldest_leaves_past_the_budget() {
    use kask_worker::array::block_cache::BlockCache;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn block(n: usize) -> Block {
        Block::F64(ArrayD::zeros(vec![n]))
    }
    let cache = BlockCache::default();
    let reads = AtomicUsize::new(0);
    let read = |n: usize| {
        reads.fetch_add(1, Ordering::SeqCst);
        async move { Ok(block(n)) }
    };
    // 100 f64 = 800 bytes each; a budget of two.
    for key in ["a", "b", "a", "b"] {
        cache
            .get_or_read(key, 1600, || read(100))
            .await
            .expect("read");
    }
    assert_eq!(reads.load(Ordering::SeqCst), 2);
    assert_eq!(cache.bytes(), 1600);
    // `c` pushes out `a`, used longest ago; `b` stays.
    cache
        .get_or_read("c", 1600, || read(100))
        .await
        .expect("read");
    cache
        .get_or_read("b", 1600, || read(100))
        .await
        .expect("read");
    assert_eq!(reads.load(Ordering::SeqCst), 3);
    cache
        .get_or_read("a", 1600, || read(100))
        .await
        .expect("read");
    assert_eq!(reads.load(Ordering::SeqCst), 4);
    // A block larger than the budget is returned, not kept.
    let big = cache
        .get_or_read("big", 1600, || read(1000))
        .await
        .expect("read");
    assert_eq!(big.len(), 1000);
    assert!(cache.bytes() <= 1600);
    let failed = cache
        .get_or_read("bad", 1600, || async {
            Err(kask_worker::Error::internal("no"))
        })
        .await;
    assert!(failed.is_err());
    cache
        .get_or_read("bad", 1600, || read(1))
        .await
        .expect("read after a failure");
}

#[test]
fn a_lone_task_gets_every_core_and_many_tasks_one_each() {
    use kask_worker::array::eval::product_threads;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(product_threads(1), cores);
    assert_eq!(product_threads(0), cores);
    assert_eq!(product_threads(cores * 8), 1);
}
