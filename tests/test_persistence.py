"""invrec.save / invrec.load: every estimator round-trips exactly; a crafted file runs nothing; a
damaged one is refused."""

import builtins
import io
import json
import os
import pickle
import subprocess
import warnings
import zipfile

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone

import invrec
from invrec.baselines import PopularityRecommender, UltraGCNRecommender
from invrec.eior import EIORRecommender, EIORRegressor
from invrec.invariance import EnvironmentInference, FusedObjective, Fusion, MaskLearning
from invrec.milk import MILKRecommender
from invrec.painvrl import PaInvRLRecommender
from invrec.persistence import (
    FORMAT_VERSION,
    ModelFileError,
    UnsafeModelFileError,
    UnsafePickleError,
    model_allowlist,
    read_manifest,
)
from invrec.utils.discovery import all_estimators

TINY = dict(max_epochs=2, batch_size=64, embedding_dim=4, content_dim=4, n_negatives=4, random_state=0)


def _stages():
    return dict(environments=EnvironmentInference(2, max_rounds=1, epochs=1), n_outer_iter=1,
                mask=MaskLearning(epochs=1))


def _tiny(name):
    """A tiny instance of every estimator, by class name."""
    without_negatives = {k: v for k, v in TINY.items() if k != "n_negatives"}
    return {
        "PopularityRecommender": lambda: PopularityRecommender(),
        "UltraGCNRecommender": lambda: UltraGCNRecommender(**TINY),
        "PaInvRLRecommender": lambda: PaInvRLRecommender(**TINY, **_stages()),
        "MILKRecommender": lambda: MILKRecommender(max_epochs=2, batch_size=64, embedding_dim=4, random_state=0),
        "EIORRecommender": lambda: EIORRecommender(**TINY, **_stages()),
        "EIORRegressor": lambda: EIORRegressor(**without_negatives, **_stages()),
    }[name]()


NAMES = sorted(name for name, _ in all_estimators())


@pytest.fixture(scope="module")
def data(small_split):
    return small_split


def _fit(model, data, train=None):
    bunch, default_train, _ = data
    X = default_train if train is None else train
    y = 1.0 + np.arange(len(X)) % 5 if model.__sklearn_tags__().target_tags.required else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, y, item_features=bunch.item_features)


@pytest.fixture(scope="module")
def fitted(data):
    return {name: _fit(_tiny(name), data) for name in NAMES}


def _same_predictions(again, model, test):
    np.testing.assert_array_equal(again.predict(test), model.predict(test))
    pd.testing.assert_frame_equal(again.recommend([0, 5, 7], n=5), model.recommend([0, 5, 7], n=5))


def _comparable(params):
    return {k: (type(v), v.get_params()) if hasattr(v, "get_params") else v for k, v in params.items()}


