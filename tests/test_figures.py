"""The figures read back: the fit beside its loss curve, a loss panel with nothing finite to draw,
and the GIF of training with the frames it promises. (The --landscape, --lr-sweep and minibatch
figures are read back in test_landscape.py, test_sweep.py and test_minibatches.py.)"""
import re

import matplotlib.text
from conftest import fit, run_script, seeded_data

import quadratic_regression as qr
from beyond_the_blog.report import figures
from beyond_the_blog.theory.least_squares import least_squares
from beyond_the_blog.training import monitor


def test_figure_has_fit_and_loss_panels(tmp_path):
    x, y = seeded_data()
    model = qr.ParamQuadratic()
    result = fit(model, x, y, model_name="params", epochs=2000)
    fig = figures.plot_fits([result], x, y, least_squares(x, y), path=str(tmp_path / "fit.png"), show=False)
    left, right = fig.axes
    labels = [line.get_label() for line in left.get_lines()]
    assert labels == ["Original Data", "True: (x-4)(x-8)", "Least squares", "Fitting Line"]
    assert left.get_lines()[2].get_linestyle() == "--"
    fitted = left.get_lines()[3]  # drawn last and on top, wider than the references: it stays visible over them
    assert fitted.get_zorder() > max(line.get_zorder() for line in left.get_lines()[:3])
    assert fitted.get_linewidth() > 2 * max(line.get_linewidth() for line in left.get_lines()[1:3])
    assert right.get_xscale() == "log" and right.get_yscale() == "log"
    epochs = right.get_lines()[0].get_xdata()
    assert list(epochs) == [e for e, _ in result.log.history]
    assert "final loss" in left.get_title() and "params" in left.get_title()
    assert "sgd: params lr 2e-05" in left.get_title() and "sgd: params lr 2e-05" in right.get_title()


def test_two_fits_read_apart_over_the_references(tmp_path):
    x, y = seeded_data()
    params = fit(qr.ParamQuadratic(), x, y, model_name="params", epochs=2000)
    linear = fit(qr.LinearProduct(), x, y, model_name="linear", epochs=2000, lr=1e-5)
    fig = figures.plot_fits([params, linear], x, y, least_squares(x, y), path=str(tmp_path / "fit.png"),
                            show=False)
    left, right = fig.axes
    lines = {line.get_gid(): line for line in left.get_lines()}
    band, line = lines["fit:Fitting Line (params)"], lines["fit:Fitting Line (linear)"]
    references = [ln for ln in left.get_lines() if ln.get_gid() is None]
    assert min(band.get_zorder(), line.get_zorder()) > max(ln.get_zorder() for ln in references)
    # on the same curve, one over the other: a narrower, dashed line on top of the wide band
    assert line.get_zorder() > band.get_zorder() and line.get_linewidth() < band.get_linewidth() / 2
    assert band.get_linestyle() == "-" and line.get_linestyle() != "-"
    for title in (left.get_title(), right.get_title()):
        assert "params lr 2e-05" in title and "linear lr 1e-05" in title
    texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_text() and t.get_visible()]
    assert min(t.get_fontsize() for t in texts) >= 9


def test_replications_figure_titles_state_the_lr(tmp_path, monkeypatch):
    from beyond_the_blog import cli
    from beyond_the_blog.program import outputs
    drawn = []

    def keep(*args):
        drawn.append(figures.plot_replications(*args))
        return drawn[-1]

    monkeypatch.setattr(outputs, "plot_replications", keep)
    status = cli.main(["--model", "linear", "--runs", "8", "--epochs", "300", "--lr", "1e-5", "-q", "--no-show",
                       "--plot", str(tmp_path / "runs.png")])
    assert status in (0, 1) and (tmp_path / "runs.png").stat().st_size > 10_000
    left, right = drawn[0].axes
    assert "sgd: linear lr 1e-05" in left.get_title() and "300 epochs" in left.get_title()
    assert "sgd: linear lr 1e-05" in right.get_title()


def test_a_loss_panel_without_a_finite_loss_draws():
    from matplotlib.figure import Figure

    from beyond_the_blog.report.figures import draw_losses
    ax = Figure().subplots()
    draw_losses(ax, [("params", [(1, float("inf"))], "tab:blue")], 1.0)
    assert ax.get_yscale() == "linear" and "no finite loss" in ax.texts[0].get_text()


def test_animation_has_the_promised_frames(tmp_path):
    result = run_script("--model", "linear", "--epochs", "5000", "--animate", "fit.gif", "--no-plot", "-q",
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    promised = int(re.search(r"animation written to fit.gif \((\d+) frames\)", result.stdout)[1])
    assert 60 <= promised <= 120
    from PIL import Image
    with Image.open(tmp_path / "fit.gif") as gif:
        assert gif.n_frames == promised


def test_animation_frames_state_the_lr():
    x, y = seeded_data()
    result = fit(qr.LinearProduct(), x, y, model_name="linear", epochs=500, frame_epochs=monitor.frame_epochs(500))
    fig, draw = figures.animation_frames(x, y, result)
    (line,) = draw(len(result.log.frames) - 1)
    assert line.get_gid() == "animation:fit" and line.get_zorder() >= max(ln.get_zorder() for ln in fig.axes[0].lines)
    assert fig.axes[0].get_title().startswith("linear (sgd, lr 2e-05): epoch 500/500, loss ")


def test_frames_are_recorded_only_when_asked():
    x, y = seeded_data()
    plain = fit(qr.LinearProduct(), x, y, model_name="linear", epochs=500)
    assert plain.log.frames == []
    epochs = monitor.frame_epochs(500)
    assert len(epochs) == len(set(epochs)) == 90 and epochs[0] == 1 and epochs[-1] == 500
    recorded = fit(qr.LinearProduct(), x, y, model_name="linear", epochs=500, frame_epochs=epochs)
    assert [e for e, _ in recorded.log.frames] == epochs
