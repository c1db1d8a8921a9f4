"""Your own images: ``folder:PATH`` reads an ImageFolder layout, and :func:`save_image_folder` writes one.

The layout is torchvision's ImageFolder: one sub-folder per class, the classes in sorted order of their names
(so class ``i`` is the ``i``-th folder name in sorted order), image files of any format PIL reads inside::

    PATH/cat/0001.png   PATH/cat/0002.jpg   PATH/dog/0001.png   ...

Images keep their own channels -- 1 when every image is greyscale, else 3 (greyscale images are then repeated
to RGB, and alpha is dropped) -- and their own size, which must be the same square ``S x S`` for all images
unless ``image_size=N`` (``--image-size N``) resizes every image to ``N x N``.

Two ways to split *[ours]*, both stratified and fixed by the seed:

- ``parts="all"`` (``run``/``bench``): attacker train / clean test / defender pool = 70% / 20% / 10%, the
  proportions of ``mnist5k`` (3,500 / 1,000 / 500);
- ``parts="defender"`` (``defend``: the user has a model, not its training set): no attacker part; half the
  images form the defender pool the defense may use, the other half the held-out test set every metric is
  computed on -- images the defense never saw.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import torch

from ..core.checks import check_positive_int
from ..core.registry import DATASETS
from .splits import Data, Split

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")  # torchvision's list
FRACTIONS = {"all": (0.7, 0.2, 0.1), "defender": (0.0, 0.5, 0.5)}  # train / test / defender


def _param(path: object) -> str:
    return f"dataset='folder:{path}'"


def list_images(root: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """``(class_names, [(file, class index), ...])`` of an ImageFolder layout, with errors naming the dataset."""
    if not root.exists():
        raise ValueError(f"{_param(root)}: the folder does not exist")
    if not root.is_dir():
        raise ValueError(f"{_param(root)}: not a folder (expected one sub-folder of images per class)")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"{_param(root)}: the folder is empty; expected one sub-folder of images per class "
                         "(PATH/<class>/<image>.png)")
    files: list[tuple[Path, int]] = []
    skipped: list[Path] = []
    for i, c in enumerate(classes):
        every = sorted(f for f in (root / c).rglob("*") if f.is_file() and not f.name.startswith("."))
        found = [f for f in every if f.suffix.lower() in EXTENSIONS]
        skipped += [f for f in every if f.suffix.lower() not in EXTENSIONS]
        if not found:
            raise ValueError(f"{_param(root)}: class folder {c!r} has no images ({', '.join(EXTENSIONS)})")
        files.extend((f, i) for f in found)
    if len(classes) < 2:
        raise ValueError(f"{_param(root)}: found one class ({classes[0]!r}); a classifier's data needs at least "
                         "two class sub-folders")
    if skipped:
        warnings.warn(f"{_param(root)}: skipped {len(skipped)} file(s) that are not images by their extension "
                      f"(e.g. {skipped[0].relative_to(root)}; images are {', '.join(EXTENSIONS)})", stacklevel=3)
    return classes, files


def read_images(files: list[Path], root: Path, image_size: int | None = None) -> torch.Tensor:
    """The images as one float ``(N, C, S, S)`` tensor in [0, 1] (see the module docstring for C and S)."""
    from PIL import Image, UnidentifiedImageError

    if image_size is not None:
        check_positive_int(image_size, "image_size")
    images = []
    for f in files:
        try:
            with Image.open(f) as im:
                im.load()
                images.append(im.copy())
        except (UnidentifiedImageError, OSError) as exc:
            raise ValueError(f"{_param(root)}: {f} is not a readable image ({exc})") from exc
    grey = all(im.mode in ("1", "L", "LA", "I", "I;16", "F") for im in images)
    mode = "L" if grey else "RGB"
    if image_size is None:
        sizes = {im.size for im in images}
        if len(sizes) > 1:
            (w0, h0), (w1, h1) = sorted(sizes)[:2]
            first = next(f for f, im in zip(files, images) if im.size == (w0, h0))
            other = next(f for f, im in zip(files, images) if im.size == (w1, h1))
            raise ValueError(f"{_param(root)}: images have mixed sizes ({h0}x{w0} in {first}, {h1}x{w1} in {other}); "
                             "pass image_size=N (--image-size N) to resize every image to N x N")
        (w, h), = sizes
        if w != h:
            raise ValueError(f"{_param(root)}: images are {h}x{w} (height x width); the models take square images: "
                             "pass image_size=N (--image-size N) to resize them to N x N")
    arrays = []
    for im in images:
        im = _to_mode(im, mode)
        if image_size is not None and im.size != (image_size, image_size):
            im = im.resize((image_size, image_size), Image.Resampling.BILINEAR)
        a = np.asarray(im, dtype=np.float32) / 255.0
        arrays.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(arrays)).contiguous()


def _to_mode(im, mode: str):
    """``L`` or ``RGB``; 16-bit and float greyscale are scaled to 8 bits first (PIL's convert would clip them)."""
    if im.mode in ("I", "I;16", "F"):
        a = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if im.mode != "F" and a.max() > 255 else (1.0 if im.mode == "F" and a.max() <= 1 else 255.0)
        from PIL import Image

        im = Image.fromarray(np.clip(a / peak * 255.0, 0, 255).round().astype(np.uint8), "L")
    return im.convert(mode)


def fingerprint(data: Data) -> str:
    """A hash of the images and labels: a model cached for this data is never reused for changed files."""
    h = hashlib.sha256(data.x.numpy().tobytes())
    h.update(data.y.numpy().tobytes())
    return h.hexdigest()[:16]


@DATASETS.register("folder")
def image_folder(path: str | Path = "", seed: int = 0, download: bool = False, image_size: int | None = None,
                 parts: str = "all") -> Split:
    """``folder:PATH``: an ImageFolder layout, split by ``parts`` (``"all"`` or ``"defender"``)."""
    if parts not in FRACTIONS:
        raise ValueError(f"parts must be one of {', '.join(map(repr, FRACTIONS))}, got {parts!r}")
    if not str(path):
        raise ValueError("dataset='folder' needs a path: folder:PATH (one sub-folder of images per class)")
    root = Path(path).expanduser()
    classes, files = list_images(root)
    full = Data(read_images([f for f, _ in files], root, image_size), torch.tensor([c for _, c in files]))
    n, k = len(full), len(classes)
    f_train, f_test, _ = FRACTIONS[parts]
    n_train, n_test = round(f_train * n), round(f_test * n)
    sizes = {"attacker train": n_train, "test": n_test, "defender": n - n_train - n_test}
    if parts == "defender":
        del sizes["attacker train"]
    if min(sizes.values()) < k:
        raise ValueError(f"{_param(root)}: {n} images in {k} classes are too few for the "
                         f"{' / '.join(sizes)} parts ({' / '.join(str(v) for v in sizes.values())} images) of at "
                         f"least one image per class each; add images")
    train, rest = full.split(n_train, seed)
    test, defender = rest.split(n_test, seed + 1)
    return Split(f"folder:{root}", train, test, defender, k, tuple(classes), fingerprint=fingerprint(full))


def save_image_folder(data: Data, root: str | Path, class_names: tuple[str, ...] | list[str] | None = None,
                      prefix: str = "img") -> list[Path]:
    """Write ``data`` as PNG files in an ImageFolder layout under ``root`` (8-bit greyscale or RGB), one
    sub-folder per class: the ``class_names`` when they are already in sorted order, else ``<index>-<name>``
    with a zero-padded index (so sorted folder order is class order; default names: the index). Returns the
    files written. Raises if a file already exists (nothing is overwritten)."""
    from PIL import Image

    x, y = data.x.detach().cpu(), data.y.cpu()
    if x.shape[1] not in (1, 3):
        raise ValueError(f"data.x must have 1 or 3 channels to be written as PNG, got {x.shape[1]}")
    k = int(y.max()) + 1
    width = len(str(k - 1))
    names = [str(c).zfill(width) for c in range(k)] if class_names is None else [str(n) for n in class_names]
    if len(names) < k:
        raise ValueError(f"class_names must name all {k} classes, got {len(names)}: {names!r}")
    if sorted(names) != names or len(set(names)) != len(names):
        names = [f"{i:0{width}d}-{n}" for i, n in enumerate(names)]
    root = Path(root)
    pixels = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    written = []
    for i, (img, c) in enumerate(zip(pixels, y.tolist())):
        path = root / names[c] / f"{prefix}{i:05d}.png"
        if path.exists():
            raise FileExistsError(f"{path} exists; save_image_folder writes into a new folder only")
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img, "L" if img.shape[-1] == 1 else "RGB").save(path)
        written.append(path)
    return written
