"""The `leangpt` console script: prepare | train | sample | convert | sweep | report | memory | export."""

from __future__ import annotations

import os
import sys

from .config import ConvertConfig, ExportConfig, PrepareConfig, SampleConfig, TrainConfig, parse_config

from .errors import LeanGPTError

USAGE = """usage: leangpt COMMAND [CONFIG.py] [--key=value ...]

commands:
  prepare   corpus -> data/NAME/{train.bin,val.bin,meta.pkl}  (--input=FILE|DIR --name=NAME --tokenizer=char|gpt2|bpe)
  train     train a model (nanoGPT's train.py)
  sample    sample from a checkpoint (nanoGPT's sample.py)
  convert   MHA checkpoint -> GQA checkpoint (--in_dir --out_dir --n_headgroup)
  sweep     train a grid of variants and write a report (--grid=KEY=V1,V2 ...)
  report    rebuild a sweep's report from its runs' metrics (leangpt report SWEEP_DIR)
  export    a sharded fsdp=True checkpoint -> one ckpt.pt for sample, convert and nanoGPT (--out_dir)
  memory    where the bytes of a training step go, estimated for any size (--grid, --json, --measure=True)
"""


def _prepare(argv):
    from .prepare import corpus_from_input, prepare_corpus
    from pathlib import Path
    config = parse_config(PrepareConfig, argv)
    out_dir = Path(config.data_dir) / config.name
    stats = prepare_corpus(corpus_from_input(config.input or None, config.text_key), out_dir, config.tokenizer,
                           config.vocab_size, config.val_fraction)
    print(f"vocab size {stats['vocab_size']} ({stats['tokenizer']}, {stats['dtype']} ids); train "
          f"{stats['train_tokens']:,} tokens, val {stats['val_tokens']:,} tokens -> {out_dir}")


def _train(argv):
    from .train import train
    result = train(parse_config(TrainConfig, argv))
    return 130 if result["status"] == "interrupted" else 0


def _sample(argv):
    from .sample import sample
    sample(parse_config(SampleConfig, argv))


def _convert(argv):
    from .convert import convert
    convert(parse_config(ConvertConfig, argv))


def _sweep(argv):
    from .sweep import sweep_main
    return sweep_main(argv)


def _report(argv):
    from .sweep import report_main
    return report_main(argv)


def _export(argv):
    from .sharded_checkpoint import export
    config = parse_config(ExportConfig, argv)
    export(config.out_dir, config.ckpt)


def _memory(argv):
    from .memory import memory_main
    return memory_main(argv)


COMMANDS = {"prepare": _prepare, "train": _train, "sample": _sample, "convert": _convert,
            "sweep": _sweep, "report": _report, "memory": _memory,
            "export": _export}


def _memory_config():
    from .memory import MemoryConfig
    return MemoryConfig


CONFIGS = {"prepare": PrepareConfig, "train": TrainConfig, "sample": SampleConfig, "convert": ConvertConfig,
           "sweep": TrainConfig, "memory": _memory_config, "export": ExportConfig}


USAGES = {
    "sweep": "usage: leangpt sweep CONFIG.py [--grid=KEY=V1,V2,...]... [--key=value ...] [--sweep_dir=DIR]",
    "memory": "usage: leangpt memory [CONFIG.py] [--key=value ...] [--grid=KEY=V1,V2,...]... [--json]",
    "report": "usage: leangpt report SWEEP_DIR\n\nRebuild SWEEP_DIR's results.csv, results.json, report.md and plots "
              "from its runs' metrics, without training.",
}
GRID_OPTIONS = {
    "sweep": ["  --grid=KEY=V1,V2,...  one run per value; several --grid are crossed (also `grid = {...}` and "
              "`variants = [...]` in a config file)",
              "  --sweep_dir=DIR  where the runs and the report go (default: sweeps/<last config file's name>)"],
    "memory": ["  --grid=KEY=V1,V2,...  one line per value; several --grid are crossed",
               "  --stack=True  one line per technique of the memory stack, added in turn, with its ratio to the plain step",
               "  --json  print a JSON array instead of the table"],
}


