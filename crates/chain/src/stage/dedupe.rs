//! Stage 3: drop duplicates. A candidate duplicates a case when both its
//! question and its image match one case already kept, earlier in this run
//! (lower id) or in any release (oldest release, then lowest question id):
//! exactly (`type: exact`: normalized question, decoded pixels) or nearly
//! (`type: near`, the default: MinHash of the question, pHash of the image
//! or of its mirror). The same image with another question is a different
//! case, up to `max_image_uses` cases per image (benign controls, which
//! reuse their case's image by design, take none of them); the same
//! question with another image is a different case.
//!
//! Output: `dedupe/verdicts.jsonl`, one per candidate that passed check, and
//! `dedupe/clusters.jsonl`, each kept case with the candidates it absorbed.
//! Memory holds hashes, never images: one image is decoded at a time.

use std::collections::{BTreeMap, BTreeSet};

use super::{StageInput, StageReport, StageSpec};
use crate::config::DedupeConfig;
use crate::project::Project;
use crate::similarity::case_index::{self, CaseIndex, IndexedCase, NearMatch};
use crate::similarity::image_hash;
use crate::similarity::minhash;
use crate::similarity::union_find::UnionFind;
use siuo_core::atomic_file;
use siuo_core::content_hash::{ContentHasher, Digest};
use siuo_core::error::Result;
use siuo_core::input_file;
use siuo_core::pixels;
use siuo_core::progress::Progress;
use siuo_core::record::{Decision, DedupeVerdict, DuplicateOf, Fingerprint, NearFingerprint};
use siuo_core::release;

pub use super::VERDICTS;

pub const STAGE: StageSpec = StageSpec {
    name: "dedupe",
    about: "Drop candidates that duplicate a kept case of the run or of any release",
    filters: true,
    key,
    run,
    vouches: None,
    shardable: false,
};

/// Reason of a candidate whose image already carries `max_image_uses` cases.
const IMAGE_REUSE: &str = "dedupe:image-reuse-limit";

