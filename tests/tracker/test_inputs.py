import numpy as np
import pytest

from massdyn.tracker.inputs import InputError, InputSpec, TokenInputs, build_inputs, chunk_and_draw


def test_text_inputs_are_consecutive_chunks_drawn_with_a_seed(tokenizer, text_file):
    spec = InputSpec(n_seqs=4, seq_len=16, text=str(text_file), seed=1)
    a = build_inputs(spec, tokenizer)
    b = build_inputs(spec, tokenizer)
    assert a.ids.shape == (4, 16) and a.sha256 == b.sha256
    stream = tokenizer(text_file.read_text(), add_special_tokens=False)["input_ids"]
    chunks = np.asarray(stream[: len(stream) // 16 * 16]).reshape(-1, 16)
    for row in a.ids:
        assert any((row == c).all() for c in chunks)
    other = build_inputs(InputSpec(n_seqs=4, seq_len=16, text=str(text_file), seed=2), tokenizer)
    assert other.sha256 != a.sha256


def test_bos_is_prepended(tokenizer, text_file):
    got = build_inputs(
        InputSpec(n_seqs=3, seq_len=8, text=str(text_file), prepend_bos=True), tokenizer
    )
    assert (got.ids[:, 0] == tokenizer.bos_token_id).all() and got.ids.shape == (3, 8)


def test_token_ids_are_used_as_given(tmp_path):
    ids = np.arange(24).reshape(3, 8)
    np.save(tmp_path / "ids.npy", ids)
    got = build_inputs(InputSpec(token_ids=str(tmp_path / "ids.npy")))
    np.testing.assert_array_equal(got.ids, ids)
    got.save(tmp_path / "out")
    assert TokenInputs.load(tmp_path / "out").sha256 == got.sha256


@pytest.mark.parametrize(
    ("array", "message"),
    [(np.arange(5), "2-D"), (np.ones((2, 3)), "integers"), (-np.ones((2, 3), dtype=int), ">= 0")],
)
def test_bad_token_id_arrays(tmp_path, array, message):
    np.save(tmp_path / "ids.npy", array)
    with pytest.raises(InputError, match=message):
        build_inputs(InputSpec(token_ids=str(tmp_path / "ids.npy")))


def test_too_little_text_and_missing_files(tokenizer, tmp_path):
    (tmp_path / "short.txt").write_text("hello world")
    with pytest.raises(InputError, match="sequences are needed"):
        build_inputs(InputSpec(n_seqs=10, seq_len=64, text=str(tmp_path / "short.txt")), tokenizer)
    with pytest.raises(InputError, match="not found"):
        build_inputs(InputSpec(text=str(tmp_path / "nope.txt")), tokenizer)
    with pytest.raises(InputError, match="at most one"):
        InputSpec(text="a", token_ids="b")


def test_tampered_stored_inputs_are_refused(tmp_path):
    got = TokenInputs.from_array(np.arange(6).reshape(2, 3), "x")
    got.save(tmp_path)
    np.save(tmp_path / "inputs.npy", np.arange(6).reshape(2, 3) + 1)
    with pytest.raises(InputError, match="sha256"):
        TokenInputs.load(tmp_path)


def test_chunking_without_bos_token():
    with pytest.raises(InputError, match="no BOS"):
        chunk_and_draw(list(range(100)), InputSpec(n_seqs=2, seq_len=8, prepend_bos=True), None)
