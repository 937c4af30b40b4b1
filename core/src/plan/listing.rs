//! The planner's I/O: which files each input's glob matches, their sizes, Parquet row-group
//! boundaries and the columns, checked to agree across files.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::parquet::arrow::parquet_to_arrow_schema;
use datafusion::prelude::SessionContext;
use futures::{FutureExt, StreamExt, TryStreamExt};
use globset::GlobBuilder;

use crate::error::{Error, Result, store_failure};
use crate::store::Store;
use kask_api::{CsvOptions, Format, Input};

/// Every input of a job, listed.
#[derive(Clone, Debug)]
pub struct Listing {
    /// By input name.
    pub inputs: BTreeMap<String, ListedInput>,
}

/// One listed input.
#[derive(Clone, Debug)]
pub struct ListedInput {
    /// File format.
    pub format: Format,
    /// CSV options.
    pub csv: CsvOptions,
    /// The merged schema of all files, then the folder keys' columns.
    pub schema: SchemaRef,
    /// The folder keys of a Hive-partitioned input: the last columns of `schema`.
    pub hive: Vec<String>,
    /// The files, sorted by path.
    pub files: Vec<ListedFile>,
    /// Whether only the first file was inspected: a Hive-partitioned input, whose folders a
    /// query's filters may skip, so that the files there need not be opened. Until
    /// [`inspect_files`] reads the files kept, `schema` holds the first file's columns and every
    /// file's `splits` is [`Splits::Whole`].
    pub sampled: bool,
}

impl Listing {
    /// Whether some input was only sampled (see [`ListedInput::sampled`]).
    pub fn sampled(&self) -> bool {
        self.inputs.values().any(|i| i.sampled)
    }
}

/// One file of an input.
#[derive(Clone, Debug, PartialEq)]
pub struct ListedFile {
    /// Path relative to the storage root.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// ETag or modification time: a rerun with changed files gets a new job id.
    pub version: String,
    /// How the file may be cut into tasks.
    pub splits: Splits,
    /// Its folder keys' values (Hive partitioning), in the order of [`ListedInput::hive`].
    pub keys: Vec<Option<String>>,
}

/// Where a file may be cut.
#[derive(Clone, Debug, PartialEq)]
pub enum Splits {
    /// Parquet: the byte offset where each row group starts, ascending.
    RowGroups(Vec<u64>),
    /// Uncompressed text: at any byte (the reader aligns on line boundaries).
    Anywhere,
    /// Compressed text: only whole.
    Whole,
}

/// How many files are inspected at once.
const CONCURRENCY: usize = 16;

/// Lists every table input of a job (a dataframe job's inputs, an SQL job's tables).
pub async fn list_inputs(
    store: &Store,
    tables: &BTreeMap<String, Input>,
    ctx: &SessionContext,
) -> Result<Listing> {
    let mut inputs = BTreeMap::new();
    for (name, input) in tables {
        inputs.insert(name.clone(), list_input(store, name, input, ctx).await?);
    }
    Ok(Listing { inputs })
}

fn is_glob_char(c: char) -> bool {
    matches!(c, '*' | '?' | '[' | '{')
}

/// Files that an input's path names: a glob, a single file, or a directory.
pub async fn matching_files(
    store: &Store,
    name: &str,
    pattern: &str,
) -> Result<Vec<(String, u64, String)>> {
    let pattern = pattern.trim_start_matches("./");
    let is_glob = pattern.contains(is_glob_char);
    let mut literal: Vec<&str> = pattern
        .split('/')
        .take_while(|c| !c.contains(is_glob_char))
        .collect();
    if !is_glob {
        // A plain path names a file or a directory: list its parent to find either.
        literal.pop();
    }
    let prefix = literal.join("/");
    let listed = store.list_versions(&prefix).await?;
    let glob = GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| {
            Error::spec(
                format!("spec.dataframe.inputs.{name}.path"),
                format!("{pattern:?} is not a valid glob: {e}"),
            )
        })?
        .compile_matcher();
    let dir = format!("{}/", pattern.trim_end_matches('/'));
    let files: Vec<(String, u64, String)> = listed
        .into_iter()
        .filter(|(path, _, _)| {
            let below_prefix = path.strip_prefix(&prefix).unwrap_or(path);
            // Like Spark and Dask, names starting with `_` or `.` are metadata, not data
            // (`_SUCCESS`, `_kask/` scratch, `.crc` files).
            let hidden = below_prefix
                .split('/')
                .any(|c| c.starts_with('_') || c.starts_with('.'));
            let matched = if is_glob {
                glob.is_match(path)
            } else {
                path == pattern.trim_end_matches('/') || path.starts_with(&dir)
            };
            matched && !hidden
        })
        .collect();
    if files.is_empty() {
        return Err(Error::input(
            name,
            format!("path {pattern:?} matches no files under {}", store.url),
        ));
    }
    Ok(files)
}