def config_help(command: str, argv: list[str] = ()) -> str:
    """Every key the command accepts, with its type and default, and its value after the config
    files and --key=value arguments given before --help."""
    import dataclasses
    import typing
    from .errors import ConfigError
    cls = CONFIGS[command]
    if not isinstance(cls, type):  # imported on demand (the memory command pulls in torch)
        cls = cls()
    args = [a for a in argv if a not in ("-h", "--help", "--json")]
    current, note = {}, ""
    if args:
        try:
            if command in GRID_OPTIONS:
                from .config import parse_grid_args
                current = dataclasses.asdict(parse_grid_args(args, cls)[0])
            else:
                current = dataclasses.asdict(parse_config(cls, args))
        except ConfigError as exc:
            note = f"(the values below are the defaults: {exc})"
    hints = typing.get_type_hints(cls)
    lines = [USAGES.get(command, f"usage: leangpt {command} [CONFIG.py ...] [--key=value ...]"), ""]
    if command in GRID_OPTIONS:
        lines += ["options:", *GRID_OPTIONS[command], ""]
    lines.append("keys (value after the arguments given, type, default):" if current else "keys (default):")
    if note:
        lines.append(note)
    for f in dataclasses.fields(cls):
        kind = _type_name(hints[f.name])
        value = current.get(f.name, f.default)
        default = f"; default {f.default!r}" if value != f.default else ""
        lines.append(f"  --{f.name}={value!r}  ({kind}{default})")
    return "\n".join(lines)


def _type_name(annotation) -> str:
    import typing
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return "one of " + "|".join(map(str, args))
    if args:  # Optional[X]
        return " or ".join("None" if a is type(None) else a.__name__ for a in args)
    return annotation.__name__


# what a PDF or a word processor makes of "--": an em dash, an en dash, or a minus sign
PASTED_DASHES = ("\u2014", "\u2013", "\u2212")


def undo_pasted_dashes(argv: list[str], note=lambda line: print(line, file=sys.stderr)) -> list[str]:
    """`—device=cpu` (a handout's `--device=cpu` as its PDF renders it) read as `--device=cpu`,
    with one note naming the arguments so read."""
    fixed, changed = [], []
    for arg in argv:
        if arg[:1] in PASTED_DASHES and len(arg) > 1:
            arg = "--" + arg[1:].lstrip("".join(PASTED_DASHES) + "-")
            changed.append(arg)
        fixed.append(arg)
    if changed:
        note(f"note: read {len(changed)} argument(s) starting with a typographic dash (as a PDF renders "
             f"'--') as '--': {' '.join(changed[:3])}{' ...' if len(changed) > 3 else ''}")
    return fixed


def _error_line(message: str) -> None:
    """The one line of a user error, written whole in one write: the ranks of a torchrun job share
    one stderr pipe, and a print (text, then newline) lets two ranks' lines run together."""
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()


def run(command: str, argv: list[str]) -> int:
    """Run a command; user mistakes become one line on stderr and exit status 2."""
    argv = undo_pasted_dashes(argv)
    if any(a in ("-h", "--help") for a in argv):
        if command in CONFIGS:
            print(config_help(command, argv))
            return 0
        if command in USAGES:
            print(USAGES[command])
            return 0
    try:
        return COMMANDS[command](argv) or 0
    except LeanGPTError as exc:
        _error_line(str(exc))
        return 2
    except OSError as exc:  # disk full, read-only or missing directory, a file where a directory goes
        where = f": {exc.filename}" if exc.filename else ""
        _error_line(f"{exc.strerror or exc}{where}")
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        sys.exit(0)
    if argv[0] not in COMMANDS:
        print(f"error: unknown command {argv[0]!r}\n{USAGE}", file=sys.stderr)
        sys.exit(2)
    code = run(argv[0], argv[1:])
    world_size = os.environ.get("WORLD_SIZE", "")
    if world_size.isdigit() and int(world_size) > 1:
        # a rank of a distributed job ends without interpreter finalization, where gloo's worker
        # threads can abort it with SIGABRT ("terminate called without an active exception",
        # pytorch/pytorch#179291; seen here after a finished run and after a lost peer alike).
        # Everything the run writes is closed by now; the exit status and one-line error stand
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
