#!/usr/bin/env python3
"""Prove that a siuo release folder loads in the clients people will use on it.

`siuo export` writes `curated/vX.Y.Z/`. Our own Rust tests check what we wrote;
this script checks what others will read, with the real client libraries
pinned in `requirements.txt` next to it:

  datasets   `datasets.load_dataset("parquet", ...)` on `data/*.parquet`, offline:
             row count, `Image` and `ClassLabel` features (both come from the
             parquet's `huggingface` schema metadata, which datasets silently
             ignores for a column whose Arrow type differs from the one it
             expects), domain names, ids equal to siuo.json's.
  card       README.md parsed by huggingface_hub's `DatasetCard` (the Hub's
             own parser): the metadata keys the Hub and its gating use, the
             ClassLabel names and the split size; then the release folder
             loaded as a dataset through the card's `configs`
             (`load_dataset(<folder>)`, as the Hub would).
  croissant  the `mlcroissant validate` CLI, then every record of every record
             set through `mlcroissant.Dataset`, images decoded; every file of the
             release (but croissant.json and manifest.json) is a FileObject whose
             sha256 matches, and the RAI properties are present.
  schema     siuo.json against `siuo-record.schema.json` (next to this script)
             with jsonschema, plus what JSON Schema cannot say: unique ids, key
             order, and image files that exist inside `images/`.

Usage (from the client venv, see requirements.txt):

  .venv-clients/bin/python crates/siuo/tests/clients/check_release.py curated/v1.0.0
  ... --only croissant          # one check; may be repeated

Prints one line per check, then a JSON summary line on stdout. Exits 0 only if
every check ran passes; otherwise 1, with `check_release: <check>: <cause>` on
stderr for each failure. Nothing is written outside a temporary directory:
the Hugging Face and Croissant caches point into it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCHEMA_PATH = Path(__file__).resolve().parent / "siuo-record.schema.json"

DOMAIN_NAMES = [
    "self-harm",
    "dangerous behavior",
    "morality",
    "illegal activities & crime",
    "controversial topics, politics",
    "discrimination & stereotyping",
    "religion beliefs",
    "information misinterpretation",
    "privacy violation",
]
RECORD_KEYS = ["question_id", "image", "question", "category", "safety_warning", "reference_answer"]
CROISSANT_1_1 = "http://mlcommons.org/croissant/1.1"
# Metadata attribute (mlcroissant name) -> JSON-LD property, for error messages.
RAI_PROPERTIES = {
    "data_collection": "rai:dataCollection",
    "data_biases": "rai:dataBiases",
    "data_limitations": "rai:dataLimitations",
    "data_use_cases": "rai:dataUseCases",
    "personal_sensitive_information": "rai:personalSensitiveInformation",
    "data_social_impact": "rai:dataSocialImpact",
}
# Files a release holds that croissant.json does not list with a checksum.
NOT_IN_CROISSANT = {"croissant.json", "manifest.json"}
CHECKS = ("datasets", "card", "croissant", "schema")


class CheckFailed(Exception):
    """An expected failure: the release is wrong, not the script."""


def load_siuo(release: Path) -> list:
    path = release / "siuo.json"
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckFailed(f"{path} does not exist") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckFailed(f"{path} is not valid JSON: {e}") from None
    if not isinstance(records, list):
        raise CheckFailed(f"{path} is not a JSON array")
    return records


def siuo_ids(release: Path) -> list:
    records = load_siuo(release)
    try:
        return [r["question_id"] for r in records]
    except (TypeError, KeyError):
        raise CheckFailed("siuo.json has a record without question_id (run the schema check)") from None


def describe_id_mismatch(got: list, want: list, got_name: str) -> str:
    if sorted(got) == sorted(want):
        return f"{got_name} has siuo.json's question_ids in another order"
    missing = sorted(set(want) - set(got))[:10]
    extra = sorted(set(got) - set(want))[:10]
    return f"{got_name} question_ids differ from siuo.json's: missing {missing}, extra {extra}"


# --- datasets ---------------------------------------------------------------

def check_datasets(release: Path, tmp: Path) -> str:
    shards = sorted((release / "data").glob("test-*.parquet"))
    if not shards:
        raise CheckFailed(f"no parquet file in {release / 'data'}")
    want_ids = siuo_ids(release)

    import datasets
    import PIL.Image

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    ds = datasets.load_dataset(
        "parquet",
        data_files={"test": [str(p) for p in shards]},
        split="test",
        cache_dir=str(tmp / "hf" / "datasets"),
    )
    if len(ds) != len(want_ids):
        raise CheckFailed(f"{len(ds)} rows in {len(shards)} parquet file(s), siuo.json has {len(want_ids)} records")

    hint = (
        "; datasets ignores the `huggingface` metadata of a column whose Arrow type is not exactly "
        "the one it expects (Image: nullable struct<bytes: binary, path: string>, children nullable, "
        "in that order; ClassLabel: nullable int64)"
    )
    image_feature = ds.features.get("image")
    if not isinstance(image_feature, datasets.Image):
        raise CheckFailed(f"features['image'] is {image_feature!r}, not datasets.Image{hint}")
    domain = ds.features.get("domain")
    if not isinstance(domain, datasets.ClassLabel):
        raise CheckFailed(f"features['domain'] is {domain!r}, not datasets.ClassLabel{hint}")
    if list(domain.names) != DOMAIN_NAMES:
        raise CheckFailed(f"ClassLabel names are {domain.names}, expected {DOMAIN_NAMES}")

    first = ds[0]["image"]
    if not isinstance(first, PIL.Image.Image):
        raise CheckFailed(f"ds[0]['image'] is {type(first).__name__}, not a PIL image")
    try:
        first.load()
    except Exception as e:
        raise CheckFailed(f"ds[0]['image'] does not decode: {e}") from None

    # Read the plain columns without decoding every image.
    table = ds.select_columns(["question_id", "domain", "category"])
    for row in table:
        if domain.int2str(row["domain"]) != row["category"]:
            raise CheckFailed(
                f"question_id {row['question_id']}: domain {row['domain']} is "
                f"{domain.int2str(row['domain'])!r} but category is {row['category']!r}"
            )
    got_ids = list(table["question_id"])
    if got_ids != want_ids:
        raise CheckFailed(describe_id_mismatch(got_ids, want_ids, "the parquet"))
    controls = check_control_split(release, tmp, ds.features, set(want_ids))
    return (
        f"{len(ds)} rows from {len(shards)} shard(s); Image decodes "
        f"({first.format} {first.size[0]}x{first.size[1]}); ClassLabel with the 9 domains "
        f"matches category; ids equal siuo.json's{controls}"
    )


def check_control_split(release: Path, tmp: Path, features, case_ids: set) -> str:
    """The `control` split, when the release has one: the same features as
    `test`, the rows of controls.jsonl, each control of a released case."""
    shards = sorted((release / "data").glob("control-*.parquet"))
    listed = release / "controls.jsonl"
    if not shards and not listed.is_file():
        return ""
    if not shards or not listed.is_file():
        raise CheckFailed("a control split needs both data/control-*.parquet and controls.jsonl")
    import datasets

    ds = datasets.load_dataset(
        "parquet",
        data_files={"control": [str(p) for p in shards]},
        split="control",
        cache_dir=str(tmp / "hf" / "controls"),
    )
    if ds.features != features:
        raise CheckFailed(f"the control split's features {ds.features} differ from test's {features}")
    want = [json.loads(line)["question_id"] for line in listed.read_text().splitlines() if line.strip()]
    got = list(ds.select_columns(["question_id"])["question_id"])
    if got != want:
        raise CheckFailed(describe_id_mismatch(got, want, "the control parquet"))
    orphans = [c for c in ds.select_columns(["control_of"])["control_of"] if c not in case_ids]
    if orphans:
        raise CheckFailed(f"controls of cases not in the release: {orphans[:10]}")
    return f"; control split: {len(ds)} rows, same features, each the control of a released case"


# --- card -------------------------------------------------------------------

CARD_KEYS = (
    "license", "pretty_name", "task_categories", "tags", "size_categories", "configs",
    "dataset_info", "extra_gated_prompt", "extra_gated_fields",
)


def check_card(release: Path, tmp: Path) -> str:
    from huggingface_hub import DatasetCard
    import datasets

    card = DatasetCard.load(release / "README.md")
    data = card.data.to_dict()
    missing = [key for key in CARD_KEYS if key not in data]
    if missing:
        raise CheckFailed(f"README.md front matter lacks {missing}")
    if not card.text.strip():
        raise CheckFailed("README.md has no prose after the front matter")
    want_ids = siuo_ids(release)

    info = data["dataset_info"]
    labels = [f for f in info["features"] if f["name"] == "domain"]
    if not labels:
        raise CheckFailed("dataset_info.features has no `domain`")
    names = labels[0]["dtype"]["class_label"]["names"]
    if [names[str(i)] for i in range(len(names))] != DOMAIN_NAMES:
        raise CheckFailed(f"dataset_info class_label names are {names}")
    split = info["splits"][0]
    if split["num_examples"] != len(want_ids):
        raise CheckFailed(f"dataset_info says {split['num_examples']} examples, siuo.json has {len(want_ids)}")

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    ds = datasets.load_dataset(str(release), split="test", cache_dir=str(tmp / "hf" / "card"))
    if len(ds) != len(want_ids):
        raise CheckFailed(f"the card's configs load {len(ds)} rows, siuo.json has {len(want_ids)}")
    if not isinstance(ds.features["image"], datasets.Image) or not isinstance(ds.features["domain"], datasets.ClassLabel):
        raise CheckFailed(f"through the card's configs the features are {ds.features}")
    return (
        f"{len(CARD_KEYS)} metadata keys; class_label and split size agree; "
        f"load_dataset(<folder>) via the card's configs: {len(ds)} rows, Image and ClassLabel"
    )


# --- croissant --------------------------------------------------------------

def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def validator_warnings(output: str) -> list:
    """Warnings from mlcroissant's absl log: `W...` lines and their `  -  ` items."""
    warnings, in_warning = [], False
    for line in output.splitlines():
        if re.match(r"^[WEF]\d{4} ", line):
            in_warning = line.startswith("W")
            if in_warning and "warning(s)" not in line:
                warnings.append(line.split("] ", 1)[-1].strip())
        elif in_warning and line.lstrip().startswith("-"):
            warnings.append(line.strip().lstrip("-").strip())
    return warnings