fn compression_of(path: &str) -> FileCompressionType {
    let p = path.to_ascii_lowercase();
    if p.ends_with(".gz") {
        FileCompressionType::GZIP
    } else if p.ends_with(".bz2") {
        FileCompressionType::BZIP2
    } else if p.ends_with(".xz") {
        FileCompressionType::XZ
    } else if p.ends_with(".zst") {
        FileCompressionType::ZSTD
    } else {
        FileCompressionType::UNCOMPRESSED
    }
}

/// The compression of an input's files; mixing compressions in one input is refused.
pub fn input_compression(name: &str, files: &[String]) -> Result<FileCompressionType> {
    let first = files
        .first()
        .map(|f| compression_of(f))
        .unwrap_or(FileCompressionType::UNCOMPRESSED);
    for f in files {
        if compression_of(f) != first {
            return Err(Error::input(
                name,
                format!(
                    "files {:?} and {f:?} use different compressions; one input holds one kind",
                    files[0]
                ),
            ));
        }
    }
    Ok(first)
}

/// Lists one input: every file its path names.
pub async fn list_input(
    store: &Store,
    name: &str,
    input: &Input,
    ctx: &SessionContext,
) -> Result<ListedInput> {
    let files = matching_files(store, name, &input.path).await?;
    listed_from(store, name, input, files, &[], ctx).await
}

/// Input `name` of `files` (path, size, version), sorted by path. `top`: every value of the
/// outermost folder key, when its folders were listed one level first (see
/// [`top_folders`]), so that the key's type is the one all of them give.
pub async fn listed_from(
    store: &Store,
    name: &str,
    input: &Input,
    files: Vec<(String, u64, String)>,
    top: &[Option<String>],
    ctx: &SessionContext,
) -> Result<ListedInput> {
    let format = input.format();
    if format == Format::Zarr {
        return Err(Error::spec(
            format!("spec.dataframe.inputs.{name}.format"),
            "Zarr arrays are inputs of array jobs",
        ));
    }
    let csv = input.csv.clone().unwrap_or_default();
    let paths: Vec<&str> = files.iter().map(|(p, _, _)| p.as_str()).collect();
    if format != Format::Parquet {
        let all: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
        input_compression(name, &all)?;
    }
    let mut keys = super::hive::detect(name, &paths, input.partitioning)?;
    if let Some(keys) = keys.as_mut() {
        super::hive::retype_outermost(keys, top);
    }
    // Opening a file costs a request or two; listing a thousand costs one. A Hive input's
    // folders are opened once the query's filters have said which of them it reads.
    let sampled = keys.is_some() && files.len() > 1;
    let opened = if sampled { &files[..1] } else { &files[..] };
    let (schema, mut splits) = inspect(store, name, format, &csv, opened, ctx).await?;
    splits.resize(files.len(), Splits::Whole);
    let (schema, hive, keys) = match keys {
        None => (schema, vec![], vec![vec![]; files.len()]),
        Some(keys) => (
            with_keys(name, &schema, &keys.columns)?,
            keys.columns.iter().map(|c| c.name().clone()).collect(),
            keys.values,
        ),
    };
    Ok(ListedInput {
        format,
        csv,
        hive,
        schema,
        sampled,
        files: files
            .into_iter()
            .zip(splits)
            .zip(keys)
            .map(|(((path, size, version), splits), keys)| ListedFile {
                path,
                size,
                version,
                splits,
                keys,
            })
            .collect(),
    })
}

/// The outermost `key=value` folders of a Hive-partitioned input, listed one level down
/// before its files, so that a query's filters on that key can skip whole folders unlisted.
#[derive(Clone, Debug)]
pub struct TopFolders {
    /// The input's folder.
    pub dir: String,
    /// The key.
    pub key: String,
    /// Each folder's path (relative to the storage root, without a trailing `/`) and value.
    pub folders: Vec<(String, Option<String>)>,
    /// The files below the first folder: the columns and the inner keys come from them.
    pub first: Vec<(String, u64, String)>,
}