/// Kept cases with the candidates each absorbed.
pub const CLUSTERS: &str = "clusters.jsonl";
/// Near fingerprints of every released case, under `raw/`, extended as
/// releases appear (releases never change, so entries never go stale).
/// Each case is indexed once, from the first release that has it: a
/// release carries its parent's cases over, and indexing every copy made
/// the index (and each new release's hashing) grow with the whole history.
const RELEASE_INDEX: &str = "index/releases-near-v2.json";

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct ReleaseIndex {
    /// Versions covered, oldest first.
    releases: Vec<String>,
    cases: Vec<IndexedRelease>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct IndexedRelease {
    version: String,
    question_id: u64,
    near: NearFingerprint,
}

/// Near fingerprints of every released case in precedence order, from the
/// persisted index; only releases it does not cover yet are hashed (from
/// their images) and added to it.
fn released_near(project: &Project) -> Result<Vec<IndexedCase>> {
    let path = project.raw().join(RELEASE_INDEX);
    let mut index: ReleaseIndex = if path.is_file() {
        input_file::read_json(&path)?
    } else {
        ReleaseIndex::default()
    };
    let releases = release::list(&project.curated())?;
    let names: Vec<String> = releases.iter().map(release::Release::name).collect();
    if !names.starts_with(&index.releases) {
        // A release was removed by hand: start over rather than trust it.
        index = ReleaseIndex::default();
    }
    let mut changed = false;
    let mut indexed: std::collections::HashSet<u64> =
        index.cases.iter().map(|c| c.question_id).collect();
    for release in releases.iter().skip(index.releases.len()) {
        let mut cases = release.cases()?;
        // A question id names one question and image for good (a relabel
        // changes neither): a carried-over case is indexed already.
        cases.retain(|c| indexed.insert(c.question_id));
        cases.sort_by_key(|c| c.question_id);
        for case in cases {
            let image_path = release.dir.join("images").join(&case.image);
            let bytes = input_file::read_bytes(&image_path)?;
            let image = pixels::decode(&bytes).map_err(|message| {
                siuo_core::error::Error::InvalidRecord {
                    path: image_path.clone(),
                    record: format!("question_id {}", case.question_id),
                    message,
                }
            })?;
            index.cases.push(IndexedRelease {
                version: release.name(),
                question_id: case.question_id,
                near: case_index::near_fingerprint(&image_hash::hashes(&image), &case.question),
            });
        }
        index.releases.push(release.name());
        changed = true;
    }
    if changed {
        atomic_file::write_json(&path, &index)?;
    }
    Ok(index
        .cases
        .into_iter()
        .filter_map(|c| {
            IndexedCase::new(
                DuplicateOf::Release {
                    version: c.version,
                    question_id: c.question_id,
                },
                &c.near,
            )
        })
        .collect())
}

/// Key of the dedupe stage: its inputs' key and its config.
fn key(project: &Project, check_key: Option<&Digest>) -> Result<Digest> {
    Ok(ContentHasher::new("siuo.stage.dedupe.v1")
        .str(&check_key.map(Digest::hex).unwrap_or_default())
        .str(&siuo_core::content_hash::digest_of(&project.settings().dedupe).hex())
        .finish())
}

fn run(project: &Project, input: &StageInput) -> Result<StageReport> {
    let (key, stage_dir) = (&input.key, &input.dir);
    let (against_releases, near_settings) = match &project.settings().dedupe {
        DedupeConfig::Exact(settings) => (settings.against_releases, None),
        DedupeConfig::Near(settings) => (settings.against_releases, Some(settings.clone())),
    };
    let released = if against_releases && near_settings.is_none() {
        release::released_index(&project.curated(), &project.raw())?.fingerprints()
    } else {
        BTreeMap::new()
    };
    let mut near_index = match &near_settings {
        Some(settings) => {
            let mut index = CaseIndex::new(settings.clone());
            if against_releases {
                for case in released_near(project)? {
                    index.insert(case);
                }
            }
            Some(index)
        }
        None => None,
    };
    let candidates = input.survivors(project)?;
    let images = project.images();
    let mut journal = stage_dir.verdict_journal::<DedupeVerdict>(key)?;
    let ids: BTreeSet<&str> = candidates.iter().map(|c| c.id.as_str()).collect();
    // Rebuild the kept set from finished items so a resumed run decides
    // exactly as an uninterrupted one.
    let mut kept: BTreeMap<Fingerprint, String> = BTreeMap::new();
    let controls: BTreeSet<&str> = (candidates.iter())
        .filter(|c| c.is_control())
        .map(|c| c.id.as_str())
        .collect();
    // Candidates are processed in id order, so the journal read in id
    // order is the order they were decided in.
    journal.for_each_in_order(&ids, |verdict| {
        if let (Decision::Keep, Some(fingerprint)) = (&verdict.decision, &verdict.fingerprint) {
            kept.insert(fingerprint.clone(), verdict.candidate_id.clone());
        }
        if let (Decision::Keep, Some(near), Some(index)) =
            (&verdict.decision, &verdict.near, near_index.as_mut())
            && !controls.contains(verdict.candidate_id.as_str())
        {
            index.insert_run_case(&verdict.candidate_id, near);
        }
        Ok(())
    })?;
    let progress = Progress::new(STAGE.name, candidates.len(), project.interactive);
    let pending = super::pending(
        &candidates,
        |id| journal.is_done(id),
        input.shard,
        &progress,
    );
    for candidate in pending {
        progress.before_item();
        let decoded = images
            .read(&candidate.image)
            .map_err(|e| e.to_string())
            .and_then(|b| pixels::decode(&b));
        let verdict = match decoded {
            Err(error) => {
                progress.suspend(|| eprintln!("dedupe: candidate {}: {error}", candidate.id));
                DedupeVerdict {
                    candidate_id: candidate.id.clone(),
                    fingerprint: None,
                    near: None,
                    duplicate_of: None,
                    decision: Decision::Reject {
                        reasons: vec!["dedupe:unreadable-image".to_owned()],
                    },
                }
            }
            Ok(image) => {
                let fingerprint = Fingerprint {
                    question_blake3: minhash::question_digest(&candidate.question).hex(),
                    pixels_blake3: pixels::digest(&image).hex(),
                };
                let near = near_index.as_ref().map(|index| {
                    let hashes = image_hash::hashes(&image);
                    let near = case_index::near_fingerprint(&hashes, &candidate.question);
                    (index.classify(&hashes, &near.question_minhash), near)
                });
                drop(image);
                let (duplicate_of, image_reused, near) = match near {
                    Some((NearMatch::New, near)) => (None, false, Some(near)),
                    // A control reuses its case's image by design.
                    Some((NearMatch::ImageReuse { .. }, near)) if candidate.is_control() => {
                        (None, false, Some(near))
                    }
                    Some((NearMatch::Duplicate(of), near)) => (Some(of), false, Some(near)),
                    Some((NearMatch::ImageReuse { first }, near)) => {
                        (Some(first), true, Some(near))
                    }
                    None => {
                        let of = released.get(&fingerprint).cloned().or_else(|| {
                            kept.get(&fingerprint).map(|id| DuplicateOf::Run {
                                candidate_id: id.clone(),
                            })
                        });
                        (of, false, None)
                    }
                };
                let reason = match &duplicate_of {
                    None => None,
                    Some(_) if image_reused => Some(IMAGE_REUSE),
                    Some(DuplicateOf::Run { .. }) => Some("dedupe:duplicate-in-run"),
                    Some(DuplicateOf::Release { .. }) => Some("dedupe:duplicate-of-release"),
                };
                let decision = match reason {
                    None => {
                        kept.insert(fingerprint.clone(), candidate.id.clone());
                        // Controls take no image use from the cases.
                        if let (Some(index), Some(near)) = (near_index.as_mut(), &near)
                            && !candidate.is_control()
                        {
                            index.insert_run_case(&candidate.id, near);
                        }
                        Decision::Keep
                    }
                    Some(reason) => Decision::Reject {
                        reasons: vec![reason.to_owned()],
                    },
                };
                DedupeVerdict {
                    candidate_id: candidate.id.clone(),
                    fingerprint: Some(fingerprint),
                    near,
                    duplicate_of,
                    decision,
                }
            }
        };
        if project.interactive
            && let Some(of) = &verdict.duplicate_of
        {
            let what = match of {
                DuplicateOf::Run { candidate_id } => {
                    format!("candidate {candidate_id} of this run")
                }
                DuplicateOf::Release {
                    version,
                    question_id,
                } => format!("question_id {question_id} of {version}"),
            };
            let relation = if verdict.decision.reasons().iter().any(|r| r == IMAGE_REUSE) {
                "reuses, past max_image_uses, the image of"
            } else {
                "duplicates"
            };
            progress.suspend(|| {
                eprintln!("dedupe: candidate {} {relation} {what}", candidate.id);
            });
        }
        journal.append(verdict)?;
        progress.item_done();
    }
    progress.finish();

    let mut links: Vec<(String, Option<DuplicateOf>)> = Vec::new();
    journal.for_each_in_order(&ids, |v| {
        links.push((v.candidate_id, v.duplicate_of));
        Ok(())
    })?;
    write_clusters(&stage_dir.output(CLUSTERS), &links)?;
    super::finish_journaled(stage_dir, key, &journal, &ids, |kept, processed| {
        format!("{kept} of {processed} checked candidates are not duplicates")
    })
}

/// One line per kept case that absorbed candidates: its reference and the
/// absorbed candidate ids, clustered with union-find, roots first.
#[derive(Debug, serde::Serialize)]
struct Cluster<'a> {
    representative: &'a DuplicateOf,
    duplicates: Vec<&'a str>,
}

