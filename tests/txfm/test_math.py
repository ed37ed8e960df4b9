"""Hand-computed values: Poisson loss with a mask, rectified tanh and its gradient, library normalisation."""
import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from txfm.activations import rectified_tanh
from txfm.losses import negbin_nll_log1p, reconstruction_loss
from txfm.preprocessing import library_normalize_log1p, log1p


def test_poisson_loss_2x3_with_mask():
    p = torch.tensor([[0.0, 1.0, 2.0], [0.5, 0.0, 1.0]])
    t = torch.tensor([[0.0, 1.0, 0.0], [1.0, 2.0, 0.0]])
    measured = torch.tensor([[True, True, False], [True, True, True]])
    revealed = torch.tensor([[True, False, False], [False, False, True]])
    e = math.e
    # loss_i = exp(p) - p * exp(t), element by element
    r0 = [1.0, e - e]  # third gene unmeasured: excluded
    r1 = [math.exp(0.5) - 0.5 * e, 1.0, e - 1.0]
    want_total = (sum(r0) / 2 + sum(r1) / 3) / 2
    want_masked = (r0[1] + (r1[0] + r1[1]) / 2) / 2
    want_revealed = (r0[0] + r1[2]) / 2
    parts = reconstruction_loss("poisson", p, t, measured, revealed)
    assert parts.loss.item() == pytest.approx(want_total, rel=1e-6)
    assert parts.masked.item() == pytest.approx(want_masked, rel=1e-6)
    assert parts.revealed.item() == pytest.approx(want_revealed, rel=1e-6)


def test_unmeasured_garbage_never_enters_the_loss():
    p = torch.tensor([[0.0, float("inf")]])
    t = torch.tensor([[1.0, float("nan")]])
    parts = reconstruction_loss("poisson", p, t, torch.tensor([[True, False]]), torch.tensor([[True, False]]))
    assert parts.loss.item() == pytest.approx(1.0)


@pytest.mark.parametrize("z,want", [(-3.0, 0.0), (0.0, 0.0), (4 * math.e, math.log(100001) * math.tanh(1.0)),
                                    (8 * math.e, math.log(100001) * math.tanh(2.0))])
def test_rectified_tanh_values(z, want):
    assert rectified_tanh(torch.tensor(z, dtype=torch.float64)).item() == pytest.approx(want, rel=1e-9)


def test_rectified_tanh_gradient():
    z = torch.tensor([-1.0, 4 * math.e, 0.5], dtype=torch.float64, requires_grad=True)
    rectified_tanh(z).sum().backward()
    c = math.log(100001) / (4 * math.e)
    want = [0.0, c * (1 - math.tanh(1.0) ** 2), c * (1 - math.tanh(0.5 / (4 * math.e)) ** 2)]
    assert z.grad.tolist() == pytest.approx(want, rel=1e-9)


def test_rectified_tanh_is_bounded():
    assert 0.0 <= rectified_tanh(torch.tensor(1e6)).item() <= math.log(1e5 + 1) + 1e-5  # saturates, never exceeds


def test_library_normalisation_by_hand():
    x = np.array([[1, 3, 0, 0], [0, 0, 0, 0], [2, 2, 4, 2]])
    want = np.array([[math.log1p(2.5), math.log1p(7.5), 0, 0], [0, 0, 0, 0],
                     [math.log1p(2), math.log1p(2), math.log1p(4), math.log1p(2)]])
    np.testing.assert_allclose(library_normalize_log1p(x, 10.0), want, rtol=1e-6)
    np.testing.assert_allclose(library_normalize_log1p(sp.csr_matrix(x), 10.0).toarray(), want, rtol=1e-6)
    np.testing.assert_allclose(log1p(sp.csr_matrix(x)).toarray(), np.log1p(x), rtol=1e-6)


def test_negbin_matches_scipy():
    from scipy.stats import nbinom
    p, t, log_theta = torch.tensor([[1.2]], dtype=torch.float64), torch.tensor([[math.log(3.0)]], dtype=torch.float64), torch.tensor([0.7], dtype=torch.float64)
    mu, theta, y = math.exp(1.2), math.exp(0.7), 3.0  # y = exp(t): an integer here so scipy applies
    want = -nbinom.logpmf(y, theta, theta / (theta + mu))
    assert negbin_nll_log1p(p, t, log_theta).item() == pytest.approx(want, rel=1e-9)
