"""Record the SHA-256 of every shipped model file in models/MANIFEST.json.

Run after any script that writes to models/; the package refuses files that do not match.

    python scripts/update_manifest.py
"""

from __future__ import annotations

import json

from ganscreen._assets import MANIFEST, MODELS_DIR, sha256_file


def main() -> None:
    files = {
        p.name: sha256_file(p)
        for p in sorted(MODELS_DIR.iterdir())
        if p.is_file() and p.name != MANIFEST and not p.name.endswith(".md")
    }
    (MODELS_DIR / MANIFEST).write_text(json.dumps({"files": files}, indent=2) + "\n")
    for name, digest in files.items():
        print(f"{digest}  {name}")


if __name__ == "__main__":
    main()
