"""imagededup's PHash on the dedupe bench's images, for `just bench-dedupe`.

Prints one JSON object: images, seconds (encode + search), peak RSS, and
precision / recall of the duplicate pairs it reports against the ground
truth in the file names (`g<group>-<kind>.<ext>`: same group = duplicates).

imagededup's PHash needs no torch, but the packages `imagededup.methods`
and `imagededup.utils` import its CNN models (and so torch, about 2 GB) in
their `__init__`. The hashing module is loaded from its file, with
`imagededup.utils` and `imagededup.methods` registered as bare packages
over their real folders, so
every module PHash uses is imagededup's own, unchanged, and torch is not
needed.
"""

import importlib.util
import json
import resource
import sys
import time
import types
from pathlib import Path

import imagededup


def load_hashing():
    root = Path(imagededup.__file__).parent
    for package in ("utils", "methods"):
        bare = types.ModuleType(f"imagededup.{package}")
        bare.__path__ = [str(root / package)]
        sys.modules[f"imagededup.{package}"] = bare
    name = "imagededup.methods.hashing"
    spec = importlib.util.spec_from_file_location(name, root / "methods" / "hashing.py")
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, so worker processes can unpickle PHash.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main(image_dir, max_distance):
    hashing = load_hashing()
    phash = hashing.PHash(verbose=False)
    started = time.perf_counter()
    encodings = phash.encode_images(image_dir=image_dir)
    duplicates = phash.find_duplicates(
        encoding_map=encodings, max_distance_threshold=max_distance, search_method="bktree"
    )
    seconds = time.perf_counter() - started
    group = lambda name: name.split("-")[0]
    found = set()
    for name, others in duplicates.items():
        for other in others:
            found.add(tuple(sorted((name, other))))
    true_positives = sum(1 for a, b in found if group(a) == group(b))
    sizes = {}
    for name in encodings:
        sizes[group(name)] = sizes.get(group(name), 0) + 1
    true_pairs = sum(n * (n - 1) // 2 for n in sizes.values())
    print(json.dumps({
        "tool": "imagededup 0.3.3 PHash",
        "images": len(encodings),
        "seconds": seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "pairs_found": len(found),
        "precision": true_positives / len(found) if found else None,
        "recall": true_positives / true_pairs if true_pairs else None,
    }))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