def run_validator(jsonld: Path, env: dict) -> list:
    cli = Path(sys.executable).parent / "mlcroissant"  # same venv; do not resolve symlinks
    if not cli.exists():
        raise CheckFailed(f"{cli} not found: run this script with the client venv's python")
    try:
        proc = subprocess.run(
            [str(cli), "validate", "--jsonld", str(jsonld)],
            capture_output=True, text=True, env=env, timeout=600,
        )
    except subprocess.TimeoutExpired:
        raise CheckFailed("mlcroissant validate did not finish in 600 s") from None
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        errors = [l.strip() for l in output.splitlines() if l.lstrip().startswith("-")]
        cause = "; ".join(errors) if errors else output.strip()[-2000:]
        raise CheckFailed(f"mlcroissant validate exited {proc.returncode}: {cause}")
    return validator_warnings(output)


def check_file_objects(release: Path, metadata) -> int:
    """Every release file but NOT_IN_CROISSANT is a local FileObject whose sha256 matches."""
    import mlcroissant as mlc

    root = release.resolve()
    listed = {}
    for node in metadata.distribution:
        if not isinstance(node, mlc.FileObject) or node.contained_in:
            continue
        url = node.content_url or ""
        if re.match(r"^[a-z][a-z0-9+.-]*://", url):
            continue  # remote copies are not part of the folder
        what = f"FileObject {node.uuid!r}" + (f" ({url})" if url != node.uuid else "")
        path = (release / url).resolve()
        if not path.is_relative_to(root):
            raise CheckFailed(f"{what}: contentUrl {url!r} leaves the release folder")
        if not path.is_file():
            raise CheckFailed(f"{what}: {url!r} does not exist")
        if not node.sha256:
            raise CheckFailed(f"{what} has no sha256")
        actual = sha256_file(path)
        if node.sha256.lower() != actual:
            raise CheckFailed(f"{what}: sha256 {node.sha256} but the file has {actual}")
        listed[path.relative_to(root).as_posix()] = node.uuid
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    unlisted = sorted(on_disk - NOT_IN_CROISSANT - set(listed))
    if unlisted:
        raise CheckFailed(f"{len(unlisted)} file(s) have no FileObject with sha256 in croissant.json: {unlisted[:10]}")
    return len(listed)


