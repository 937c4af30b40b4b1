mod pruning_tests {
    use std::cmp::Ordering;
    use std::sync::Arc;

    use datafusion::arrow::array::{
        Array, AsArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    };
    use datafusion::arrow::compute::SortOptions;
    use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
    use datafusion::datasource::memory::MemorySourceConfig;
    use datafusion::physical_expr::expressions::Column;
    use datafusion::physical_expr::{PhysicalExpr, PhysicalSortExpr};
    use datafusion::physical_plan::collect;
    use datafusion::prelude::SessionContext;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use kask_relational::group_top_k::{Best, GroupTopKExec, MOST_PACKED_N};

    /// One input row: its place, group, and three sort keys.
    #[derive(Clone, Debug)]
    struct Row {
        id: i64,
        g: i32,
        v: Option<f64>,
        w: Option<i32>,
        s: Option<String>,
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("g", DataType::Int32, false),
            Field::new("v", DataType::Float64, true),
            Field::new("w", DataType::Int32, true),
            Field::new("s", DataType::Utf8, true),
        ]))
    }

    /// Rows in groups `spread` apart (1: a narrow range of keys; a million: wider than the dense
    /// numbering), with few distinct sort values so that many tie.
    fn rows(seed: u64, count: usize, groups: i32, spread: i32) -> Vec<Row> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..count)
            .map(|i| Row {
                id: i as i64,
                g: rng.random_range(0..groups) * spread - 7,
                v: rng
                    .random_bool(0.9)
                    .then(|| f64::from(rng.random_range(-20..20)) / 4.0),
                w: rng.random_bool(0.9).then(|| rng.random_range(0..5)),
                s: rng
                    .random_bool(0.9)
                    .then(|| format!("s{}", rng.random_range(0..12))),
            })
            .collect()
    }

    fn batches(rows: &[Row], size: usize) -> Vec<RecordBatch> {
        rows.chunks(size)
            .map(|c| {
                let columns: Vec<Arc<dyn Array>> = vec![
                    Arc::new(Int64Array::from_iter_values(c.iter().map(|r| r.id))),
                    Arc::new(Int32Array::from_iter_values(c.iter().map(|r| r.g))),
                    Arc::new(Float64Array::from_iter(c.iter().map(|r| r.v))),
                    Arc::new(Int32Array::from_iter(c.iter().map(|r| r.w))),
                    Arc::new(StringArray::from_iter(c.iter().map(|r| r.s.clone()))),
                ];
                RecordBatch::try_new(schema(), columns).expect("batch")
            })
            .collect()
    }

    /// A sort key: its column, descending, nulls first.
    type Key = (&'static str, bool, bool);

    /// `a` against `b` by one key, nulls and direction as the key says.
    fn compare<T: PartialOrd>(
        a: &Option<T>,
        b: &Option<T>,
        (_, descending, nulls_first): Key,
    ) -> Ordering {
        let o = match (a, b) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => {
                return if nulls_first {
                    Ordering::Less
                } else {
                    Ordering::Greater
                };
            }
            (Some(_), None) => {
                return if nulls_first {
                    Ordering::Greater
                } else {
                    Ordering::Less
                };
            }
            (Some(x), Some(y)) => x.partial_cmp(y).expect("no NaN among the values"),
        };
        if descending { o.reverse() } else { o }
    }

    fn row_order(a: &Row, b: &Row, keys: &[Key]) -> Ordering {
        keys.iter()
            .map(|&k| match k.0 {
                "v" => compare(&a.v, &b.v, k),
                "w" => compare(&a.w, &b.w, k),
                _ => compare(&a.s, &b.s, k),
            })
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }

    /// The rows a pruning keeps, computed plainly: those that fewer than `n` earlier rows of their
    /// group sort strictly before.
    fn want(rows: &[Row], keys: &[Key], n: usize) -> Vec<i64> {
        rows.iter()
            .enumerate()
            .filter(|(i, r)| {
                rows[..*i]
                    .iter()
                    .filter(|e| e.g == r.g && row_order(e, r, keys).is_lt())
                    .count()
                    < n
            })
            .map(|(_, r)| r.id)
            .collect()
    }

    fn exec(rows: &[Row], keys: &[Key], n: usize) -> GroupTopKExec {
        let source = MemorySourceConfig::try_new_exec(&[batches(rows, 700)], schema(), None)
            .expect("source");
        let at = |name: &str| schema().index_of(name).expect("column");
        let order = keys
            .iter()
            .map(|&(name, descending, nulls_first)| PhysicalSortExpr {
                expr: Arc::new(Column::new(name, at(name))) as Arc<dyn PhysicalExpr>,
                options: SortOptions {
                    descending,
                    nulls_first,
                },
            })
            .collect();
        let group = Arc::new(Column::new("g", 1)) as Arc<dyn PhysicalExpr>;
        GroupTopKExec::new(source, vec![group], order, n)
    }

    async fn kept(plan: GroupTopKExec) -> Vec<i64> {
        let out = collect(Arc::new(plan), SessionContext::new().task_ctx())
            .await
            .expect("runs");
        out.iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect()
    }

    /// Packed keys (one float; an integer then a float, 14 bytes), keys in rows (a string), and
    /// more rows a group than pack: each keeps exactly the rows the plain computation keeps, in
    /// their order, with groups numbered through the dense array and through a hash table.
    #[tokio::test]
    async fn a_pruning_keeps_the_rows_fewer_than_n_earlier_rows_precede() {
        let orders: [&[Key]; 4] = [
            &[("v", true, true)],
            &[("v", false, false)],
            &[("w", false, true), ("v", true, false)],
            &[("s", true, false), ("w", false, false)],
        ];
        for (seed, (groups, spread)) in [(1u64, (40, 1)), (2, (60, 1_000_003))] {
            let input = rows(seed, 6_000, groups, spread);
            for keys in orders {
                for n in [1, 2, 3, MOST_PACKED_N + 1] {
                    let plan = exec(&input, keys, n);
                    let packs = keys.iter().all(|k| k.0 != "s") && n <= MOST_PACKED_N;
                    let best = Best::new(
                        datafusion::physical_expr::LexOrdering::new(plan.order().to_vec()),
                        &schema(),
                        n,
                    );
                    assert_eq!(matches!(best, Best::Packed { .. }), packs, "{keys:?} n={n}");
                    let got = kept(plan).await;
                    let want = want(&input, keys, n);
                    assert!(want.len() < input.len(), "{keys:?} n={n}: nothing pruned");
                    assert_eq!(got, want, "{keys:?} n={n} spread={spread}");
                }
            }
        }
    }
}

