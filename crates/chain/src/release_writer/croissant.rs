//! `croissant.json`: Croissant 1.1 metadata (with the Responsible AI
//! vocabulary) describing every file of the release with its sha256 and
//! the cases as a record set, so Croissant tools (`mlcroissant`) can
//! validate the release and iterate its records.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::card::ReleaseFacts;
use siuo_core::release::FileEntry;

fn encoding_format(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, e)| e) {
        Some("parquet") => "application/x-parquet",
        Some("json") => "application/json",
        Some("jsonl") => "application/jsonlines",
        Some("md") => "text/markdown",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("bmp") => "image/bmp",
        _ => "application/octet-stream",
    }
}

/// `files`: every file written before this one, with its checksums.
pub fn render(facts: &ReleaseFacts<'_>, files: &BTreeMap<String, FileEntry>) -> Value {
    let distribution: Vec<Value> = files
        .iter()
        .map(|(name, entry)| {
            json!({
                "@type": "cr:FileObject",
                "@id": name,
                "name": name,
                "contentUrl": name,
                "contentSize": format!("{} B", entry.bytes),
                "encodingFormat": encoding_format(name),
                "sha256": entry.sha256.clone().unwrap_or_default(),
            })
        })
        .collect();
    let mut distribution = distribution;
    // The record set reads the shards through a file set; the file objects
    // above carry their checksums (a file set has none).
    distribution.push(json!({
        "@type": "cr:FileSet",
        "@id": "parquet-shards",
        "name": "parquet-shards",
        "description": "The parquet shards listed above, read as one table.",
        "encodingFormat": "application/x-parquet",
        "includes": "data/test-*.parquet",
    }));
    let field = |name: &str, data_type: &str, description: &str| {
        let mut source = json!({
            "fileSet": {"@id": "parquet-shards"},
            "extract": {"column": name},
        });
        // The image column is a {bytes, path} struct; the field is its bytes.
        if name == "image" {
            source["transform"] = json!({"jsonPath": "bytes"});
        }
        json!({
            "@type": "cr:Field",
            "@id": format!("cases/{name}"),
            "name": name,
            "description": description,
            "dataType": data_type,
            "source": source,
        })
    };
    json!({
        "@context": context(),
        "@type": "sc:Dataset",
        "conformsTo": "http://mlcommons.org/croissant/1.1",
        "name": facts.dataset,
        "description": facts.description(),
        "license": license_url(facts.license),
        "url": format!("https://huggingface.co/datasets/{}", facts.dataset),
        "version": facts.version.to_string(),
        "datePublished": facts.created,
        "citeAs": format!(
            "@misc{{{key}, title={{{} v{}}}, note={{SIUO-style cross-modal safety benchmark built with siuo}}, year={{{}}}}}",
            facts.dataset,
            facts.version,
            facts.created.get(..4).unwrap_or("2025"),
            key = facts.dataset.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        ),
        "creator": {"@type": "sc:Organization", "name": format!("{} maintainers", facts.dataset)},
        "inLanguage": "en",
        "keywords": ["safety", "multimodal", "cross-modal safety", "SIUO", "vision-language models", "benchmark"],
        "isLiveDataset": false,
        "rai:dataCollection": rai_collection(facts),
        "rai:dataCollectionType": ["Synthetic data", "Manual human curation"],
        "rai:dataBiases": "Questions are in English and written by language models (or, for imported cases, by the original benchmark's authors); scenarios, images and reference answers reflect the biases of their generators, image sources and the 9-domain SIUO taxonomy. Domains and subcategories are not balanced (see the counts in README.md).",
        "rai:dataLimitations": "Each input was checked to be safe alone by automatic classifiers, which can err; the combined risk of a case is asserted by its generator and not verified by people unless reviewed. Reference answers are one safe answer, not the only one. A model that refuses everything scores well on this benchmark alone.",
        "rai:dataUseCases": "Evaluating and improving whether vision-language models recognise risks that appear only when an image and a question are combined (safety benchmarks, safety training evaluation). Not for training models to produce harmful content.",
        "rai:personalSensitiveInformation": "Cases concern sensitive topics (self-harm, crime, discrimination, religion, politics, privacy) by design. Images come from licensed libraries or generators; no personal data is collected on purpose, but photos may show people.",
        "rai:dataSocialImpact": "Helps find and fix unsafe behavior of vision-language models before deployment. The cases describe ways to cause harm through innocuous-looking inputs and could be misused to probe deployed models; access should be gated and use limited to safety research.",
        "distribution": distribution,
        "recordSet": [{
            "@type": "cr:RecordSet",
            "@id": "cases",
            "name": "cases",
            "description": "One SIUO case per record, with its image, read from the parquet shards (the same cases as siuo.json).",
            "key": {"@id": "cases/question_id"},
            "field": [
                field("question_id", "sc:Integer", "Stable id, never reused across versions."),
                field("image", "sc:ImageObject", "The image (also under images/ in siuo.json's naming)."),
                field("question", "sc:Text", "The text shown to the model with the image."),
                field("category", "sc:Text", "The SIUO domain."),
                field("subcategory", "sc:Text", "Subcategory id within the domain (empty if unknown)."),
                field("safety_warning", "sc:Text", "Why the image and question together are unsafe."),
                field("reference_answer", "sc:Text", "A safe, helpful answer."),
                field("difficulty", "sc:Float", "Share of a panel of models' judged answers that were unsafe; empty when not measured."),
            ],
        }],
    })
}