# ---------------------------------------------------------------- round trips
def test_every_estimator_has_a_tiny_configuration():
    """A new estimator fails here until _tiny() has an entry for it (and so a round-trip test)."""
    assert len(NAMES) >= 6
    for name in NAMES:
        assert type(_tiny(name)).__name__ == name


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_gives_identical_predictions(name, fitted, data, tmp_path):
    model = fitted[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # nothing outside the allowlist, no other warning
        path = invrec.save(model, tmp_path / "model.invrec")
    again = invrec.load(path)
    assert type(again) is type(model) and again is not model
    _same_predictions(again, model, data[2])
    assert _comparable(again.get_params()) == _comparable(model.get_params())
    np.testing.assert_array_equal(again.user_ids_, model.user_ids_)
    np.testing.assert_array_equal(again.item_ids_, model.item_ids_)
    assert again.history_ == model.history_
    module = getattr(model, "module_", None)
    if module is not None:
        for (key, tensor), (key_again, tensor_again) in zip(module.state_dict().items(),
                                                            again.module_.state_dict().items()):
            assert key == key_again and torch.equal(tensor, tensor_again)
        assert [p.requires_grad for p in again.module_.parameters()] == [p.requires_grad for p in module.parameters()]


def test_round_trip_with_string_ids_and_parameter_objects(data, tmp_path):
    bunch, train, test = data
    strings = train.assign(user="u" + train["user"].astype(str), item="i" + train["item"].astype(str))
    features = invrec.ItemFeatures({m: bunch.item_features[m] for m in bunch.item_features.modalities},
                                   item_ids=["i" + str(i) for i in bunch.item_features.item_ids])
    model = EIORRecommender(**{**TINY, "random_state": np.random.RandomState(3)}, **_stages(),
                            fusion=Fusion(gate=True), objective=FusedObjective(), device=torch.device("cpu"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(strings, item_features=features)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        again = invrec.load(invrec.save(model, tmp_path / "strings.invrec"))
    users = ["u0", "u5"]
    pd.testing.assert_frame_equal(again.recommend(users, n=4), model.recommend(users, n=4))
    assert isinstance(again.fusion, Fusion) and again.fusion.get_params() == model.fusion.get_params()
    assert again.device == torch.device("cpu")
    state, state_again = model.random_state.get_state(), again.random_state.get_state()
    np.testing.assert_array_equal(state[1], state_again[1])


def test_round_trip_of_milk_with_imputation_and_of_an_unfitted_model(data, tmp_path):
    model = MILKRecommender(max_epochs=2, batch_size=64, embedding_dim=4, random_state=0, missing_fill="impute")
    _fit(model, data)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        again = invrec.load(invrec.save(model, tmp_path / "milk.invrec"))
    _same_predictions(again, model, data[2])
    unfitted = invrec.load(invrec.save(UltraGCNRecommender(embedding_dim=7), tmp_path / "unfitted.invrec"))
    assert unfitted.embedding_dim == 7 and not hasattr(unfitted, "module_")
    assert read_manifest(tmp_path / "unfitted.invrec")["fitted"] is False


def test_tensors_keep_their_dtype_and_sharing(fitted, tmp_path):
    model = clone(fitted["UltraGCNRecommender"])
    model.__dict__.update(fitted["UltraGCNRecommender"].__dict__)
    shared = torch.arange(6, dtype=torch.float32)
    model.extra_ = {"bf16": torch.tensor([1.5, -2.25], dtype=torch.bfloat16), "a": shared, "b": shared,
                    "grad": torch.ones(2, requires_grad=True), "array": np.arange(3, dtype=np.int16)}
    again = invrec.load(invrec.save(model, tmp_path / "m.invrec")).extra_
    assert again["bf16"].dtype == torch.bfloat16 and torch.equal(again["bf16"], model.extra_["bf16"])
    assert again["a"] is again["b"] and torch.equal(again["a"], shared)
    assert again["grad"].requires_grad and again["array"].dtype == np.int16


def test_the_manifest_describes_the_file(fitted, tmp_path):
    path = invrec.save(fitted["PaInvRLRecommender"], tmp_path / "m.invrec")
    manifest = read_manifest(path)
    assert manifest["format"] == "invrec-model" and manifest["format_version"] == FORMAT_VERSION
    assert manifest["invrec_version"] == invrec.__version__
    assert manifest["estimator"] == "invrec.painvrl.PaInvRLRecommender" and manifest["fitted"] is True
    assert manifest["params"]["embedding_dim"] == 4
    assert manifest["params"]["environments"] == {
        "class": "invrec.invariance.stages.EnvironmentInference",
        "params": EnvironmentInference(2, max_rounds=1, epochs=1).get_params()}
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        assert names == set(manifest["members"]) | {"manifest.json"}
        import hashlib

        for name, entry in manifest["members"].items():
            assert hashlib.sha256(archive.read(name)).hexdigest() == entry["sha256"]
    assert any(name.startswith("arrays/") for name in names)


def test_save_is_atomic_and_checks_its_arguments(fitted, tmp_path, monkeypatch):
    path = tmp_path / "m.invrec"
    invrec.save(fitted["PopularityRecommender"], path)
    before = path.read_bytes()
    import invrec.persistence as persistence

    def broken(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(persistence, "_manifest", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        invrec.save(fitted["UltraGCNRecommender"], path)
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["m.invrec"]
    with pytest.raises(TypeError, match="writes invrec estimators; got dict"):
        invrec.save({"a": 1}, tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        invrec.save(fitted["PopularityRecommender"], tmp_path / "no" / "m.invrec")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        invrec.load(tmp_path / "absent.invrec")
    with pytest.raises(TypeError, match="trusted must be True or False"):
        invrec.load(path, trusted="yes")


class LocalPopularity(PopularityRecommender):
    """A user's subclass: outside the allowlist, so it saves with a warning and loads trusted only."""


def test_a_type_outside_the_allowlist_warns_at_save_and_needs_trusted(data, tmp_path):
    model = _fit(LocalPopularity(), data)
    with pytest.warns(UserWarning, match=r"LocalPopularity.*trusted=True"):
        path = invrec.save(model, tmp_path / "local.invrec")
    with pytest.raises(UnsafeModelFileError, match=r"test_persistence\.LocalPopularity.*trusted=True"):
        invrec.load(path)
    _same_predictions(invrec.load(path, trusted=True), model, data[2])


def test_plain_pickles_load_only_when_trusted(fitted, data, tmp_path):
    model = fitted["UltraGCNRecommender"]
    joblib.dump(model, tmp_path / "old.joblib")
    with pytest.raises(ModelFileError, match=r"not a zip archive.*trusted=True.*runs code"):
        invrec.load(tmp_path / "old.joblib")
    _same_predictions(invrec.load(tmp_path / "old.joblib", trusted=True), model, data[2])
    joblib.dump({"not": "a model"}, tmp_path / "dict.joblib")
    with pytest.raises(ModelFileError, match="holds a dict, not an invrec estimator"):
        invrec.load(tmp_path / "dict.joblib", trusted=True)
    (tmp_path / "junk").write_text("not a model")
    with pytest.raises(ModelFileError, match="neither an invrec model file nor a joblib/pickle file"):
        invrec.load(tmp_path / "junk", trusted=True)


def test_the_allowlist_admits_no_invrec_function_and_no_known_gadget():
    allowlist = model_allowlist()
    invrec_entries = {key: obj for key, obj in allowlist.items() if key[0].startswith("invrec")}
    assert invrec_entries and all(isinstance(obj, type) for obj in invrec_entries.values())
    gadgets = [("builtins", "eval"), ("builtins", "exec"), ("builtins", "getattr"), ("builtins", "__import__"),
               ("builtins", "open"), ("builtins", "type"), ("builtins", "object"), ("os", "system"),
               ("posix", "system"), ("subprocess", "Popen"), ("pickle", "loads"), ("joblib", "load"),
               ("numpy", "load"), ("torch", "load"), ("torch.storage", "_load_from_bytes"),
               ("torch._utils", "_rebuild_tensor_v2"), ("copyreg", "_reconstructor"), ("functools", "partial")]
    assert not set(gadgets) & set(allowlist)


# ---------------------------------------------------------------- crafted files
class _Crafted:
    """Unpickles as ``func(*args)``: what a pickle crafted to run code looks like."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args

    def __call__(self, *args):  # lets one crafted call stand for the callable of another
        raise AssertionError("never called: only pickled")


def _rewrite(path, target, *, members=None, manifest=None, checksums=True, drop=(), add=None):
    """Copy the archive ``path`` to ``target`` with members replaced (name -> bytes), the manifest
    edited (a function of the manifest dict), and the checksums recomputed unless told not to."""
    import hashlib

    with zipfile.ZipFile(path) as archive:
        content = {name: archive.read(name) for name in archive.namelist()}
    meta = json.loads(content.pop("manifest.json"))
    content.update(members or {})
    for name in drop:
        content.pop(name)
    if checksums:
        meta["members"] = {name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                           for name, data in content.items()}
    content.update(add or {})
    if manifest is not None:
        meta = manifest(meta)
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in content.items():
            archive.writestr(name, data)
        archive.writestr("manifest.json", json.dumps(meta))
    return target


def _payloads(marker):
    write = f"open({str(marker)!r}, 'w').close()"
    return {
        "os.system": _Crafted(os.system, f"touch {marker}"),
        "builtins.eval": _Crafted(builtins.eval, write),
        "builtins.exec": _Crafted(builtins.exec, write),
        "subprocess.call": _Crafted(subprocess.call, ["touch", str(marker)]),
        "builtins.getattr": _Crafted(_Crafted(builtins.getattr, "", "join"), [write]),
        # an allowed type whose argument is built by a refused callable
        "inside an allowed type": _Crafted(PopularityRecommender, _Crafted(builtins.eval, write)),
        # a pickle-in-pickle: torch rebuilds storages with torch.load(weights_only=False)
        "torch.storage._load_from_bytes": _Crafted(torch.storage._load_from_bytes,
                                                   pickle.dumps(_Crafted(builtins.exec, write))),
    }


@pytest.mark.parametrize("gadget", ["os.system", "builtins.eval", "builtins.exec", "subprocess.call",
                                    "builtins.getattr", "inside an allowed type", "torch.storage._load_from_bytes"])
def test_a_crafted_payload_is_refused_and_runs_nothing(gadget, fitted, tmp_path):
    marker = tmp_path / "pwned"
    path = invrec.save(fitted["PopularityRecommender"], tmp_path / "model.invrec")
    payload = pickle.dumps(_payloads(marker)[gadget], protocol=5)
    crafted = _rewrite(path, tmp_path / "crafted.invrec", members={"payload.pkl": payload})
    with pytest.raises(UnsafeModelFileError, match=r"refers to .*nothing from the file was run.*trusted=True"):
        invrec.load(crafted)
    assert not marker.exists()
    assert isinstance(UnsafeModelFileError("x"), (UnsafePickleError, ModelFileError, ValueError))


def test_a_crafted_payload_names_the_refused_global_and_runs_when_trusted(fitted, tmp_path):
    marker = tmp_path / "pwned"
    path = invrec.save(fitted["PopularityRecommender"], tmp_path / "model.invrec")
    payload = pickle.dumps(_payloads(marker)["builtins.exec"], protocol=5)
    crafted = _rewrite(path, tmp_path / "crafted.invrec", members={"payload.pkl": payload})
    with pytest.raises(UnsafeModelFileError, match=r"refers to builtins\.exec"):
        invrec.load(crafted)
    assert not marker.exists()
    with pytest.raises(ModelFileError, match="holds a NoneType"):   # trusted: pickle runs the code
        invrec.load(crafted, trusted=True)
    assert marker.exists()


# ---------------------------------------------------------------- damaged files
@pytest.fixture
def saved(fitted, tmp_path):
    return invrec.save(fitted["UltraGCNRecommender"], tmp_path / "model.invrec")


@pytest.mark.parametrize("seed", range(12))
def test_flipped_bytes_are_refused(saved, tmp_path, seed):
    raw = bytearray(saved.read_bytes())
    rng = np.random.default_rng(seed)
    for position in rng.choice(len(raw), size=64, replace=False):
        raw[position] ^= 1 << int(rng.integers(8))
    damaged = tmp_path / "damaged.invrec"
    damaged.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError):
        invrec.load(damaged)


def test_one_flipped_byte_in_any_member_is_refused(saved, tmp_path):
    raw = saved.read_bytes()
    with zipfile.ZipFile(saved) as archive:
        infos = archive.infolist()
    for info in infos:
        # the member's data starts after its 30-byte local header, name and extra field
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        middle = start + info.compress_size // 2
        damaged = bytearray(raw)
        damaged[middle] ^= 0x10
        (tmp_path / "one.invrec").write_bytes(bytes(damaged))
        with pytest.raises(ModelFileError, match="not an intact invrec model file"):
            invrec.load(tmp_path / "one.invrec")


@pytest.mark.parametrize("keep", [0, 10, 0.25, 0.5, 0.9, -1])
def test_truncated_files_are_refused(saved, tmp_path, keep):
    raw = saved.read_bytes()
    size = keep if isinstance(keep, int) and keep >= 0 else len(raw) + keep if isinstance(keep, int) \
        else int(len(raw) * keep)
    (tmp_path / "cut.invrec").write_bytes(raw[:size])
    with pytest.raises(ModelFileError):
        invrec.load(tmp_path / "cut.invrec")


def test_a_member_that_does_not_match_its_checksum_is_refused(saved, tmp_path):
    with zipfile.ZipFile(saved) as archive:
        member = next(name for name in archive.namelist() if name.startswith("arrays/"))
        array = np.load(io.BytesIO(archive.read(member)))
    buffer = io.BytesIO()
    np.save(buffer, np.zeros_like(array))
    edited = _rewrite(saved, tmp_path / "edited.invrec", members={member: buffer.getvalue()}, checksums=False)
    with pytest.raises(ModelFileError, match=f"(checksum|bytes).*{member}|{member}.*(checksum|bytes)"):
        invrec.load(edited)


@pytest.mark.parametrize("edit, message", [
    (lambda m: {**m, "format_version": FORMAT_VERSION + 1}, r"model format version 2; this invrec reads versions "
                                                           r"up to 1: upgrade invrec"),
    (lambda m: {**m, "format_version": "1"}, "format version '1' is not a positive integer"),
    (lambda m: {**m, "format": "skops"}, "does not name the format 'invrec-model'"),
    (lambda m: {k: v for k, v in m.items() if k != "members"}, "lacks the estimator, members or arrays"),
    (lambda m: {**m, "estimator": "invrec.baselines.PopularityRecommender"},
     "holds a UltraGCNRecommender, not the invrec.baselines.PopularityRecommender"),
])
def test_a_bad_manifest_is_refused(saved, tmp_path, edit, message):
    edited = _rewrite(saved, tmp_path / "edited.invrec", manifest=edit)
    with pytest.raises(ModelFileError, match=message):
        invrec.load(edited)


def test_members_must_match_the_manifest(saved, tmp_path):
    extra = _rewrite(saved, tmp_path / "extra.invrec", add={"extra.pkl": b"x"})
    with pytest.raises(ModelFileError, match=r"unexpected \['extra.pkl'\]"):
        invrec.load(extra)
    with zipfile.ZipFile(saved) as archive:
        member = next(name for name in archive.namelist() if name.startswith("arrays/"))
    missing = _rewrite(saved, tmp_path / "missing.invrec", drop=[member], checksums=False)
    with pytest.raises(ModelFileError, match="missing"):
        invrec.load(missing)
    with zipfile.ZipFile(tmp_path / "nojson.invrec", "w") as archive:
        archive.writestr("manifest.json", b"{not json")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        invrec.load(tmp_path / "nojson.invrec")
    (tmp_path / "text.invrec").write_text("hello")
    with pytest.raises(ModelFileError, match="not a zip archive"):
        invrec.load(tmp_path / "text.invrec")


# ---------------------------------------------------------------- the content is stored once (defect 5)
def _content_bytes(model):
    features = getattr(getattr(model, "module_", None), "features", None)
    return 0 if features is None else features.numel() * features.element_size()


def _npy_shapes(path):
    with zipfile.ZipFile(path) as archive:
        return [np.lib.format.read_array(io.BytesIO(archive.read(name))).shape
                for name in archive.namelist() if name.endswith(".npy")]


@pytest.fixture(scope="module")
def awkward(data):
    """Content in Fortran order (what a transpose gives), two items without content, two content
    items without interactions, and MILK with the cross-modal imputer: every estimator fitted."""
    bunch, train, test = data
    base = bunch.item_features
    dims = base.dims
    rng = np.random.default_rng(5)
    ids = np.concatenate([base.item_ids, [90, 91]])
    arrays = {m: np.asfortranarray(np.vstack([np.array(base[m]), rng.normal(size=(2, d))]))
              for m, d in dims.items()}
    arrays["visual"][[3, 7]] = np.nan
    features = invrec.ItemFeatures(arrays, item_ids=ids)
    models = {name: _tiny(name) for name in NAMES}
    models["MILKRecommender(impute)"] = MILKRecommender(max_epochs=2, batch_size=64, embedding_dim=4,
                                                        random_state=0, missing_fill="impute")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for model in models.values():
            y = 1.0 + np.arange(len(train)) % 5 if model.__sklearn_tags__().target_tags.required else None
            model.fit(train, y, item_features=features)
    return models, test


AWKWARD = [*NAMES, "MILKRecommender(impute)"]


def _same_content_model(again, model, test):
    """Bit-identical predictions, rankings (new content items included) and content buffer."""
    np.testing.assert_array_equal(again.predict(test), model.predict(test))
    users = [0, 5, 7]
    pd.testing.assert_frame_equal(again.recommend(users, n=8), model.recommend(users, n=8))
    pd.testing.assert_frame_equal(again.recommend(users, n=3, items=[90, 91, 3]),
                                  model.recommend(users, n=3, items=[90, 91, 3]))
    features = getattr(getattr(model, "module_", None), "features", None)
    if features is not None:
        assert torch.equal(again.module_.features, features)
        assert again.module_.features.dtype == features.dtype


@pytest.mark.parametrize("name", AWKWARD)
def test_content_buffer_is_rebuilt_bit_for_bit_after_pickle_and_save(name, awkward, tmp_path):
    models, test = awkward
    model = models[name]
    _same_content_model(pickle.loads(pickle.dumps(model)), model, test)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        again = invrec.load(invrec.save(model, tmp_path / "m.invrec"))
    _same_content_model(again, model, test)
    _same_content_model(pickle.loads(pickle.dumps(again)), model, test)   # a second round trip too
    # the file holds no array of the content's shape: only item_features_ holds the content
    if _content_bytes(model):
        assert tuple(model.module_.features.shape) not in _npy_shapes(tmp_path / "m.invrec")
        assert "_content_buffers_left_out" not in again.__dict__


@pytest.mark.parametrize("name", [n for n in NAMES if n != "PopularityRecommender"])
def test_files_are_smaller_by_the_content(name, fitted, data, tmp_path, monkeypatch):
    """Before: the content was stored twice, in item_features_ and in the module's buffer."""
    model = fitted[name]
    content = _content_bytes(model)
    assert content > 0
    small = invrec.save(model, tmp_path / "small.invrec").stat().st_size
    small_pickle = len(pickle.dumps(model))
    with monkeypatch.context() as patch:                   # the former behaviour: every buffer kept
        patch.setattr(type(model), "_content_buffers", ())
        large = invrec.save(model, tmp_path / "large.invrec").stat().st_size
        large_pickle = len(pickle.dumps(model))
        old_style = pickle.dumps(model)
    assert content <= large - small <= content + 2048
    assert content <= large_pickle - small_pickle <= content + 2048
    # files written with the buffer (before this change) still load, and identically
    again = pickle.loads(old_style)
    _same_predictions(again, model, data[2])


def test_a_buffer_that_differs_from_its_rebuild_stays_in_the_file(fitted, data, tmp_path):
    """Only a buffer the content rebuilds exactly is left out: anything else is kept as it is."""
    model = pickle.loads(pickle.dumps(fitted["UltraGCNRecommender"]))
    with torch.no_grad():
        model.module_.features[0, 0] += 1.0            # no longer what item_features_ gives
    again = pickle.loads(pickle.dumps(model))
    assert torch.equal(again.module_.features, model.module_.features)
    again = invrec.load(invrec.save(model, tmp_path / "m.invrec"))
    assert torch.equal(again.module_.features, model.module_.features)
    _same_predictions(again, model, data[2])


def test_pickling_does_not_touch_the_fitted_model(fitted, data):
    model = fitted["EIORRecommender"]
    buffer = model.module_.features
    before = buffer.clone()
    pickle.dumps(model)
    assert model.module_.features is buffer and torch.equal(buffer, before)
    assert "_content_buffers_left_out" not in model.__dict__