def check_croissant(release: Path, tmp: Path) -> str:
    jsonld = release / "croissant.json"
    if not jsonld.is_file():
        raise CheckFailed(f"{jsonld} does not exist")
    n_cases = len(load_siuo(release))
    env = dict(os.environ)
    warnings = run_validator(jsonld, env)

    from absl import logging as absl_logging
    import mlcroissant as mlc
    import PIL.Image

    absl_logging.set_verbosity(absl_logging.ERROR)
    dataset = mlc.Dataset(jsonld=str(jsonld))
    metadata = dataset.metadata

    if metadata.ctx.conforms_to.value != CROISSANT_1_1:
        raise CheckFailed(f"conformsTo is {metadata.conforms_to}, expected {CROISSANT_1_1}")
    missing_rai = [prop for attr, prop in RAI_PROPERTIES.items() if not getattr(metadata, attr, None)]
    if missing_rai:
        raise CheckFailed(f"missing or empty RAI properties: {missing_rai}")
    n_files = check_file_objects(release, metadata)

    if not metadata.record_sets:
        raise CheckFailed("croissant.json has no record set")
    counted = []
    for record_set in metadata.record_sets:
        image_fields = [f.id for f in record_set.fields if f.data_type == mlc.DataType.IMAGE_OBJECT]
        n = 0
        for record in dataset.records(record_set.uuid):
            n += 1
            for field_id in image_fields:
                image = record.get(field_id)
                if not isinstance(image, PIL.Image.Image):
                    raise CheckFailed(
                        f"record set {record_set.uuid!r}, record {n}: field {field_id!r} is "
                        f"{type(image).__name__}, not a PIL image"
                    )
                try:
                    image.load()
                except Exception as e:
                    raise CheckFailed(f"record set {record_set.uuid!r}, record {n}: {field_id!r} does not decode: {e}") from None
        # Inline enumerations (`data`, e.g. splits) are not one record per case.
        if record_set.data is None and n != n_cases:
            raise CheckFailed(f"record set {record_set.uuid!r} yields {n} records, siuo.json has {n_cases} cases")
        counted.append(f"{record_set.uuid}={n}" + (f" ({len(image_fields)} image field(s) decoded)" if image_fields else ""))

    summary = f"validate ok, {len(warnings)} warning(s); records: {', '.join(counted)}; {n_files} FileObjects, sha256 verified; RAI present"
    if warnings:
        summary += "; warnings: " + " | ".join(warnings)
    return summary