fn write_clusters(path: &std::path::Path, links: &[(String, Option<DuplicateOf>)]) -> Result<()> {
    // Nodes: the representatives (kept cases referred to), then candidates.
    let mut representatives: Vec<&DuplicateOf> =
        links.iter().filter_map(|(_, of)| of.as_ref()).collect();
    representatives.sort_by_key(|r| serde_json::to_string(r).unwrap_or_default());
    representatives.dedup();
    let node_of: std::collections::HashMap<String, usize> = (representatives.iter().enumerate())
        .map(|(node, r)| (serde_json::to_string(r).unwrap_or_default(), node))
        .collect();
    let node_of = |of: &DuplicateOf| {
        node_of
            .get(&serde_json::to_string(of).unwrap_or_default())
            .copied()
    };
    let mut sets = UnionFind::new(representatives.len() + links.len());
    for (i, (_, of)) in links.iter().enumerate() {
        if let Some(node) = of.as_ref().and_then(node_of) {
            sets.union(node, representatives.len() + i);
        }
    }
    // Each candidate under its root, in one pass (not one per representative).
    let mut members: std::collections::HashMap<usize, Vec<&str>> = std::collections::HashMap::new();
    for (i, (id, _)) in links.iter().enumerate() {
        members
            .entry(sets.find(representatives.len() + i))
            .or_default()
            .push(id.as_str());
    }
    let clusters: Vec<Cluster> = representatives
        .iter()
        .enumerate()
        .map(|(node, representative)| Cluster {
            representative,
            duplicates: members.remove(&node).unwrap_or_default(),
        })
        .collect();
    atomic_file::write_jsonl(path, &clusters)
}
