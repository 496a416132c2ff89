"""The unlabeled stream: sources, pairs, ranks, exact resume, corrupt files, image modes, packing CLI."""

import io
import json
import tarfile
import threading
import time
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from sclseg.cli import main as cli_main
from sclseg.data.packing import pack_image_folder
from sclseg.data.transforms import TrainTransform
from sclseg.data.unlabeled import UnlabeledPairStream, _pair_generators, load_unlabeled




def _identity(image, label, *, generator=None, center=None):
    """A transform that keeps the raw pixels, so a pair's images can be identified by value."""
    return torch.from_numpy(image).permute(2, 0, 1).float(), None


def _ids(pair):
    """The images of a pair, identified by their (constant) first-channel value."""
    return int(pair["pixel_values_a"][0, 0, 0]), int(pair["pixel_values_b"][0, 0, 0])


def _write_folder(folder, count=12, size=(12, 16)):
    """`count` constant RGB images whose value identifies them (10, 20, ...), in two sub-folders."""
    for index in range(count):
        path = folder / f"city{index % 2}" / f"img_{index:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full(size + (3,), 10 * (index + 1), np.uint8)).save(path)
    return folder


@pytest.fixture
def shards(tmp_path):
    return pack_image_folder(_write_folder(tmp_path / "images"), tmp_path / "shards", num_shards=4)


def test_folder_source_yields_same_image_pairs(tmp_path):
    folder = _write_folder(tmp_path / "images", count=5)
    stream = UnlabeledPairStream.from_source(folder, _identity, max_epochs=1)
    pairs = list(stream)
    assert sorted(a for a, _ in map(_ids, pairs)) == [10, 20, 30, 40, 50]
    assert all(a == b for a, b in map(_ids, pairs)) and stream.skipped == 0