# --- schema -----------------------------------------------------------------

def json_path(error) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)


def check_schema(release: Path, tmp: Path) -> str:
    import jsonschema

    try:
        schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckFailed(f"schema file {SCHEMA_PATH} does not exist") from None
    except json.JSONDecodeError as e:
        raise CheckFailed(f"schema file {SCHEMA_PATH} is not valid JSON: {e}") from None
    validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as e:
        raise CheckFailed(f"{SCHEMA_PATH.name} is not a valid {validator_class.__name__} schema: {e.message}") from None

    records = load_siuo(release)
    errors = sorted(validator_class(schema).iter_errors(records), key=lambda e: list(e.absolute_path))
    if errors:
        shown = "; ".join(f"{json_path(e)}: {e.message}" for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise CheckFailed(f"siuo.json fails {SCHEMA_PATH.name}: {shown}{more}")

    # What the schema says it cannot check.
    ids = [r["question_id"] for r in records]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise CheckFailed(f"duplicate question_ids in siuo.json: {duplicates[:10]}")
    for r in records:
        if list(r) != RECORD_KEYS:
            raise CheckFailed(f"question_id {r['question_id']}: keys are in the order {list(r)}, expected {RECORD_KEYS}")

    root = release.resolve()
    images = (release / "images").resolve()
    for r in records:
        path = (release / "images" / r["image"]).resolve()
        if not path.is_relative_to(root) or not path.is_relative_to(images):
            raise CheckFailed(f"question_id {r['question_id']}: image {r['image']!r} leaves images/")
        if not path.is_file():
            raise CheckFailed(f"question_id {r['question_id']}: images/{r['image']} does not exist")
    return f"{len(records)} records valid against {SCHEMA_PATH.name} ({validator_class.__name__}); ids unique; every image inside images/"


# --- driver -----------------------------------------------------------------

RUNNERS = {
    "datasets": check_datasets,
    "card": check_card,
    "croissant": check_croissant,
    "schema": check_schema,
}


def describe(exc: BaseException) -> str:
    """One line for an unexpected exception: the root cause first, then what wrapped it
    (mlcroissant wraps the real error in GenerationErrors)."""
    parts, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        text = str(exc).strip().splitlines()
        parts.append(f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": "))
        exc = exc.__cause__ or exc.__context__
    root, *wrappers = reversed(parts)
    return root + "".join(f" [in {w}]" for w in wrappers)


