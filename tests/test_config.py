import pytest

from leangpt.config import SampleConfig, TrainConfig, config_from_dict, parse_config

from leangpt.errors import ConfigError


def test_defaults_follow_nanogpt():
    c = parse_config(TrainConfig, [])
    assert (c.batch_size, c.block_size, c.n_layer, c.n_head, c.n_embd) == (12, 1024, 12, 12, 768)
    assert (c.learning_rate, c.beta2, c.weight_decay, c.max_iters, c.warmup_iters) == (6e-4, 0.95, 0.1, 600000, 2000)
    assert c.gradient_accumulation_steps == 40 and c.init_from == "scratch" and c.optimizer_variant == "adamw"


def test_config_file_then_overrides(tmp_path):
    f = tmp_path / "c.py"
    f.write_text("import math\nbatch_size = 7\nlearning_rate = 2e-3\n_private = 3\nout_dir = 'x'\n")
    c = parse_config(TrainConfig, [str(f), "--batch_size=9", "--dropout=0.1", "--bias=true", "--compile=0"])
    assert c.batch_size == 9 and c.learning_rate == 2e-3 and c.out_dir == "x"
    assert c.dropout == 0.1 and c.bias is True and c.compile is False


@pytest.mark.parametrize("arg,value", [("--learning_rate=1", 1.0), ("--max_iters=1e3", 1000),
                                       ("--bias=False", False), ("--bias=1", True),
                                       ("--out_dir=a=b", "a=b"), ("--adafactor_beta1=None", None),
                                       ("--adafactor_beta1=0.9", 0.9)])
def test_value_conversion(arg, value):
    c = parse_config(TrainConfig, [arg])
    key = arg[2:].split("=", 1)[0]
    assert getattr(c, key) == value and type(getattr(c, key)) is type(value)


@pytest.mark.parametrize("argv,needle", [
    (["--n_layr=4"], "did you mean 'n_layer'"),
    (["--batch_size=abc"], "batch_size='abc' is not an integer"),
    (["--batch_size=1.5"], "is not an integer"),
    (["--bias=maybe"], "is not a bool"),
    (["--learning_rate=fast"], "is not a number"),
    (["--learning_rate=-1"], "learning_rate=-1.0 must be"),
    (["--n_embd=100", "--n_head=3"], "must be divisible by n_head=3"),
    (["--block_size=0"], "block_size=0 must be >= 1"),
    (["--n_headgroup=5", "--n_head=4", "--n_embd=64"], "must divide n_head=4"),
    (["--n_headgroup=0"], "n_headgroup=0 must be >= 1"),
    (["--optimizer_variant=sgd"], "choose one of: adam, adamw, adamsn, adafactor"),
    (["--init_from=gpt3"], "is not scratch, resume, gpt2, gpt2-medium, gpt2-large, gpt2-xl"),
    (["--dropout=1.0"], "dropout=1.0 must be in [0, 1)"),
    (["--device=tpu"], "device='tpu' is not one of"),
    (["--min_lr=1", "--learning_rate=0.1"], "min_lr=1.0 must be <="),
    (["--lr_decay_iters=-1"], "lr_decay_iters=-1 must be >= 0"),
    (["batch_size=3"], "config file 'batch_size=3' not found"),
    (["--batch_size"], "must look like --key=value"),
    (["--beta1=1.0"], "beta1=1.0 must be in [0, 1)"),
    (["--galore_rank=0"], "galore_rank=0 must be >= 1"),
    (["--adamsnsm_update_proj_gap=0"], "adamsnsm_update_proj_gap=0 must be >= 1"),
    (["--muon_momentum=1.5"], "muon_momentum=1.5 must be in [0, 1)"),
    (["--muon_adjust_lr_fn=fast"], "choose one of: match_rms_adamw, original"),
    (["--apollo_scale_type=row"], "choose one of: channel, tensor"),
    (["--galore_scale=0"], "galore_scale=0.0 must be a finite number > 0"),
    (["--sm3_beta=2"], "sm3_beta=2.0 must be in [0, 1]"),
])
def test_bad_inputs_are_one_line_errors(argv, needle):
    with pytest.raises(ConfigError) as info:
        parse_config(TrainConfig, argv)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_config_file_errors(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("n_layr = 3\n")
    with pytest.raises(ConfigError, match="unknown config key 'n_layr'.*did you mean 'n_layer'"):
        parse_config(TrainConfig, [str(bad)])
    broken = tmp_path / "broken.py"
    broken.write_text("x = (\n")
    with pytest.raises(ConfigError, match="failed to run: SyntaxError"):
        parse_config(TrainConfig, [str(broken)])
    typed = tmp_path / "typed.py"
    typed.write_text("batch_size = 'big'\n")
    with pytest.raises(ConfigError, match="batch_size='big' is not an integer"):
        parse_config(TrainConfig, [str(typed)])


def test_sample_config_validation():
    assert parse_config(SampleConfig, ["--top_k=None"]).top_k is None
    with pytest.raises(ConfigError, match="temperature"):
        parse_config(SampleConfig, ["--temperature=0"])
    with pytest.raises(ConfigError, match="top_k=0"):
        parse_config(SampleConfig, ["--top_k=0"])


def test_config_from_dict_ignores_unknown_keys():
    c = config_from_dict(TrainConfig, {"batch_size": 3, "some_future_key": 1})
    assert c.batch_size == 3


def test_help_shows_the_values_a_config_file_sets(capsys):
    from leangpt.cli import run
    assert run("train", ["config/train_shakespeare_char.py", "--n_layer=2", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--block_size=256  (int; default 1024)" in out and "--n_layer=2  (int; default 12)" in out
    assert "--seed=1337  (int)" in out


def test_sweep_memory_and_report_help(capsys):
    from leangpt.cli import run
    assert run("sweep", ["--help"]) == 0
    out = capsys.readouterr().out
    assert "--grid=KEY=V1,V2" in out and "--sweep_dir=DIR" in out
    assert run("memory", ["--help"]) == 0
    out = capsys.readouterr().out
    assert "--json" in out and "--world_size=1" in out and "--activation_checkpointing=False" in out
    assert run("report", ["--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: leangpt report SWEEP_DIR")


def test_a_choice_is_read_whatever_its_case_and_a_near_miss_is_suggested():
    assert parse_config(TrainConfig, ["--optimizer_variant=adamSN"]).optimizer_variant == "adamsn"
    assert parse_config(TrainConfig, ["--optimizer_variant=AdamW", "--dtype=BFloat16"]).dtype == "bfloat16"
    with pytest.raises(ConfigError, match=r"optimizer_variant='adafactr' is not allowed; did you mean 'adafactor'\? "
                                          r"choose one of: adam, adamw"):
        parse_config(TrainConfig, ["--optimizer_variant=adafactr"])


@pytest.mark.parametrize("argv,meant", [
    (["\u2014out", "dir=out-shakespeare-char"], "did you mean --out_dir=out-shakespeare-char? (a space where '_' belongs)"),
    (["--out_dir", "out-x"], "did you mean --out_dir=out-x?"),
    (["--batch_size"], "for example --batch_size=VALUE"),
])
def test_an_argument_without_its_equals_sign_gets_the_one_it_meant(argv, meant, capsys):
    from leangpt.cli import run
    assert run("train", ["--device=cpu", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"error: argument '{argv[0].replace(chr(0x2014), '--')}' must look like --key=value; {meant}"
    assert not any(line.startswith("Traceback") for line in err)
