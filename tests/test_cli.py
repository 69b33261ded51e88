"""The command line's mistakes: every value or combination it cannot serve is refused in one line,
with exit status 2, before any training and before anything is written; --help and the refusals
answer before torch is imported."""
import pytest
import torch
from conftest import clean_env, run_main, run_script

BAD_INPUTS = [
    (["--epochs", "0"], "--epochs"),
    (["--epochs", "ten"], "--epochs"),
    (["--lr", "0"], "--lr"),
    (["--lr", "-1e-3"], "--lr"),
    (["--lr", "nan"], "--lr"),
    (["--lr", "inf"], "--lr"),
    (["--samples", "2"], "--samples"),
    (["--noise", "-1"], "--noise"),
    (["--noise", "nan"], "--noise"),
    (["--x-range", "5", "5"], "--x-range"),
    (["--x-range", "12", "-2"], "--x-range"),
    (["--log-interval", "-1"], "--log-interval"),
    (["--model", "cubic"], "--model"),
    (["--plot", "no/such/folder/fit.png"], "does not exist"),
    (["--metrics", "no/such/folder/m.json"], "does not exist"),
    (["--save-model", "no/such/folder/m.pt"], "does not exist"),
    (["--metrics", "/sys/m.json"], "not writable"),
    (["--plot", "."], "is a folder"),
    (["--runs", "0"], "--runs"),
    (["--tol", "-1"], "--tol"),
    (["--runs", "3", "--optimizer", "lbfgs"], "lbfgs"),
    (["--animate", "fit.png"], ".gif"),
    (["--optimizer", "rmsprop"], "--optimizer"),
]


def assert_refused_in_one_line(result, mentions, folder):
    """Exit 2, nothing on stdout, one error line on stderr that names `mentions`, nothing written."""
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("quadratic_regression.py: error:") and mentions in lines[0]
    assert not list(folder.iterdir())  # nothing written


