"""Prepare tinyshakespeare, character-level, into this directory (nanoGPT's prepare.py).

    python data/shakespeare_char/prepare.py [--input=path/to/input.txt]

Without --input the text is downloaded. Writes train.bin, val.bin and meta.pkl next to this file.
"""
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
try:
    from leangpt.cli import main
except ImportError:  # run from a checkout that was not pip-installed
    sys.path.insert(0, str(here.parents[1]))
    from leangpt.cli import main

if __name__ == "__main__":
    main(["prepare", f"--data_dir={here.parent}", f"--name={here.name}", *sys.argv[1:]])