def isolate_caches(tmp: Path) -> None:
    """Point every cache at tmp and forbid network access, before the libraries are imported."""
    os.environ.update({
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp / "hf"),
        "HF_DATASETS_CACHE": str(tmp / "hf" / "datasets"),
        "CROISSANT_CACHE": str(tmp / "croissant"),
        "XDG_CACHE_HOME": str(tmp / "xdg-cache"),
        "TQDM_DISABLE": "1",
    })


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("release", type=Path, help="a release folder, e.g. curated/v1.0.0")
    parser.add_argument("--only", action="append", choices=CHECKS, help="run only this check (repeatable)")
    args = parser.parse_args(argv)

    release = args.release
    if not release.is_dir():
        print(f"check_release: {release} is not a directory", file=sys.stderr)
        return 1
    selected = [c for c in CHECKS if not args.only or c in args.only]

    results, failures = {}, []
    with tempfile.TemporaryDirectory(prefix="siuo-check-release-") as tmp_name:
        tmp = Path(tmp_name)
        isolate_caches(tmp)
        for name in selected:
            started = time.monotonic()
            try:
                detail, ok = RUNNERS[name](release, tmp), True
            except CheckFailed as e:
                detail, ok = str(e), False
            except Exception as e:  # a client raised: still the release's fault, keep it one line
                detail, ok = describe(e), False
            seconds = round(time.monotonic() - started, 2)
            results[name] = {"ok": ok, "seconds": seconds, "detail": detail}
            print(f"{'PASS' if ok else 'FAIL'} {name} ({seconds}s): {detail}", flush=True)
            if not ok:
                failures.append(name)
                print(f"check_release: {name}: {detail}", file=sys.stderr, flush=True)

    print(json.dumps({"release": str(release), "ok": not failures, "failed": failures, "checks": results}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