@pytest.mark.parametrize("args,mentions", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_one_line_error(args, mentions, tmp_path, capsys):
    """Checked in this process through main(argv): the refusal comes before torch loads, as the script's."""
    assert_refused_in_one_line(run_main(capsys, *args, cwd=tmp_path), mentions, tmp_path)


# Values that pass argparse but cannot run sensibly: refused with a reason, before any training.
REFUSED = [
    (["--seed", str(2**64)], "--seed"),
    (["--seed", str(-2**63 - 1)], "--seed"),
    (["--runs", "99999999999999999999"], "memory"),
    (["--runs", "3", "--seed", str(2**64 - 2)], "--runs 3"),
    (["--samples", "2000000000"], "memory"),
    (["--epochs", "9" * 400, "--animate", "a.gif"], "--epochs"),
    (["--x-range", "0", "1e39"], "float32"),
    (["--x-range", "0", "1e10"], "float32"),
    (["--noise", "1e30"], "float32"),
    (["--noise", "1e19", "--animate", "n.gif"], "float32"),
    (["--x-range", "0", "1e-45"], "too nearly dependent"),
    (["--x-range", "0", "1e-20", "--standardize"], "too nearly dependent"),
    (["--x-range", "1000000", "1000001"], "too nearly dependent"),
    (["--x-range", "-inf", "3"], "--x-range"),
    (["--threads", "0"], "--threads"),
    (["--metrics", ""], "empty"),
    (["--plot", ""], "empty"),
    (["--plot", "p.txt"], "cannot write .txt"),
    (["--plot", "o.png", "--metrics", "o.png"], "same file"),
    (["--metrics", "f", "--save-model", "f"], "same file"),
    (["--plot", "g.gif", "--animate", "g.gif"], "same file"),
    (["--plot", "noext", "--metrics", "noext.png"], "same file"),
]


@pytest.mark.parametrize("args,mentions", REFUSED, ids=[" ".join(a)[:40] for a, _ in REFUSED])
def test_values_past_the_parser_are_refused_in_one_line(args, mentions, tmp_path, capsys):
    """In this process through main(argv); the data's checks come after torch loads, still before any training."""
    assert_refused_in_one_line(run_main(capsys, *args, cwd=tmp_path), mentions, tmp_path)


# A few of both lists as a user types them; the last is refused for its data, after torch has loaded
THROUGH_THE_SCRIPT = [*BAD_INPUTS[::8], (["--x-range", "0", "1e-45"], "too nearly dependent")]


@pytest.mark.parametrize("args,mentions", THROUGH_THE_SCRIPT, ids=[" ".join(a) for a, _ in THROUGH_THE_SCRIPT])
def test_the_real_script_refuses_in_one_line(args, mentions, tmp_path):
    """The real interpreter, exit status and streams: nothing else on stderr, torch's import included."""
    assert_refused_in_one_line(run_script(*args, cwd=tmp_path, timeout=60), mentions, tmp_path)


@pytest.mark.parametrize(("args", "reason"), [
    (["--gradients", "manual", "--runs", "3", "--batch-size", "10"], "drop --batch-size"),
    (["--gradients", "manual", "--batch-size", "10"], "drop --batch-size"),
    (["--batch-size", "10", "--optimizer", "lbfgs"], "lbfgs"),
    (["--batch-size", "0"], "--batch-size must be between 1 and --samples 100"),
    (["--batch-size", "21", "--samples", "20"], "--batch-size must be between 1 and --samples 20"),
    (["--lr-sweep", "8", "--batch-size", "10"], "drop --batch-size / --gradients manual"),
    (["--lr-sweep", "8", "--gradients", "manual"], "drop --batch-size / --gradients manual"),
    (["--tol", "1e-6", "--epochs", "150", "--log-interval", "100"], "could never stop the run"),
    (["--tol", "1e-6", "--optimizer", "lbfgs", "--log-interval", "15"], "could never stop the run"),
    (["--lr-sweep", "4096", "--samples", "100000"], "GiB of memory"),
    (["--threads", "100000"], "--threads must be from 1 to"),
])
def test_combinations_that_cannot_work_are_refused_in_one_line(tmp_path, capsys, args, reason):
    result = run_main(capsys, *args, cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("quadratic_regression.py: error: ") and reason in result.stderr
    assert result.stderr.endswith("(see --help)\n") and result.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize("args,message", [
    (["--runs", "2"], "--landscape draws the path of a single run"),
    (["--metrics", "l.png"], "--metrics and --landscape name the same file"),
    (["--plot", "l.png"], "--plot and --landscape name the same file"),
])
def test_landscape_refusals(tmp_path, capsys, args, message):
    result = run_main(capsys, "--landscape", "l.png", *args, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_landscape_into_a_missing_folder_is_refused_before_training(tmp_path, capsys):
    result = run_main(capsys, "--landscape", "no/such/l.png", cwd=tmp_path)
    assert result.returncode == 2 and "--landscape no/such/l.png: folder" in result.stderr


@pytest.mark.parametrize("args,message", [
    (["--lr-sweep", "1"], "between 2 and"),
    (["--lr-sweep", "100000"], "between 2 and"),
    (["--lr-sweep", "8", "--optimizer", "adam"], "sgd or momentum"),
    (["--lr-sweep", "8", "--optimizer", "lbfgs"], "sgd or momentum"),
    (["--lr-sweep", "8", "--runs", "3"], "drop --runs"),
    (["--lr-sweep", "8", "--model", "both"], "drop --runs / --model both"),
    (["--lr-sweep", "8", "--lr", "1e-4"], "drop --animate / --tol / --lr"),
])
def test_sweep_refusals(tmp_path, capsys, args, message):
    result = run_main(capsys, *args, "--metrics", "m.json", cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_missing_device_is_refused_before_training(tmp_path, capsys):
    result = run_main(capsys, "--device", "cuda", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip() == ("quadratic_regression.py: error: --device cuda: not available on this machine "
                                     "(see --help)")


@pytest.mark.parametrize("args", [["--x-range", "-1e3", "1e3"], ["--x-range", "-1E1", "-.5"], ["--seed", "-5"],
                                  ["--x-range", "-2_0", "1e1"]])
def test_negative_numbers_in_any_notation(args, tmp_path, capsys):
    result = run_main(capsys, "--model", "linear", "--epochs", "50", "--no-plot", "-q", *args, cwd=tmp_path)
    assert result.returncode in (0, 1), result.stderr  # -1e3..1e3 diverges at lr 2e-5, and says so
    assert "Traceback" not in result.stderr and "expected" not in result.stderr


def test_errors_and_help_come_before_torch_is_imported(tmp_path):
    """--help and argument mistakes must not wait for `import torch`: with an importable `torch`
    that fails on purpose, they still answer."""
    fake = tmp_path / "fake"
    (fake / "torch").mkdir(parents=True)
    (fake / "torch" / "__init__.py").write_text("raise ImportError('torch was imported')\n")
    env = clean_env(PYTHONPATH=str(fake))
    help_ = run_script("--help", cwd=tmp_path, env=env)
    assert help_.returncode == 0 and "--model {params,linear,both}" in help_.stdout
    for option in ("--epochs", "--lr", "--seed", "--log-interval", "--save-model", "--optimizer", "--standardize",
                   "--tol", "--runs", "--animate", "--metrics", "--device", "--x-range", "--no-show", "--quiet"):
        assert option in help_.stdout
    error = run_script("--lr", "-1", cwd=tmp_path, env=env)
    assert error.returncode == 2 and "torch was imported" not in error.stderr
    valid = run_script("--epochs", "1", cwd=tmp_path, env=env)
    assert "torch was imported" in valid.stderr  # the fake really is what `import torch` finds


def test_the_command_line_names_the_optimizers_from_their_table(monkeypatch, tmp_path, capsys):
    """A new optimizer is one entry in optimizers.OPTIMIZERS (and its defaults in the model table): --help and the
    refusals that list optimizers by what they can do name it with no change to the command line."""
    from beyond_the_blog.cli.options import build_parser
    from beyond_the_blog.optimizers import OPTIMIZERS, Optimizer
    monkeypatch.setitem(OPTIMIZERS, "rmsprop", Optimizer(None, "RMSprop", vectorizable=True, minibatches=True,
                                                         help="a made-up entry", no_limit="divides its steps"))
    help_text = " ".join(build_parser().format_help().split())
    assert "adam; lbfgs: each epoch one L-BFGS step of up to 20 iterations; rmsprop: a made-up entry" in help_text
    assert "full-batch sgd, momentum, adam or rmsprop," in help_text
    refused = run_main(capsys, "--runs", "3", "--optimizer", "lbfgs", cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.rstrip().endswith("use sgd, momentum, adam or rmsprop (see --help)")
    refused = run_main(capsys, "--lr-sweep", "4", "--optimizer", "adam", cwd=tmp_path)
    assert "(adam scales its steps, lbfgs searches its own, rmsprop divides its steps)" in refused.stderr