impl TopFolders {
    /// Every folder's value.
    pub fn values(&self) -> Vec<Option<String>> {
        self.folders.iter().map(|(_, v)| v.clone()).collect()
    }
}

/// The outermost folders of an input, when its path is a folder (no glob) holding only
/// `key=value` folders of one key (and hidden entries), at least two of them; else `None`,
/// and the input is listed whole.
pub async fn top_folders(store: &Store, input: &Input) -> Result<Option<TopFolders>> {
    let dir = input.path.trim_start_matches("./").trim_end_matches('/');
    if input.partitioning == Some(kask_api::Partitioning::None)
        || input.format() == Format::Zarr
        || dir.is_empty()
        || dir.contains(is_glob_char)
    {
        return Ok(None);
    }
    let visible = |n: &String| !n.starts_with('_') && !n.starts_with('.');
    let (dirs, files) = store.list_level(dir).await?;
    if files.iter().any(visible) {
        return Ok(None);
    }
    let mut key = None;
    let mut folders = Vec::new();
    for d in dirs.into_iter().filter(visible) {
        let mut keyed = super::hive::folder_keys(&format!("{d}/_"));
        let Some((k, v)) = keyed.pop() else {
            return Ok(None);
        };
        if key.get_or_insert_with(|| k.clone()) != &k {
            return Ok(None);
        }
        folders.push((format!("{dir}/{d}"), v));
    }
    let (Some(key), true) = (key, folders.len() >= 2) else {
        return Ok(None);
    };
    let first = visible_files(store, &folders[0].0).await?;
    if first.is_empty() {
        return Ok(None);
    }
    Ok(Some(TopFolders {
        dir: dir.to_string(),
        key,
        folders,
        first,
    }))
}

/// The files below folder `dir`, without hidden ones (see [`matching_files`]).
pub async fn visible_files(store: &Store, dir: &str) -> Result<Vec<(String, u64, String)>> {
    let below = format!("{dir}/");
    Ok(store
        .list_versions(dir)
        .await?
        .into_iter()
        .filter(|(path, _, _)| {
            path.strip_prefix(&below).is_some_and(|rest| {
                !rest
                    .split('/')
                    .any(|c| c.starts_with('_') || c.starts_with('.'))
            })
        })
        .collect())
}

/// A sampled input (see [`ListedInput::sampled`]) with only the files that `keep` accepts,
/// each opened for its columns and row groups. With none kept, the sample's columns stay, so
/// that an empty result still has them.
pub async fn inspect_files(
    store: &Store,
    name: &str,
    listed: &ListedInput,
    keep: impl Fn(&ListedFile) -> bool,
    ctx: &SessionContext,
) -> Result<ListedInput> {
    let mut files: Vec<ListedFile> = listed.files.iter().filter(|f| keep(f)).cloned().collect();
    if !listed.sampled || files.is_empty() {
        return Ok(ListedInput {
            files,
            sampled: false,
            ..listed.clone()
        });
    }
    let opened: Vec<(String, u64, String)> = files
        .iter()
        .map(|f| (f.path.clone(), f.size, f.version.clone()))
        .collect();
    let (schema, splits) = inspect(store, name, listed.format, &listed.csv, &opened, ctx).await?;
    for (f, s) in files.iter_mut().zip(splits) {
        f.splits = s;
    }
    let keys = listed.schema.fields()[listed.schema.fields().len() - listed.hive.len()..]
        .iter()
        .map(|f| f.as_ref().clone())
        .collect::<Vec<_>>();
    Ok(ListedInput {
        schema: with_keys(name, &schema, &keys)?,
        files,
        sampled: false,
        ..listed.clone()
    })
}

