//! `kask gen`: the db-benchmark data sets have the layout, sizes and key overlaps of the spec;
//! random arrays hold the same values whichever codec stores them.

use std::collections::HashSet;

use datafusion::arrow::array::{Array, Int64Array, RecordBatch};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use kask_worker::datagen::sort::{RECORD, SortGen, schema};
use kask_worker::datagen::{GenFormat, groupby::GroupbyGen, join::JoinGen};

fn read_dir(dir: &std::path::Path) -> Vec<RecordBatch> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            let r = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(f).expect("open"))
                .expect("parquet");
            r.build()
                .expect("reader")
                .map(|b| b.expect("batch"))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn ints(batches: &[RecordBatch], col: &str) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let a = b.column_by_name(col).expect("column");
            let a = a
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("int64")
                .clone();
            (0..a.len()).map(move |i| a.value(i)).collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn groupby_data_has_the_columns_rows_files_and_nulls_asked_for() {
    let out = tempfile::tempdir().expect("tempdir");
    let g = GroupbyGen {
        rows: 20_000,
        groups: 10,
        nas: 5,
        seed: 3,
        partitions: 3,
        format: GenFormat::Parquet,
    };
    let dir = g.write(out.path()).expect("gen");
    assert!(dir.ends_with("G1_2e4_1e1_5_0"), "{}", dir.display());
    assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), 3);
    let batches = read_dir(&dir);
    let names: Vec<String> = batches[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        ["id1", "id2", "id3", "id4", "id5", "id6", "v1", "v2", "v3"]
    );
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 20_000);
    let nulls: usize = batches.iter().map(|b| b.column(6).null_count()).sum();
    assert!(
        (600..1400).contains(&nulls),
        "about 5% nulls in v1: {nulls}"
    );
}

#[test]
fn join_keys_overlap_as_the_spec_says() {
    let out = tempfile::tempdir().expect("tempdir");
    let g = JoinGen {
        rows: 10_000,
        seed: 5,
        partitions: 2,
        format: GenFormat::Parquet,
    };
    let dir = g.write(out.path()).expect("gen");
    let x = read_dir(&dir.join("x"));
    let big = read_dir(&dir.join("big"));
    let medium = read_dir(&dir.join("medium"));
    assert_eq!(x.iter().map(|b| b.num_rows()).sum::<usize>(), 10_000);
    assert_eq!(
        medium.iter().map(|b| b.num_rows()).sum::<usize>(),
        10,
        "N/1e3 rows, one per key"
    );
    let big_keys: HashSet<i64> = ints(&big, "id3").into_iter().collect();
    assert_eq!(
        big_keys.len(),
        big.iter().map(|b| b.num_rows()).sum::<usize>(),
        "big has one row per id3 key"
    );
    assert_eq!(
        big_keys.len(),
        10_000,
        "0.9n shared keys and 0.1n right-only keys"
    );
    let x_keys: HashSet<i64> = ints(&x, "id3").into_iter().collect();
    let shared = x_keys.intersection(&big_keys).count() as f64 / x_keys.len() as f64;
    assert!(
        (0.85..0.95).contains(&shared),
        "about 90% of x's keys are in big: {shared}"
    );
}

#[test]
fn array_data_is_the_same_values_raw_or_compressed() {
    use kask_worker::array::block::Block;
    use kask_worker::array::expr::DType;
    use kask_worker::array::zarr;
    use kask_worker::datagen::array::ArrayGen;
    use kask_worker::store::Store;

    crate::support::run(async {
        let out = tempfile::tempdir().expect("tempdir");
        let mut values = Vec::new();
        for compress in [true, false] {
            let dir = out
                .path()
                .join(if compress { "zstd.zarr" } else { "raw.zarr" });
            let g = ArrayGen {
                shape: vec![30, 7],
                chunks: vec![8, 4],
                dtype: DType::F64,
                seed: 5,
                compress,
            };
            assert_eq!(g.write(&dir).await.expect("gen"), 8, "4 x 2 chunks");
            let meta: serde_json::Value =
                serde_json::from_slice(&std::fs::read(dir.join("zarr.json")).expect("zarr.json"))
                    .expect("json");
            let codecs: Vec<&str> = meta["codecs"]
                .as_array()
                .expect("codecs")
                .iter()
                .map(|c| c["name"].as_str().expect("name"))
                .collect();
            let want: &[&str] = if compress {
                &["bytes", "zstd"]
            } else {
                &["bytes"]
            };
            assert_eq!(codecs, want);
            let store = Store::local_dir(&dir).expect("store");
            let (array, _) = zarr::open_input(&store, "a", "", Default::default())
                .await
                .expect("opens");
            let Block::F64(a) = zarr::read(&array, "a", "a", &[0..30, 0..7], DType::F64)
                .await
                .expect("reads")
            else {
                panic!("float64");
            };
            assert!(
                a.iter().all(|v| (0.0..1.0).contains(v)),
                "uniform in [0, 1)"
            );
            values.push(a);
        }
        assert_eq!(
            values[0], values[1],
            "the codec changes only the bytes stored"
        );
    });
}

#[test]
fn sort_records_are_100_bytes_numbered_once_and_the_same_seed_writes_the_same_keys() {
    use datafusion::arrow::array::AsArray;
    let records = SortGen {
        records: 10_001,
        seed: 7,
        partitions: 3,
    };
    let (a, b) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let da = records.write(a.path()).expect("written");
    let db = records.write(b.path()).expect("written");
    assert_eq!(da.file_name(), Some(std::ffi::OsStr::new("sort_10001")));
    assert_eq!(std::fs::read_dir(&da).expect("dir").count(), 3);
    let keys_of = |batches: &[RecordBatch]| -> Vec<Vec<u8>> {
        batches
            .iter()
            .flat_map(|b| {
                let k = b.column(0).as_fixed_size_binary().clone();
                (0..k.len()).map(move |i| k.value(i).to_vec())
            })
            .collect()
    };
    let ra = read_dir(&da);
    let mut numbers = Vec::new();
    for batch in &ra {
        assert_eq!(batch.schema(), schema());
        let k = batch.column(0).as_fixed_size_binary();
        let p = batch.column(1).as_fixed_size_binary();
        for i in 0..batch.num_rows() {
            assert_eq!(k.value(i).len() + p.value(i).len(), RECORD as usize);
            let hex = std::str::from_utf8(&p.value(i)[..32]).expect("ascii");
            numbers.push(u64::from_str_radix(hex, 16).expect("a number"));
        }
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (0..10_001).collect::<Vec<u64>>());
    let keys = keys_of(&ra);
    assert_eq!(keys, keys_of(&read_dir(&db)));
    // Random keys: no two of 10,001 10-byte keys alike.
    let mut distinct = keys.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), keys.len());
}

#[test]
fn a_payload_spells_its_record_number() {
    let p = kask_worker::datagen::sort::payload(0xABC);
    assert_eq!(&p[..32], b"00000000000000000000000000000ABC");
    assert_eq!(&p[32..34], b"  ");
    assert_eq!(&p[34..38], &[b'A' + (0xABC % 26) as u8; 4]);
    assert_eq!(&p[86..88], b"\r\n");
}
