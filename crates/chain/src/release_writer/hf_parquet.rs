//! The release as parquet shards in Hugging Face's layout, so
//! `datasets.load_dataset("parquet", ...)` returns PIL images and a
//! `ClassLabel` domain without any loading script.
//!
//! `datasets` reads its features from the schema metadata key
//! `huggingface`. pyarrow takes a file's schema metadata from the
//! `ARROW:schema` entry when there is one, and the one polars writes has
//! view and large types and no `huggingface` key, so `datasets` would see
//! neither the features nor the exact `struct<bytes: binary, path: string>`
//! its `Image` feature needs. We therefore write our own `ARROW:schema`
//! (plain types, carrying the `huggingface` JSON); polars then skips its own.

use polars::io::parquet::write::KeyValueMetadata;
use polars::prelude::*;
use polars_arrow::datatypes::{ArrowDataType, ArrowSchema, Field};

use siuo_core::release::ReleasedCase;

/// Shards hold whole cases; a shard is closed once its images exceed this.
pub const SHARD_IMAGE_BYTES: u64 = 256 * 1024 * 1024;

/// One column: its name, its `datasets` feature (JSON) and its arrow type.
struct Column {
    name: &'static str,
    feature: String,
    arrow: ArrowDataType,
}

fn value(name: &'static str, dtype: &str) -> Column {
    Column {
        name,
        feature: format!(r#"{{"dtype": "{dtype}", "_type": "Value"}}"#),
        arrow: match dtype {
            "int64" => ArrowDataType::Int64,
            "float64" => ArrowDataType::Float64,
            _ => ArrowDataType::Utf8,
        },
    }
}

/// The columns in order. `domain` indexes `domain_names` (the taxonomy's
/// domain names, which are the published SIUO category strings).
fn columns(domain_names: &[String]) -> Vec<Column> {
    let names = serde_json::to_string(domain_names).unwrap_or_default();
    vec![
        value("question_id", "int64"),
        Column {
            name: "image",
            feature: r#"{"_type": "Image"}"#.to_owned(),
            arrow: ArrowDataType::Struct(vec![
                Field::new("bytes".into(), ArrowDataType::Binary, true),
                Field::new("path".into(), ArrowDataType::Utf8, true),
            ]),
        },
        value("question", "string"),
        Column {
            name: "domain",
            feature: format!(r#"{{"names": {names}, "_type": "ClassLabel"}}"#),
            arrow: ArrowDataType::Int64,
        },
        value("category", "string"),
        value("subcategory", "string"),
        value("safety_warning", "string"),
        value("reference_answer", "string"),
        value("image_description", "string"),
        value("candidate_id", "string"),
        value("released_in", "string"),
        // Null when the difficulty stage did not measure the case.
        value("difficulty", "float64"),
        // The question id of the case a control reuses; null in `test`.
        value("control_of", "int64"),
    ]
}

/// `{"info": {"features": {...}}}` with the features in column order
/// (serde_json maps would sort them).
pub fn features_json(domain_names: &[String]) -> String {
    let features: Vec<String> = columns(domain_names)
        .iter()
        .map(|c| format!(r#""{}": {}"#, c.name, c.feature))
        .collect();
    format!(r#"{{"info": {{"features": {{{}}}}}}}"#, features.join(", "))
}

/// Splits cases (with their image bytes) into shards by image bytes.
pub fn shard_bounds(image_sizes: &[u64], shard_image_bytes: u64) -> Vec<std::ops::Range<usize>> {
    let mut shards = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (index, size) in image_sizes.iter().enumerate() {
        if index > start && bytes + size > shard_image_bytes {
            shards.push(start..index);
            start = index;
            bytes = 0;
        }
        bytes += size;
    }
    if start < image_sizes.len() || shards.is_empty() {
        shards.push(start..image_sizes.len());
    }
    shards
}

pub fn shard_name(split: &str, index: usize, count: usize) -> String {
    format!("data/{split}-{index:05}-of-{count:05}.parquet")
}

/// Image bytes per row group of a shard: a writer holds one row group's
/// images (and polars' copy of them) at a time, not a whole shard's.
pub const ROW_GROUP_IMAGE_BYTES: u64 = 32 * 1024 * 1024;

/// Rows of one row group as a frame. `domain_index` maps a case to its class.
fn row_group(
    cases: &[ReleasedCase],
    images: &[Vec<u8>],
    domain_index: &impl Fn(&ReleasedCase) -> i64,
) -> PolarsResult<DataFrame> {
    let text = |name: &str, field: fn(&ReleasedCase) -> &str| {
        polars::prelude::Column::new(name.into(), cases.iter().map(field).collect::<Vec<&str>>())
    };
    let image_bytes = Series::new(
        "bytes".into(),
        images.iter().map(Vec::as_slice).collect::<Vec<&[u8]>>(),
    );
    let image_path = Series::new(
        "path".into(),
        cases
            .iter()
            .map(|c| c.image.as_str())
            .collect::<Vec<&str>>(),
    );
    let image = StructChunked::from_series(
        "image".into(),
        cases.len(),
        [image_bytes, image_path].iter(),
    )?;
    DataFrame::new(
        cases.len(),
        vec![
            polars::prelude::Column::new(
                "question_id".into(),
                cases
                    .iter()
                    .map(|c| c.question_id as i64)
                    .collect::<Vec<i64>>(),
            ),
            image.into_series().into(),
            text("question", |c| &c.question),
            polars::prelude::Column::new(
                "domain".into(),
                cases.iter().map(&domain_index).collect::<Vec<i64>>(),
            ),
            text("category", |c| &c.category),
            text("subcategory", |c| &c.subcategory),
            text("safety_warning", |c| &c.safety_warning),
            text("reference_answer", |c| &c.reference_answer),
            text("image_description", |c| &c.image_description),
            text("candidate_id", |c| &c.candidate_id),
            text("released_in", |c| &c.released_in),
            polars::prelude::Column::new(
                "difficulty".into(),
                cases
                    .iter()
                    .map(|c| c.difficulty.as_ref().map(|d| d.difficulty))
                    .collect::<Vec<Option<f64>>>(),
            ),
            polars::prelude::Column::new(
                "control_of".into(),
                cases
                    .iter()
                    .map(|c| c.control_of.map(|q| q as i64))
                    .collect::<Vec<Option<i64>>>(),
            ),
        ],
    )
}

/// A shard being written row group by row group (see [`ROW_GROUP_IMAGE_BYTES`]).
pub struct ShardWriter<W: std::io::Write> {
    sink: Option<W>,
    writer: Option<polars::io::parquet::write::BatchedWriter<W>>,
    metadata: KeyValueMetadata,
}

impl<W: std::io::Write> ShardWriter<W> {
    pub fn new(sink: W, domain_names: &[String]) -> Self {
        ShardWriter {
            sink: Some(sink),
            writer: None,
            metadata: key_value_metadata(domain_names),
        }
    }

    /// Appends one row group. The first one fixes the schema.
    pub fn write(
        &mut self,
        cases: &[ReleasedCase],
        images: &[Vec<u8>],
        domain_index: &impl Fn(&ReleasedCase) -> i64,
    ) -> PolarsResult<()> {
        let frame = row_group(cases, images, domain_index)?;
        if self.writer.is_none()
            && let Some(sink) = self.sink.take()
        {
            self.writer = Some(
                ParquetWriter::new(sink)
                    .with_compression(ParquetCompression::Uncompressed)
                    .with_key_value_metadata(Some(self.metadata.clone()))
                    .batched(frame.schema())?,
            );
        }
        match &mut self.writer {
            Some(writer) => writer.write_batch(&frame),
            None => Err(PolarsError::ComputeError(
                "shard writer already finished".into(),
            )),
        }
    }

    /// Writes the footer; returns the file's size.
    pub fn finish(self) -> PolarsResult<u64> {
        match &self.writer {
            Some(writer) => writer.finish(),
            None => Err(PolarsError::ComputeError(
                "a shard needs a row group, even an empty one".into(),
            )),
        }
    }
}

/// The file metadata `datasets` and pyarrow read the features from.
fn key_value_metadata(domain_names: &[String]) -> KeyValueMetadata {
    let features = features_json(domain_names);
    let mut schema: ArrowSchema = columns(domain_names)
        .into_iter()
        .map(|c| {
            let field = Field::new(c.name.into(), c.arrow, true);
            (field.name.clone(), field)
        })
        .collect();
    schema
        .metadata_mut()
        .insert("huggingface".into(), features.as_str().into());
    KeyValueMetadata::Static(vec![
        polars_parquet::write::KeyValue {
            key: "ARROW:schema".to_owned(),
            value: Some(arrow_schema_value(&schema)),
        },
        polars_parquet::write::KeyValue {
            key: "huggingface".to_owned(),
            value: Some(features),
        },
    ])
}

/// The `ARROW:schema` value: the schema as an IPC message in the legacy
/// framing pyarrow expects (continuation marker, little-endian length),
/// base64-encoded. polars' own helper rebuilds nested schemas without their
/// metadata, which would drop the `huggingface` key.
fn arrow_schema_value(schema: &ArrowSchema) -> String {
    use base64::Engine as _;
    let fields = polars_arrow::io::ipc::write::default_ipc_fields(schema.iter_values());
    let message = polars_arrow::io::ipc::write::schema_to_bytes(schema, &fields, None);
    let mut framed = Vec::with_capacity(message.len() + 8);
    framed.extend_from_slice(&[0xff; 4]);
    framed.extend_from_slice(&(message.len() as u32).to_le_bytes());
    framed.extend_from_slice(&message);
    base64::engine::general_purpose::STANDARD.encode(framed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_by_image_bytes_and_keep_every_case() {
        assert_eq!(shard_bounds(&[], 10), vec![0..0]);
        assert_eq!(shard_bounds(&[4, 4, 4], 10), vec![0..2, 2..3]);
        // An image larger than a shard gets a shard of its own.
        assert_eq!(shard_bounds(&[30, 1, 1], 10), vec![0..1, 1..3]);
        assert_eq!(shard_name("test", 0, 2), "data/test-00000-of-00002.parquet");
    }

    #[test]
    fn features_keep_column_order_and_parse() -> Result<(), serde_json::Error> {
        let names = vec!["a".to_owned(), "b & c".to_owned()];
        let json = features_json(&names);
        let value: serde_json::Value = serde_json::from_str(&json)?;
        assert_eq!(value["info"]["features"]["image"]["_type"], "Image");
        assert_eq!(value["info"]["features"]["domain"]["names"][1], "b & c");
        assert!(json.find("question_id") < json.find("released_in"));
        Ok(())
    }
}
