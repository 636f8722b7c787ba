"""nanoGPT's `python sample.py [CONFIG.py] [--key=value ...]`: a thin wrapper over `leangpt sample`."""
import sys

from leangpt.cli import main

if __name__ == "__main__":
    main(["sample", *sys.argv[1:]])