/// Opens `files`: their merged columns, and where each may be cut.
async fn inspect(
    store: &Store,
    name: &str,
    format: Format,
    csv: &CsvOptions,
    files: &[(String, u64, String)],
    ctx: &SessionContext,
) -> Result<(SchemaRef, Vec<Splits>)> {
    let (schemas, splits): (Vec<SchemaRef>, Vec<Splits>) = match format {
        Format::Parquet => {
            let results: Vec<(SchemaRef, Splits)> = futures::stream::iter(files.to_vec())
                .map(|(path, size, _)| parquet_file(store, name, path, size))
                .buffered(CONCURRENCY)
                .try_collect()
                .await?;
            results.into_iter().unzip()
        }
        _ => {
            let paths: Vec<String> = files.iter().map(|(p, _, _)| p.clone()).collect();
            let compression = input_compression(name, &paths)?;
            let split = if compression == FileCompressionType::UNCOMPRESSED {
                Splits::Anywhere
            } else {
                Splits::Whole
            };
            let schemas: Vec<SchemaRef> = futures::stream::iter(files.to_vec())
                .map(|(path, size, _)| {
                    text_schema(store, name, format, csv, compression, path, size, ctx)
                })
                .buffered(CONCURRENCY)
                .try_collect()
                .await?;
            let n = schemas.len();
            (schemas, vec![split; n])
        }
    };
    let paths: Vec<&str> = files.iter().map(|(p, _, _)| p.as_str()).collect();
    let schema = merge_schemas(name, &paths, &schemas, format != Format::Parquet)?;
    Ok((schema, splits))
}

/// The files' columns followed by the folder keys'; a key that is also a column of the files
/// is refused, since either could be meant.
fn with_keys(name: &str, files: &SchemaRef, keys: &[Field]) -> Result<SchemaRef> {
    if let Some(k) = keys
        .iter()
        .find(|k| files.field_with_name(k.name()).is_ok())
    {
        return Err(Error::input(
            name,
            format!(
                "{:?} is both a column of the files and a folder key (`{}=…/`); rename one, \
                 or set `partitioning: none` to read the folders as plain paths",
                k.name(),
                k.name()
            ),
        ));
    }
    let fields = files
        .fields()
        .iter()
        .cloned()
        .chain(keys.iter().cloned().map(Arc::new));
    Ok(Arc::new(Schema::new(fields.collect::<Vec<_>>())))
}

/// What DataFusion's readers need to know of a listed file.
pub fn object_meta(store: &Store, path: &str, size: u64) -> object_store::ObjectMeta {
    object_store::ObjectMeta {
        location: store.path(path),
        last_modified: Default::default(),
        size,
        e_tag: None,
        version: None,
    }
}

/// A Parquet file ends with its metadata's length and `PAR1`: checked before the reader sees the
/// file, so that a declared length larger than the file is a clear error. `Some(problem)` when
/// the footer is not a Parquet footer.
async fn check_footer(store: &Store, path: &str, size: u64) -> Result<Option<String>> {
    if size < 12 {
        return Ok(Some(format!(
            "it has {size} bytes, fewer than a Parquet file's header and footer"
        )));
    }
    let ends = store.get_ranges(path, &[0..4, size - 8..size]).await?;
    let (head, tail) = (&ends[0], &ends[1]);
    if head.as_ref() != b"PAR1" {
        return Ok(Some("it does not start with the PAR1 magic".into()));
    }
    if &tail[4..] != b"PAR1" {
        return Ok(Some("it does not end with the PAR1 magic".into()));
    }
    let declared = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    Ok((declared + 12 > size).then(|| {
        format!("its footer declares {declared} bytes of metadata, but the file has {size} bytes")
    }))
}

/// A panic's message.
fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic".into())
}

async fn parquet_file(
    store: &Store,
    name: &str,
    path: String,
    size: u64,
) -> Result<(SchemaRef, Splits)> {
    let object = object_meta(store, &path, size);
    let invalid =
        |e: String| Error::input(name, format!("{path} is not a valid Parquet file: {e}"));
    if let Some(problem) = check_footer(store, &path, size).await? {
        return Err(invalid(problem));
    }
    // Through the runtime's cache, so the tasks that scan the file later do not fetch it again.
    let cache = store.runtime.cache_manager.get_file_metadata_cache();
    let fetched = std::panic::AssertUnwindSafe(
        DFParquetMetadata::new(store.inner.as_ref(), &object)
            .with_file_metadata_cache(Some(cache))
            .fetch_metadata(),
    )
    .catch_unwind()
    .await
    // A crafted footer can still trip the Parquet reader; it is the file's fault, not a crash.
    .map_err(|p| {
        invalid(format!(
            "the Parquet reader failed on it ({})",
            panic_text(&p)
        ))
    })?;
    let meta = fetched.map_err(|e| match store_failure(&e) {
        Some(why) => store.err_text(format!("reading the footer of {path}"), why),
        None => invalid(crate::error::df_message(&e)),
    })?;
    let file = meta.file_metadata();
    // The Arrow schema embedded in the metadata is decoded by arrow-ipc, which panics on some
    // damaged schemas: that is the file's fault, named as such.
    let schema = std::panic::catch_unwind(|| {
        parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata())
    })
    .map_err(|p| {
        invalid(format!(
            "its Arrow schema cannot be read ({})",
            panic_text(&p)
        ))
    })?
    .map_err(|e| invalid(e.to_string()))?;
    let starts = meta
        .row_groups()
        .iter()
        .filter(|rg| rg.num_columns() > 0)
        .map(|rg| {
            // DataFusion assigns a row group to the byte range holding its first page.
            let col = rg.column(0);
            col.dictionary_page_offset()
                .unwrap_or_else(|| col.data_page_offset())
                .max(0) as u64
        })
        .collect();
    Ok((Arc::new(schema), Splits::RowGroups(starts)))
}