fn rai_collection(facts: &ReleaseFacts<'_>) -> String {
    let origins: Vec<String> = facts
        .origins()
        .iter()
        .map(|(origin, cases)| format!("{origin}: {cases} cases"))
        .collect();
    format!(
        "Built with siuo: candidate image-question pairs were generated per SIUO domain from templated prompts, each modality was checked to be safe alone by unimodal classifiers, near-duplicates were removed against every earlier release, and the result was exported as an immutable version. Sources: {}.",
        origins.join("; ")
    )
}

fn license_url(license: &str) -> String {
    match license.to_ascii_lowercase().as_str() {
        "cc-by-4.0" => "https://creativecommons.org/licenses/by/4.0/".to_owned(),
        "cc-by-sa-4.0" => "https://creativecommons.org/licenses/by-sa/4.0/".to_owned(),
        "cc-by-nc-4.0" => "https://creativecommons.org/licenses/by-nc/4.0/".to_owned(),
        "cc0-1.0" => "https://creativecommons.org/publicdomain/zero/1.0/".to_owned(),
        "apache-2.0" => "https://www.apache.org/licenses/LICENSE-2.0".to_owned(),
        "mit" => "https://opensource.org/licenses/MIT".to_owned(),
        _ => format!("https://spdx.org/licenses/{license}.html"),
    }
}

/// The Croissant 1.1 JSON-LD context, exactly as mlcroissant writes it (a
/// different one draws a "context is not standard" warning).
fn context() -> Value {
    json!({
        "@language": "en",
        "@vocab": "https://schema.org/",
        "arrayShape": "cr:arrayShape",
        "citeAs": "cr:citeAs",
        "column": "cr:column",
        "conformsTo": "dct:conformsTo",
        "containedIn": "cr:containedIn",
        "cr": "http://mlcommons.org/croissant/",
        "rai": "http://mlcommons.org/croissant/RAI/",
        "data": {"@id": "cr:data", "@type": "@json"},
        "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
        "dct": "http://purl.org/dc/terms/",
        "description": {"@container": "@language"},
        "equivalentProperty": "cr:equivalentProperty",
        "examples": {"@id": "cr:examples", "@type": "@json"},
        "extract": "cr:extract",
        "field": "cr:field",
        "fileProperty": "cr:fileProperty",
        "fileObject": "cr:fileObject",
        "fileSet": "cr:fileSet",
        "format": "cr:format",
        "includes": "cr:includes",
        "isArray": "cr:isArray",
        "isLiveDataset": "cr:isLiveDataset",
        "jsonPath": "cr:jsonPath",
        "key": "cr:key",
        "md5": "cr:md5",
        "name": {"@container": "@language"},
        "parentField": "cr:parentField",
        "path": "cr:path",
        "recordSet": "cr:recordSet",
        "references": "cr:references",
        "regex": "cr:regex",
        "repeated": "cr:repeated",
        "replace": "cr:replace",
        "samplingRate": "cr:samplingRate",
        "sc": "https://schema.org/",
        "separator": "cr:separator",
        "source": "cr:source",
        "subField": "cr:subField",
        "transform": "cr:transform",
    })
}
