"""The best possible fit: least squares, its standard errors and Student t quantiles, each checked
against an independent computation, and the table a run prints of it."""
import re

import numpy as np
import pytest
from conftest import design, prose, run_main, seeded_data

from beyond_the_blog.theory.least_squares import least_squares, student_t_quantile


@pytest.mark.parametrize("seed,samples,noise", [(0, 100, 1.0), (3, 17, 5.0), (9, 4, 0.3)])
def test_least_squares_matches_numpy_polyfit(seed, samples, noise):
    x, y = seeded_data(seed, samples=samples, noise=noise)
    result = least_squares(x, y)
    expected = np.polyfit(x.double().numpy().ravel(), y.double().numpy().ravel(), 2)
    np.testing.assert_allclose(result.coefficients[0].numpy(), expected, rtol=1e-6, atol=1e-6)
    residuals = np.polyval(expected, x.double().numpy().ravel()) - y.double().numpy().ravel()
    assert result.loss[0].item() == pytest.approx(np.mean(residuals**2), rel=1e-6)


def test_standard_errors_match_the_textbook_formula():
    x, y = seeded_data(4)
    result = least_squares(x, y)
    X, Y = design(x), y.double().numpy().ravel()
    beta = np.linalg.solve(X.T @ X, X.T @ Y)
    sigma2 = np.sum((Y - X @ beta) ** 2) / (len(Y) - 3)  # unbiased: n - p degrees of freedom
    expected = np.sqrt(np.diag(sigma2 * np.linalg.inv(X.T @ X)))
    np.testing.assert_allclose(result.stderr[0].numpy(), expected, rtol=1e-8)


def test_no_standard_errors_from_three_points():
    x, y = seeded_data(0, samples=3)
    assert least_squares(x, y).stderr is None


@pytest.mark.parametrize("df,expected", [(1, 12.7062), (2, 4.3027), (10, 2.2281), (30, 2.0423), (97, 1.9847)])
def test_student_t_quantile_matches_printed_tables(df, expected):
    assert student_t_quantile(0.975, df) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("args,says", [(["--noise", "0", "--standardize"], "exact fit"),
                                       (["--samples", "3", "--epochs", "100"], "least-squares fit is exact here")])
def test_the_gap_to_an_exact_least_squares_fit(args, says, tmp_path, capsys):
    result = run_main(capsys, "--no-plot", "-q", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # the final-loss sentence, wrapped at 100 columns, read back as one line
    line = re.search(r"final loss [^;]*; least-squares loss .*?the floor no quadratic can beat on this data \([^)]*\)",
                     prose(result.stdout))[0]
    assert says in line and "%" not in line


def test_wide_numbers_keep_their_columns(tmp_path, capsys):
    result = run_main(capsys, "--samples", "5", "--x-range", "0", "0.001", "--optimizer", "lbfgs", "--no-plot",
                      cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if re.match(r"  [abc] ", line)]
    assert len(rows) == 3 and all(len(row) >= 7 for row in rows)
    assert all(float(row[2]) and float(row[3]) and float(row[4]) for row in rows)  # each a number of its own