mod tests {
    use kask_relational::group_top_k::*;

    use std::sync::Arc;

    use datafusion::common::ScalarValue;

    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::expressions::{BinaryExpr, CastExpr, Column, Literal};

    use datafusion::physical_expr::PhysicalExpr;

    use datafusion::arrow::datatypes::DataType;

    #[test]
    fn rows_compare_eight_bytes_at_a_time_as_bytes_do() {
        let rows: Vec<Vec<u8>> = (0..300u32)
            .map(|i| {
                let len = (i % 19) as usize;
                (0..len)
                    .map(|j| (i.wrapping_mul(2654435761).rotate_left(j as u32) % 4) as u8 * 85)
                    .collect()
            })
            .collect();
        for a in &rows {
            for b in &rows {
                assert_eq!(before(a, b), a < b, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn only_an_upper_bound_on_a_column_is_a_first_rows_filter() {
        let col = || Arc::new(Column::new("rn", 3)) as Arc<dyn PhysicalExpr>;
        let lit = |v: ScalarValue| Arc::new(Literal::new(v)) as Arc<dyn PhysicalExpr>;
        let cmp = |l, op, r| Arc::new(BinaryExpr::new(l, op, r)) as Arc<dyn PhysicalExpr>;
        let cast = Arc::new(CastExpr::new(col(), DataType::Int64, None)) as Arc<dyn PhysicalExpr>;
        let cases = [
            (
                cmp(col(), Operator::LtEq, lit(ScalarValue::UInt64(Some(2)))),
                Some((3, 2)),
            ),
            (
                cmp(col(), Operator::Lt, lit(ScalarValue::Int64(Some(3)))),
                Some((3, 2)),
            ),
            (
                cmp(cast, Operator::LtEq, lit(ScalarValue::Int64(Some(5)))),
                Some((3, 5)),
            ),
            (
                cmp(col(), Operator::Lt, lit(ScalarValue::Int64(Some(0)))),
                None,
            ),
            (
                cmp(col(), Operator::GtEq, lit(ScalarValue::Int64(Some(2)))),
                None,
            ),
            (
                cmp(col(), Operator::LtEq, lit(ScalarValue::Int64(None))),
                None,
            ),
            (
                cmp(col(), Operator::LtEq, lit(ScalarValue::Float64(Some(2.0)))),
                None,
            ),
        ];
        for (predicate, want) in cases {
            assert_eq!(at_most(&predicate), want, "{predicate}");
        }
    }
}