def test_same_mode_augments_the_two_views_independently(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(folder / "a.png")
    pair = next(iter(UnlabeledPairStream.from_source(folder, TrainTransform(24), max_epochs=1)))
    assert pair["pixel_values_a"].shape == pair["pixel_values_b"].shape == (3, 24, 24)
    assert not torch.equal(pair["pixel_values_a"], pair["pixel_values_b"])


def test_valid_maps_mark_the_crop_padding_and_leave_the_views_unchanged(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(folder / "a.png")
    # Scale 1, crop 24x40 of a 20x30 image: the image sits inside the crop, 4 rows and 10 columns are padding.
    transform = TrainTransform((24, 40), scale_range=(1.0, 1.0), jitter=0.0, blur_prob=0.0)
    pair = next(iter(UnlabeledPairStream.from_source(folder, transform, max_epochs=1)))
    for view in ("a", "b"):
        valid = pair[f"valid_{view}"]
        assert valid.dtype == torch.bool and valid.shape == (24, 40)
        assert int(valid.sum()) == 20 * 30
        rows, cols = valid.nonzero(as_tuple=True)
        assert int(rows.max() - rows.min()) == 19 and int(cols.max() - cols.min()) == 29  # one rectangle
        # Padding pixels are the normalised zero of the image: exactly where the map says False.
        pixels = pair[f"pixel_values_{view}"]
        zero = torch.tensor([-m / s for m, s in zip(transform.mean, transform.std)]).view(3, 1)
        assert torch.allclose(pixels[:, ~valid], zero.expand(3, int((~valid).sum())), atol=1e-5)
    # The map costs no random number: the views equal a transform called without a label.
    gen_a, _ = _pair_generators(0, 0, 0)
    alone, _ = transform(np.array(Image.open(folder / "a.png")), None, generator=gen_a)
    assert torch.equal(alone, pair["pixel_values_a"])


def test_different_mode_pairs_two_images(shards):
    stream = UnlabeledPairStream(load_unlabeled(shards.shards), _identity, pair_mode="different", max_epochs=1)
    pairs = [_ids(p) for p in stream]
    assert len(pairs) == 6 and all(a != b for a, b in pairs)
    assert sorted(v for pair in pairs for v in pair) == [10 * (i + 1) for i in range(12)]


@pytest.mark.parametrize("num_shards", [4, 3])  # 3: not a multiple of 2, datasets deals examples instead
def test_two_ranks_get_disjoint_images(tmp_path, num_shards):
    result = pack_image_folder(_write_folder(tmp_path / "images"), tmp_path / "shards", num_shards=num_shards)
    seen = []
    for rank in range(2):
        stream = UnlabeledPairStream(load_unlabeled(result.shards), _identity, rank=rank, world_size=2,
                                     max_epochs=1)
        seen.append({a for a, _ in map(_ids, stream)})
    assert seen[0] and seen[1] and not seen[0] & seen[1]
    assert seen[0] | seen[1] == {10 * (i + 1) for i in range(12)}


def test_shuffling_depends_on_seed_and_epoch(shards):
    orders = {}
    for seed in (0, 1):
        stream = UnlabeledPairStream(load_unlabeled(shards.shards), _identity, shuffle_buffer=6, seed=seed,
                                     max_epochs=2)
        values = [a for a, _ in map(_ids, stream)]
        orders[seed] = (values[:12], values[12:])
        assert sorted(values[:12]) == sorted(values[12:])
    assert orders[0] != orders[1] and orders[0][0] != orders[0][1]


@pytest.mark.parametrize("source,rank,world_size,mode,prefetch", [
    ("shards4", 0, 1, "same", 0), ("shards4", 1, 2, "same", 0), ("shards4", 0, 1, "different", 0),
    ("shards3", 1, 2, "same", 0),  # 3 shards on 2 ranks: datasets deals every 2nd example instead of shards
    ("folder", 0, 2, "same", 0),  # an image folder is a single shard
    ("shards4", 1, 2, "different", 3),  # prefetched pairs not yet handed out are not in the state
])
def test_resume_from_state_dict_is_exact(tmp_path, source, rank, world_size, mode, prefetch):
    images = _write_folder(tmp_path / "images", count=11)
    if source != "folder":
        source = pack_image_folder(images, tmp_path / "shards", num_shards=int(source[-1]), rows_per_group=2).shards
    else:
        source = images
    options = dict(shuffle_buffer=5, seed=3, rank=rank, world_size=world_size, pair_mode=mode, max_epochs=2,
                   prefetch=prefetch)
    transform = TrainTransform(8)

    def fresh():
        return UnlabeledPairStream(load_unlabeled(source), transform, **options)

    reference = list(fresh())
    assert len(reference) >= 4
    for stop in (1, len(reference) // 2 + 1, len(reference) - 1):  # inside a block, across an epoch, at the end
        stream = fresh()
        iterator = iter(stream)
        head = [next(iterator) for _ in range(stop)]
        state = json.loads(json.dumps(stream.state_dict()))  # checkpoints are written as JSON
        resumed = fresh()
        resumed.load_state_dict(state)
        replay = head + list(resumed)
        assert len(replay) == len(reference), stop
        for got, want in zip(replay, reference):
            assert torch.equal(got["pixel_values_a"], want["pixel_values_a"])
            assert torch.equal(got["pixel_values_b"], want["pixel_values_b"])


def test_prefetch_yields_the_same_pairs_and_stops_with_its_iterator(shards):
    plain = [_ids(p) for p in UnlabeledPairStream(load_unlabeled(shards.shards), _identity, max_epochs=2)]
    stream = UnlabeledPairStream(load_unlabeled(shards.shards), _identity, max_epochs=2, prefetch=2)
    assert [_ids(p) for p in stream] == plain
    endless = iter(UnlabeledPairStream(load_unlabeled(shards.shards), _identity, prefetch=2))
    next(endless)
    assert any(t.name == "unlabeled-prefetch" for t in threading.enumerate())
    endless.close()
    deadline = time.monotonic() + 5
    while any(t.name == "unlabeled-prefetch" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name == "unlabeled-prefetch" for t in threading.enumerate())


def test_errors_in_the_prefetch_thread_reach_the_consumer(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"junk")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match="no readable image"):
            next(iter(UnlabeledPairStream.from_source(folder, _identity, prefetch=1)))


def test_state_of_another_rank_is_refused(shards):
    state = UnlabeledPairStream(load_unlabeled(shards.shards), _identity, rank=0, world_size=2).state_dict()
    other = UnlabeledPairStream(load_unlabeled(shards.shards), _identity, rank=1, world_size=2)
    with pytest.raises(ValueError, match="rank"):
        other.load_state_dict(state)


def _odd_images(folder):
    """Greyscale, RGBA, palette and 16-bit files, plus a non-image, a truncated PNG and an empty file."""
    folder.mkdir(parents=True)
    Image.fromarray(np.full((6, 8), 100, np.uint8)).save(folder / "grey.png")
    Image.fromarray(np.full((6, 8, 4), 100, np.uint8)).save(folder / "rgba.png")
    palette = Image.fromarray(np.zeros((6, 8), np.uint8), mode="P")
    palette.putpalette([100, 100, 100] * 256)
    palette.save(folder / "palette.png")
    Image.fromarray(np.full((6, 8), 100 * 256, np.uint16)).save(folder / "deep16.png")
    (folder / "text.png").write_bytes(b"this is not an image")
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "PNG")
    (folder / "truncated.png").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (folder / "empty.jpg").write_bytes(b"")
    return folder


def test_corrupt_files_are_skipped_counted_and_warned_once(tmp_path):
    folder = _odd_images(tmp_path / "odd")
    stream = UnlabeledPairStream.from_source(folder, _identity, max_epochs=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pairs = list(stream)
    assert len(pairs) == 2 * 4 and stream.skipped == 2 * 3
    messages = [str(w.message) for w in caught if "skipping unreadable" in str(w.message)]
    assert len(messages) == 3  # once per file, although each is met in both epochs
    for pair in pairs:  # every mode became RGB with value 100 (16-bit scaled, not clipped)
        assert pair["pixel_values_a"].shape == (3, 6, 8) and torch.all(pair["pixel_values_a"] == 100)


def test_a_stream_without_readable_images_fails_clearly(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"junk")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match="no readable image"):
            next(iter(UnlabeledPairStream.from_source(folder, _identity)))


def test_webdataset_shards(tmp_path):
    tar_path = tmp_path / "shard-000000.tar"
    with tarfile.open(tar_path, "w") as archive:
        for index in range(3):
            buffer = io.BytesIO()
            Image.fromarray(np.full((5, 7, 3), 10 * (index + 1), np.uint8)).save(buffer, "PNG")
            info = tarfile.TarInfo(f"sample{index:04d}.png")
            info.size = len(buffer.getvalue())
            archive.addfile(info, io.BytesIO(buffer.getvalue()))
    stream = UnlabeledPairStream.from_source(tmp_path, _identity, max_epochs=1)
    assert sorted(a for a, _ in map(_ids, stream)) == [10, 20, 30]


def test_pack_unlabeled_cli(tmp_path, capsys):
    images = _write_folder(tmp_path / "images", count=7)
    (images / "city0" / "broken.png").write_bytes(b"nope")
    with pytest.warns(UserWarning, match="broken.png"):
        code = cli_main(["pack-unlabeled", str(images), str(tmp_path / "out"), "--num-shards", "3",
                         "--json", str(tmp_path / "summary.json")])
    assert code == 0 and "7 images into 3 shards" in capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["shards"]) == 3 and summary["images"] == 7 and len(summary["skipped"]) == 1
    stream = UnlabeledPairStream.from_source(tmp_path / "out", _identity, max_epochs=1)
    assert sorted(a for a, _ in map(_ids, stream)) == [10 * (i + 1) for i in range(7)]
    with pytest.raises(SystemExit, match="other Parquet"):
        cli_main(["pack-unlabeled", str(images), str(tmp_path / "out"), "--num-shards", "2"])