#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename the list
async fn text_schema(
    store: &Store,
    name: &str,
    format: Format,
    csv: &CsvOptions,
    compression: FileCompressionType,
    path: String,
    size: u64,
    ctx: &SessionContext,
) -> Result<SchemaRef> {
    let meta = object_meta(store, &path, size);
    let state = ctx.state();
    let result = match format {
        Format::Csv => {
            CsvFormat::default()
                .with_has_header(csv.header)
                .with_delimiter(csv.delimiter.as_bytes().first().copied().unwrap_or(b','))
                .with_file_compression_type(compression)
                .infer_schema(&state, &store.inner, &[meta])
                .await
        }
        _ => {
            JsonFormat::default()
                .with_file_compression_type(compression)
                .infer_schema(&state, &store.inner, &[meta])
                .await
        }
    };
    result.map_err(|e| match store_failure(&e) {
        Some(why) => store.err_text(format!("reading {path}"), why),
        None => Error::input(
            name,
            format!(
                "cannot read the columns of {path}: {}",
                crate::error::df_message(&e)
            ),
        ),
    })
}

/// String columns are read as views, which DataFusion's kernels handle fastest.
fn normalize(dt: &DataType) -> DataType {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 => DataType::Utf8View,
        other => other.clone(),
    }
}

fn widen(a: &DataType, b: &DataType) -> Option<DataType> {
    use DataType::*;
    match (a, b) {
        _ if a == b => Some(a.clone()),
        (Null, x) | (x, Null) => Some(x.clone()),
        (Int64, Float64) | (Float64, Int64) => Some(Float64),
        _ => None,
    }
}

/// One schema for all files: the union of their columns (missing ones read as null), with a
/// clear error when a column's type differs between two files. A Parquet column that every
/// file declares required cannot be null, which the planner uses (a `NOT IN` over such keys
/// is a plain anti join, which need not run in one task); text formats declare nothing.
fn merge_schemas(
    name: &str,
    paths: &[&str],
    schemas: &[SchemaRef],
    text: bool,
) -> Result<SchemaRef> {
    let mut fields: Vec<(String, DataType, usize)> = Vec::new();
    // Per column: how many files hold it, and whether one of them allows nulls.
    let mut seen: BTreeMap<String, (usize, bool)> = BTreeMap::new();
    for (i, schema) in schemas.iter().enumerate() {
        for f in schema.fields() {
            let dt = normalize(f.data_type());
            let entry = seen.entry(f.name().clone()).or_insert((0, false));
            entry.0 += 1;
            entry.1 |= f.is_nullable();
            match fields.iter_mut().find(|(n, _, _)| n == f.name()) {
                None => fields.push((f.name().clone(), dt, i)),
                Some((_, existing, first)) => {
                    if *existing == dt {
                        continue;
                    }
                    match widen(existing, &dt).filter(|_| text) {
                        Some(w) => *existing = w,
                        None => {
                            return Err(Error::input(
                                name,
                                format!(
                                    "column {:?} is {} in {} but {} in {}; all files of an input need the same column types",
                                    f.name(),
                                    existing,
                                    paths[*first],
                                    dt,
                                    paths[i]
                                ),
                            ));
                        }
                    }
                }
            }
        }
    }
    Ok(Arc::new(Schema::new(
        fields
            .into_iter()
            .map(|(n, dt, _)| {
                let dt = if dt == DataType::Null {
                    DataType::Utf8View
                } else {
                    dt
                };
                let nullable = text
                    || seen
                        .get(&n)
                        .is_none_or(|(files, nullable)| *nullable || *files < schemas.len());
                Field::new(n, dt, nullable)
            })
            .collect::<Vec<_>>(),
    )))
}
