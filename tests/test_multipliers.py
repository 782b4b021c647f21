"""The ROUP family against its definition, LUT loading, names and error metrics."""

import numpy as np
import pytest

from axonnx.errors import AxonnxError
from axonnx.multipliers import (
    LUT, NAMED_STRENGTHS, ROUP, Skip, booth_digits, error_metrics, parse, parse_list,
    roup_family,
)
from axonnx.multipliers.roup import booth_digit, round_half_up

A = np.arange(-128, 128)[:, None]
B = np.arange(-128, 128)[None, :]


def definition(a: int, b: int, p: int, widths, n: int = 8) -> int:
    """SPEC.md, written independently of the package: bits, digits, floor division."""
    bits = [(b >> k) & 1 for k in range(n)]
    total = 0
    for j, r in zip(range(p, n // 2), widths):
        d = -2 * bits[2 * j + 1] + bits[2 * j] + (bits[2 * j - 1] if j > 0 else 0)
        rounded = a if r == 0 else (2**r) * ((a + 2 ** (r - 1)) // 2**r)
        total += rounded * d * 4**j
    return total


def test_booth_digits_reconstruct_every_operand():
    for n in (4, 8, 16):
        values = np.arange(-(2 ** (n - 1)), 2 ** (n - 1), 1 if n <= 8 else 97)
        digits = booth_digits(values, n)
        assert digits.min() >= -2 and digits.max() <= 2
        assert np.array_equal((digits * 4 ** np.arange(n // 2)).sum(-1), values)


def test_round_half_up_floors_negatives():
    assert [round_half_up(v, 2) for v in (-6, -5, -2, -1, 1, 2, 5, 6)] == [-4, -4, 0, 0, 0, 4, 4, 8]
    assert round_half_up(127, 3) == 128  # one past the 8-bit range, as intended


@pytest.mark.parametrize("mult", roup_family(8), ids=lambda m: m.name)
def test_every_8bit_configuration_matches_the_definition_exhaustively(mult):
    """All 65,536 operand pairs of each of the 24 distinct ROUP(P,R), vectorised model
    against an independent transcription of the definition (and the scalar golden model
    on a stride)."""
    table = mult.multiply(A, B)
    expected = np.array([[definition(a, b, mult.perforation, mult.widths) for b in range(-128, 128)]
                         for a in range(-128, 128)])
    assert np.array_equal(table, expected)
    for a in range(-128, 128, 17):
        for b in range(-128, 128, 13):
            assert mult.multiply_scalar(a, b) == table[a + 128, b + 128]


def zero_point_free_definition(a: np.ndarray, b: np.ndarray, p: int, widths) -> np.ndarray:
    """SPEC.md on 9-bit zero-point-free operands: b's digits from its 10-bit two's
    complement (5 digits), the fifth one kept exact."""
    bits = [(b >> k) & 1 for k in range(10)]
    total = np.zeros(np.broadcast_shapes(a.shape, b.shape), np.int64)
    for j, r in zip(range(p, 5), list(widths) + [0]):
        d = -2 * bits[2 * j + 1] + bits[2 * j] + (bits[2 * j - 1] if j > 0 else 0)
        rounded = a if r == 0 else (2**r) * ((a + 2 ** (r - 1)) // 2**r)
        total += rounded * d * 4**j
    return total


@pytest.mark.parametrize("mult", roup_family(8), ids=lambda m: m.name)
def test_zero_point_free_operands_match_the_definition_exhaustively(mult):
    """x - zx and w - zw span [-255, 255]: all 261,121 pairs of each configuration, and
    the exact configuration is the plain product there too."""
    a = np.arange(-255, 256)[:, None]
    b = np.arange(-255, 256)[None, :]
    got = mult.multiply(a, b)
    assert np.array_equal(got, zero_point_free_definition(a, b, mult.perforation, mult.widths))
    assert np.array_equal(got[127:383, 127:383], mult.multiply(A, B))  # the 8-bit block
    for av, bv in ((255, -255), (-255, 255), (200, 129), (-129, -200)):
        assert mult.multiply_scalar(av, bv) == got[av + 255, bv + 255]
    if mult.is_exact:
        assert np.array_equal(got, a * b)
    with pytest.raises(AxonnxError, match="outside its accepted range"):
        mult.multiply(np.array(256), np.array(0))


def test_exact_configuration_and_products_fit_2n_bits():
    assert np.array_equal(parse("ROUP(0,0)").multiply(A, B), A * B)
    for m in roup_family(8):
        t = m.multiply(A, B)
        assert t.min() >= -(2**15) and t.max() < 2**15, m.name


@pytest.mark.parametrize("n", [4, 6, 10, 16])
def test_other_widths(n):
    m = ROUP(1, 3, bits=n)
    rng = np.random.default_rng(n)
    a = rng.integers(-(2 ** (n - 1)), 2 ** (n - 1), 300)
    b = rng.integers(-(2 ** (n - 1)), 2 ** (n - 1), 300)
    got = m.multiply(a, b)
    assert all(got[i] == definition(int(a[i]), int(b[i]), 1, m.widths, n) for i in range(300))
    assert np.array_equal(ROUP(0, 0, bits=n).multiply(a, b), a * b)


@pytest.mark.parametrize("name, canonical", [
    ("ROUP(1,4)", "ROUP(1,4)"), (" ROUP( 2 , 6 ) ", "ROUP(2,6)"), ("ROUP(1,2)", "ROUP(1,0)"),
    ("ROUP(1,4;N=16)", "ROUP(1,4;N=16)"), ("ROUP(1;r=2/0/0)", "ROUP(1,4)"),
    ("ROUP(0;r=4/2/2/0)", "ROUP(0;r=4/2/2/0)"), ("SKIP", "SKIP"), ("skip", "SKIP"),
    ("ROUP_M", NAMED_STRENGTHS["ROUP_M"]),
])
def test_names_round_trip(name, canonical):
    m = parse(name)
    assert m.name == canonical
    assert parse(m.name).name == canonical


@pytest.mark.parametrize("bad", ["ROUP(4,0)", "ROUP(1)", "ROUP(1,4;N=7)", "ROUP(1,4;N=18)",
                                 "ROUP(1;r=1/2)", "MUL(1,2)", "", "ROUP(0;r=9/0/0/0)"])
def test_bad_names_are_rejected_with_a_message(bad):
    with pytest.raises(AxonnxError):
        parse(bad)


def test_parse_list_keeps_commas_inside_parentheses():
    names = [m.name for m in parse_list("ROUP(0,0), ROUP(1,4),SKIP")]
    assert names == ["ROUP(0,0)", "ROUP(1,4)", "SKIP"]


def test_skip_multiplies_to_zero():
    assert not Skip().multiply(A, B).any()


def test_lut_bin_and_npy_formats(tmp_path):
    a = np.arange(256)[:, None]
    b = np.arange(256)[None, :]
    table = (a * b + (a ^ b) % 3).astype("<u2")
    (tmp_path / "mine.bin").write_bytes(table.tobytes())
    np.save(tmp_path / "other.npy", table.astype(np.int32))
    from_bin = LUT.from_file(tmp_path / "mine.bin")
    from_npy = LUT.from_file(tmp_path / "other.npy")
    assert from_bin.name == "LUT(mine)"
    assert from_bin.multiply(np.array([200]), np.array([3]))[0] == table[200, 3]
    assert np.array_equal(from_bin.table, from_npy.table)
    (tmp_path / "short.bin").write_bytes(b"\0" * 100)
    with pytest.raises(AxonnxError, match="65536"):
        LUT.from_file(tmp_path / "short.bin")


def test_lut_found_on_search_path(tmp_path, monkeypatch):
    exact = LUT.exact()
    np.save(tmp_path / "exact8u.npy", exact.table)
    monkeypatch.setenv("AXONNX_LUT_PATH", str(tmp_path))
    m = parse("LUT(exact8u)")
    assert m.is_exact
    with pytest.raises(AxonnxError, match="AXONNX_LUT_PATH"):
        parse("LUT(nowhere_to_be_found)")


def test_signed_exact_lut_equals_exact_roup():
    signed = LUT.exact(a_signed=True, b_signed=True)
    assert np.array_equal(signed.multiply(A, B), parse("ROUP(0,0)").multiply(A, B))


def test_error_metrics_by_hand():
    exact = error_metrics(parse("ROUP(0,0)"))
    assert exact.error_rate == 0 and exact.wce == 0 and exact.pairs == 65536
    # Perforating digit 0 drops a * d_0: the error is -a * d_0 exactly.
    m = ROUP(1, 0)
    err = m.multiply(A, B) - A * B
    d0 = booth_digits(B, 8)[..., 0]
    assert np.array_equal(err, -A * d0)
    metrics = error_metrics(m)
    assert metrics.wce == 256  # a = -128, d_0 = -2... or +2
    assert metrics.med == pytest.approx(np.abs(err).mean())
    assert metrics.mean_error == pytest.approx(err.mean())
    assert metrics.variance == pytest.approx(err.var())
    assert metrics.nmed == pytest.approx(np.abs(err).mean() / 2**14)
    nz = (A * B) != 0
    assert metrics.mred == pytest.approx((np.abs(err)[nz] / np.abs(A * B)[nz]).mean())


def test_more_aggressive_configurations_err_more():
    med = {m.name: error_metrics(m).med for m in roup_family(8)}
    assert med["ROUP(0,0)"] < med["ROUP(0,4)"] < med["ROUP(1,4)"] < med["ROUP(2,6)"] < med["ROUP(3,8)"]
