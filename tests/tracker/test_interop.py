import numpy as np
import pandas as pd
import pytest

from massdyn.tracker.interop import export_paper_stats, import_paper_stats, parse_stats_text


def table(n_seq=10, n_layer=6, steps=(0, 1000)):
    rng = np.random.default_rng(0)
    rows = []
    for s in steps:
        for q in range(n_seq):
            for layer in range(n_layer):
                t = np.sort(rng.uniform(1, 100, 3))[::-1]
                rows.append(("pythia-14m", s, layer, q, *t, rng.uniform(0.1, 1)))
    return pd.DataFrame(
        rows, columns=["model", "step", "layer", "seq", "top1", "top2", "top3", "median"]
    )


def test_export_import_round_trip(tmp_path):
    df = table()
    files = export_paper_stats(df, tmp_path)
    assert [f.name for f in files] == ["exp2_pythia_14m_step0", "exp2_pythia_14m_step1000"]
    assert files[0].parent == tmp_path / "pythia_14m" / "stats"
    back = import_paper_stats(tmp_path)
    pd.testing.assert_frame_equal(
        back,
        df.sort_values(["model", "step", "layer", "seq"], ignore_index=True),
        check_dtype=False,
        rtol=1e-8,
    )


def test_reads_numpy_printed_arrays():
    arr = np.arange(2 * 4 * 3, dtype=float).reshape(2, 4, 3) + 0.5
    with np.printoptions(threshold=10**6):
        text = np.array2string(arr, separator=" ")
    np.testing.assert_array_equal(parse_stats_text(text), arr)
    np.testing.assert_array_equal(parse_stats_text(repr(arr)), arr)


def test_bad_files(tmp_path):
    stats = tmp_path / "pythia_70m" / "stats"
    stats.mkdir(parents=True)
    (stats / "exp2_pythia_70m_step0").write_text("1 2 3\n4 5 6\n")
    with pytest.raises(ValueError, match="exp2_pythia_70m_step0"):
        import_paper_stats(tmp_path)
    with pytest.raises(FileNotFoundError):
        import_paper_stats(tmp_path / "nothing")
    with pytest.raises(ValueError, match="one model"):
        export_paper_stats(pd.concat([table(), table().assign(model="other")]), tmp_path)
