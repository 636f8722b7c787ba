"""nanoGPT's `python train.py [CONFIG.py] [--key=value ...]`: a thin wrapper over `leangpt train`."""
import sys

from leangpt.cli import main

if __name__ == "__main__":
    main(["train", *sys.argv[1:]])
